"""OpenAI and Ollama clients on an OpenAI-compatible upstream (DeepSeek, Kimi, a local Ollama...)."""

from __future__ import annotations

import json

import openai
import pytest

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def compat(fake_openai, mapping):
    mapping("deepseek-chat", "gpt-4o-mini", upstream="compat")
    mapping("embed-small", "text-embedding-3-small", upstream="compat")
    return fake_openai


def test_openai_client_passes_through(openai_client, compat, usage_rows):
    body = dict(
        model="deepseek-chat",
        messages=[{"role": "user", "content": "hello"}],
        logit_bias={"50256": -100},
        parallel_tool_calls=False,
        user="u-1",
    )
    resp = openai_client.chat.completions.create(**body)
    assert resp.model == "deepseek-chat" and "hello" in resp.choices[0].message.content
    sent = compat.requests[-1]["json"]
    assert sent == {**body, "model": "gpt-4o-mini"}  # unchanged but for the model
    (row,) = usage_rows()
    assert (
        row.upstream_name == "compat" and row.total_tokens == resp.usage.total_tokens and row.token_source == "reported"
    )


def test_stream_usage_forced_upstream_and_stripped_for_client(openai_client, compat, usage_rows):
    chunks = list(
        openai_client.chat.completions.create(
            model="deepseek-chat", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert compat.requests[-1]["json"]["stream_options"] == {"include_usage": True}
    assert all(c.choices for c in chunks) and {c.model for c in chunks} == {"deepseek-chat"}
    assert usage_rows()[-1].total_tokens > 0  # known from the upstream's usage chunk all the same
    with_usage = list(
        openai_client.chat.completions.create(
            model="deepseek-chat",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert with_usage[-1].choices == [] and with_usage[-1].usage.total_tokens > 0


def test_upstream_errors_and_broken_stream(openai_client, compat, usage_rows):
    compat.script("error", status=429)
    with pytest.raises(openai.RateLimitError):
        openai_client.chat.completions.create(model="deepseek-chat", messages=[{"role": "user", "content": "x"}])
    compat.script("break_midstream", after=2)
    with pytest.raises(openai.APIError):
        for _ in openai_client.chat.completions.create(
            model="deepseek-chat", messages=[{"role": "user", "content": "a long reply"}], stream=True
        ):
            pass
    assert [r.status for r in usage_rows()] == [429, 502]


def test_embeddings_and_models_on_compat(openai_client, compat):
    resp = openai_client.embeddings.create(model="embed-small", input=["a", "b"])
    assert [d.index for d in resp.data] == [0, 1] and len(resp.data[0].embedding) > 0
    assert compat.requests[-1]["json"]["model"] == "text-embedding-3-small"
    assert "deepseek-chat" in [m.id for m in openai_client.models.list()]


def test_ollama_client_on_compat_upstream(ollama_client, compat, usage_rows):
    resp = ollama_client.chat(model="deepseek-chat", messages=[{"role": "user", "content": "hey"}])
    assert "hey" in resp.message.content and resp.eval_count > 0
    compat.script("tool_calls", calls=[("get_weather", {"city": "Kyiv"})])
    parts = list(
        ollama_client.chat(
            model="deepseek-chat",
            messages=[{"role": "user", "content": "Kyiv?"}],
            stream=True,
            tools=[
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                    },
                }
            ],
        )
    )
    calls = [c for p in parts for c in (p.message.tool_calls or [])]
    assert calls[0].function.arguments == {"city": "Kyiv"}  # fragments accumulated into one call
    emb = ollama_client.embed(model="embed-small", input="a")
    assert len(emb.embeddings) == 1
    assert {r.dialect for r in usage_rows()} == {"ollama"}
    assert json.loads(json.dumps(compat.requests[0]["json"]))["model"] == "gpt-4o-mini"
