"""The web playground at `/` in a real browser: Debian's headless Chromium,
driven by Selenium through Debian's chromedriver, against the server of
conftest.py. The page must ask for the API key, list the model, stream a
completion that equals the API's for the same seed, stop on request, show
the server's error messages, and draw the inspection of what it generated.

Skips when selenium, chromium or chromedriver is missing, unless
RECURRENT_REQUIRE_BROWSER is set (as .ci/run does, which installs them).
RECURRENT_SCREENSHOT=PATH saves a picture of the page after generating 400
characters (scripts/browser_check.sh).
"""

import json
import os
import re
import shutil
import urllib.request

import pytest

from conftest import API_KEY


def need(what):
    if os.environ.get("RECURRENT_REQUIRE_BROWSER"):
        pytest.fail(f"{what} is required (RECURRENT_REQUIRE_BROWSER is set)")
    pytest.skip(f"{what} is not installed")


try:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:
    webdriver = None

PROMPT = "the cat "
TIMEOUT = 60


@pytest.fixture(scope="module")
def browser():
    if webdriver is None:
        need("selenium")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        need("chromium and chromedriver (apt-get install chromium chromium-driver)")
    options = Options()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--window-size=1280,1100"):
        options.add_argument(arg)
    # An explicit chromedriver: Selenium then never tries to download one.
    d = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    yield d
    d.quit()


def wait(browser, condition, timeout=TIMEOUT):
    return WebDriverWait(browser, timeout).until(condition)


def text_of(browser, element_id):
    return browser.find_element(By.ID, element_id).get_attribute("textContent")


def set_slider(browser, element_id, value):
    browser.execute_script(
        "var s = document.getElementById(arguments[0]); s.value = arguments[1];"
        "s.dispatchEvent(new Event('input'));", element_id, str(value))


def api_completion(base, **body):
    request = urllib.request.Request(
        base + "/v1/completions", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as r:
        return json.load(r)["choices"][0]["text"]


@pytest.fixture(scope="module")
def page(server, browser):
    """The playground, opened with a prompt in its address, key entered."""
    browser.get(server[0] + "/?prompt=" + PROMPT.replace(" ", "%20"))
    # The API wants a key: the page says so and asks for it.
    wait(browser, EC.visibility_of_element_located((By.ID, "key-box")))
    assert "API key" in text_of(browser, "error")
    key = browser.find_element(By.ID, "key")
    key.send_keys(API_KEY)
    browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", key)
    wait(browser, lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
    return browser


def generate(page, length, seed=None):
    set_slider(page, "length", length)
    seed_box = page.find_element(By.ID, "seed")
    seed_box.clear()
    if seed is not None:
        seed_box.send_keys(str(seed))
    page.find_element(By.ID, "generate").click()


def finished(page):
    return any(w in text_of(page, "status") for w in ("done", "stopped", "failed"))


def test_lists_the_model_and_fills_the_prompt(page):
    options = page.find_elements(By.CSS_SELECTOR, "#model option")
    assert [o.get_attribute("value") for o in options] == ["tiny"]
    assert page.find_element(By.ID, "prompt").get_attribute("value") == PROMPT
    assert text_of(page, "model-info") == "language model"


def test_streams_what_the_api_returns_then_inspects_it(server, page):
    set_slider(page, "temperature", 0.8)
    generate(page, 60, seed=7)
    wait(page, finished)
    assert "done" in text_of(page, "status"), text_of(page, "status")
    streamed = text_of(page, "out-generated")
    assert streamed == api_completion(server[0], model="tiny", prompt=PROMPT, max_tokens=60,
                                      temperature=0.8, seed=7)
    assert len(streamed) == 60  # a character model: one character per token
    assert "60 tokens" in text_of(page, "status")

    # The inspection of prompt + generation: one span per character.
    wait(page, lambda b: b.find_element(By.ID, "view").get_attribute("aria-busy") == "false")
    headings = [h.text for h in page.find_elements(By.CSS_SELECTOR, "#view h2")]
    assert headings == ["Surprisal", "Hidden units", "Gate saturation"]
    spans = page.find_elements(By.CSS_SELECTOR, "#view .text")[0].find_elements(By.TAG_NAME, "span")
    assert len(spans) == len(PROMPT) + 60
    # Hovering a token shows its five most likely successors.
    ActionChains(page).move_to_element(spans[5]).perform()
    tip = wait(page, EC.visibility_of_element_located((By.ID, "tip")))
    assert "surprisal" in tip.text
    assert len(tip.find_elements(By.TAG_NAME, "tr")) == 5
    # A ranked unit, clicked, is the one shown.
    unit = page.find_elements(By.CSS_SELECTOR, ".ranks li[title]")[0]
    unit.click()
    assert unit.get_attribute("class") == "picked"
    # Gate saturation: one point per unit and gate of each LSTM layer.
    options = [o.get_attribute("textContent") for o in page.find_elements(By.CSS_SELECTOR, "#view option")]
    units = sum(int(m.group(1)) for m in (re.match(r"layer \d+ \((\d+) units\)", o) for o in options) if m)
    assert units > 0
    assert len(page.find_elements(By.CSS_SELECTOR, "#view .gates circle")) == 3 * units
    shot = os.environ.get("RECURRENT_SCREENSHOT")
    if shot:
        # A longer text for the picture.
        generate(page, 400, seed=1)
        wait(page, finished)
        wait(page, lambda b: b.find_element(By.ID, "view").get_attribute("aria-busy") == "false")
        assert page.save_screenshot(shot)


def test_stop_ends_a_stream(server, page):
    # A slow link, so the stream is still running when Stop is pressed.
    page.set_network_conditions(offline=False, latency=5, download_throughput=4000,
                                upload_throughput=100000)
    try:
        generate(page, 2000)
        wait(page, lambda b: len(text_of(b, "out-generated")) > 0)
        page.find_element(By.ID, "stop").click()
        wait(page, finished)
    finally:
        page.delete_network_conditions()
    assert "stopped" in text_of(page, "status")
    assert 0 < len(text_of(page, "out-generated")) < 2000
    assert page.find_element(By.ID, "generate").is_enabled()


def test_shows_the_servers_error(page):
    page.find_element(By.ID, "prompt").clear()
    page.find_element(By.ID, "prompt").send_keys("\u2603 snow")
    generate(page, 20)
    wait(page, finished)
    error = text_of(page, "error")
    assert "vocabulary" in error and "\u2603" in error
    assert page.find_element(By.ID, "error").is_displayed()
