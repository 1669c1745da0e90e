"""OpenAICompatClient against the fake OpenAI server: embeddings, model lists, and the native
pass-through helpers (usage and output counting on raw replies).
"""

from __future__ import annotations

import base64
import struct

import pytest

from proxy_app.core import hub
from proxy_app.core.errors import InvalidRequest, NotFound, UpstreamError, UpstreamUnavailable
from proxy_app.upstreams.openai_compat import codec
from tests.openai_compat_helpers import KEY, client, fake

EMBED = "text-embedding-3-small"


# --------------------------------------------------------------------------- embeddings and models


async def test_embed_asks_for_floats_and_reads_usage(client, fake):
    fake.embedding_dims = 4
    req = hub.EmbedRequest(
        model="alias", inputs=["alpha", "beta"], dimensions=3, upstream_model="text-embedding-3-small"
    )
    resp = await client.embed(req)

    assert fake.last_request["json"] == {
        "model": "text-embedding-3-small",
        "input": ["alpha", "beta"],
        "encoding_format": "float",
        "dimensions": 3,
    }
    assert [len(v) for v in resp.vectors] == [3, 3] and resp.vectors[0] != resp.vectors[1]
    assert resp.usage.source == "reported" and resp.usage.prompt_tokens == 3 and resp.usage.completion_tokens == 0


async def test_embed_orders_by_index_and_estimates_missing_usage(client, fake):
    packed = base64.b64encode(struct.pack("<2f", 0.5, -1.25)).decode()
    fake.script(
        "raw",
        on="embeddings",
        body={
            "object": "list",
            "model": "m",
            "data": [
                {"object": "embedding", "index": 1, "embedding": [1.0, 1.0]},
                {"object": "embedding", "index": 0, "embedding": packed},  # base64 from a server that ignored float
            ],
        },
    )
    resp = await client.embed(hub.EmbedRequest(model="a", inputs=["first text", "second"], upstream_model=EMBED))

    assert resp.vectors == [[0.5, -1.25], [1.0, 1.0]]
    assert resp.usage == hub.Usage(
        prompt_tokens=hub.estimate_tokens("first text") + hub.estimate_tokens("second"), source="estimated"
    )


async def test_embed_count_mismatch_is_an_error(client, fake):
    fake.script("raw", on="embeddings", body={"data": [{"index": 0, "embedding": [1.0]}]})
    with pytest.raises(UpstreamError, match="returned 1 embeddings for 2 inputs"):
        await client.embed(hub.EmbedRequest(model="a", inputs=["x", "y"], upstream_model=EMBED))


async def test_embed_errors_are_mapped(client, fake):
    with pytest.raises(NotFound):
        await client.embed(hub.EmbedRequest(model="a", inputs=["x"], upstream_model="nope"))


async def test_list_models(client, fake):
    models = await client.list_models()

    assert fake.last_request["path"] == "/v1/models"
    assert fake.last_request["headers"]["authorization"] == f"Bearer {KEY}"
    assert models[0] == hub.ModelInfo(
        id="gpt-4o-mini", owned_by="system", created=1721172741, display_name="gpt-4o-mini"
    )
    assert "text-embedding-3-small" in [m.id for m in models]


# --------------------------------------------------------------------------- pass-through


async def test_forward_chat_passes_the_body_through(client, fake):
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "parallel_tool_calls": False,
        "logit_bias": {"1": -100},
        "user": "u1",
        "stream_options": {"include_usage": True},
    }
    reply = await client.forward_chat(body)

    sent = fake.last_request["json"]
    assert sent == {**{k: v for k, v in body.items() if k != "stream_options"}, "stream": False}
    assert reply["object"] == "chat.completion" and reply["model"] == "gpt-4o-mini-2024-07-18"
    assert reply["choices"][0]["message"]["content"] == "Hello from fake OpenAI: hi"
    assert codec.usage_of(reply).prompt_tokens == reply["usage"]["prompt_tokens"]


async def test_forward_chat_maps_errors(client, fake):
    with pytest.raises(InvalidRequest) as info:
        await client.forward_chat({"model": "gpt-4o-mini", "messages": []})
    assert info.value.code == "empty_array" and info.value.param == "messages"


async def test_forward_chat_stream_forces_usage_and_stops_at_done(client, fake):
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": False},
    }
    chunks = [c async for c in client.forward_chat_stream(body)]

    assert fake.last_request["json"]["stream_options"] == {"include_usage": True}
    assert body["stream_options"] == {"include_usage": False}  # the caller's dict is not changed
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert (
        "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        == "Hello from fake OpenAI: hi"
    )
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert sum(codec.chunk_chars(c) for c in chunks) == len("Hello from fake OpenAI: hi")
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)


async def test_forward_chat_stream_errors(client, fake):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    fake.script("error_midstream", after=2, message="boom")
    fake.script("break_midstream", after=2)
    fake.script(
        "raw", body=['data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'], content_type="text/event-stream"
    )
    fake.script("error", status=503)
    seen = []
    with pytest.raises(UpstreamError, match="boom"):
        async for chunk in client.forward_chat_stream(body):
            seen.append(chunk)
    assert len(seen) == 2
    with pytest.raises(UpstreamError, match="broke"):
        [c async for c in client.forward_chat_stream(body)]
    with pytest.raises(UpstreamError, match="ended the stream"):
        [c async for c in client.forward_chat_stream(body)]
    with pytest.raises(UpstreamUnavailable):
        [c async for c in client.forward_chat_stream(body)]


async def test_forward_chat_stream_accepts_finish_without_done_and_done_without_usage(client, fake):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    finish_only = 'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    fake.script("raw", body=[finish_only], content_type="text/event-stream")
    fake.script("no_usage")
    assert len([c async for c in client.forward_chat_stream(body)]) == 1
    chunks = [c async for c in client.forward_chat_stream(body)]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_forward_embeddings_passes_the_body_through(client, fake):
    body = {"model": "text-embedding-3-small", "input": [[1, 2, 3], [4]], "encoding_format": "base64", "dimensions": 2}
    reply = await client.forward_embeddings(body)

    assert fake.last_request["json"] == body
    assert [d["index"] for d in reply["data"]] == [0, 1] and isinstance(reply["data"][0]["embedding"], str)
    assert reply["usage"]["prompt_tokens"] > 0
