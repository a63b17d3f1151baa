"""The official OpenAI Python client against `recurrent serve`, unchanged.

Starts target/debug/recurrent (build it first: `cargo build`) on a free
loopback port over a tiny model it trains, or over $RECURRENT_CHECKPOINT.
Skips when the `openai` package is not installed. Run with
scripts/test_python.sh.
"""

import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

openai = pytest.importorskip("openai")

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("RECURRENT_BINARY", ROOT / "target" / "debug" / "recurrent"))
API_KEY = "test-key"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_checkpoint(tmp):
    """A small char model trained for a few steps on a short text."""
    text = Path(tmp) / "tiny.txt"
    text.write_text("the cat sat on the mat. a dog ran.\n" * 80)
    out = Path(tmp) / "tiny"
    subprocess.run(
        [str(BINARY), "train", "--input", str(text), "--out", str(out), "--steps", "20",
         "--hidden", "32", "--embed", "8", "--layers", "1", "--seq-len", "16",
         "--batch", "4", "--threads", "1"],
        check=True, timeout=300, stdout=subprocess.DEVNULL,
    )
    return out


@pytest.fixture(scope="module")
def server():
    if not BINARY.exists():
        pytest.skip(f"{BINARY} is not built")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = os.environ.get("RECURRENT_CHECKPOINT") or tiny_checkpoint(tmp)
        port = free_port()
        proc = subprocess.Popen(
            [str(BINARY), "serve", f"tiny={checkpoint}", "--port", str(port),
             "--threads", "1", "--api-key", API_KEY],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("the server did not start: " + proc.stderr.read().decode())
            time.sleep(0.1)
        yield base, proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key=API_KEY, max_retries=0, timeout=60)


def test_models(client):
    assert [m.id for m in client.models.list().data] == ["tiny"]


def test_completion_is_seeded(client):
    a = client.completions.create(model="tiny", prompt="the ", max_tokens=20, seed=3)
    b = client.completions.create(model="tiny", prompt="the ", max_tokens=20, seed=3)
    assert a.choices[0].text == b.choices[0].text
    assert len(a.choices[0].text) == 20
    assert a.choices[0].finish_reason == "length"
    assert a.usage.completion_tokens == 20


def test_completion_options(client):
    r = client.completions.create(
        model="tiny", prompt="the", max_tokens=5, n=2, logprobs=2, echo=True,
        temperature=0.7, top_p=0.9, stop=["zz"], seed=1,
    )
    assert len(r.choices) == 2
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == 8 and lp.token_logprobs[0] is None
    assert r.choices[0].text.startswith("the")


def test_streaming_completion(client):
    whole = client.completions.create(model="tiny", prompt="a ", max_tokens=15, seed=4)
    stream = client.completions.create(
        model="tiny", prompt="a ", max_tokens=15, seed=4, stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].text
        if chunk.usage:
            usage = chunk.usage
    assert text == whole.choices[0].text
    assert usage.completion_tokens == 15


def test_chat(client):
    r = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "the cat "}], max_tokens=10, seed=2,
    )
    assert r.choices[0].message.role == "assistant"
    assert len(r.choices[0].message.content) == 10
    stream = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "the cat "}], max_tokens=10, seed=2,
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == r.choices[0].message.content


def test_errors_are_exceptions(client):
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope", prompt="a", max_tokens=2)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="tiny", prompt="a", max_tokens=2, temperature=5)
    bad = openai.OpenAI(base_url=client.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
