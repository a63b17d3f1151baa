"""The official OpenAI Python client against `recurrent serve`, unchanged.

The server (tests/python/conftest.py) runs target/debug/recurrent on a free
loopback port. Skips when the `openai` package is not installed. Run with
scripts/test_python.sh.
"""

import pytest

from conftest import API_KEY

openai = pytest.importorskip("openai")


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
