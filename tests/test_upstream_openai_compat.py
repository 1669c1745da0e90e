"""OpenAICompatClient and its codec against the fake OpenAI server (tests/fakes/openai_compat.py).

Everything goes through the one shared outbound client with the fake as its transport; asserts
look at what the fake received as well as at what the client returned. The pure codec tables
(openai_outbound) sit at the end.
"""

from __future__ import annotations

import base64
import json
import struct

import httpx
import pytest

from proxy_app import hub
from proxy_app.dialects import openai_outbound as codec
from proxy_app.errors import (
    InvalidRequest, NotFound, PayloadTooLarge, RateLimited, UpstreamError, UpstreamTimeout,
    UpstreamUnavailable,
)  # fmt: skip
from proxy_app.upstreams import http as upstream_http
from proxy_app.upstreams.base import UpstreamConfig
from proxy_app.upstreams.openai_compat import OpenAICompatClient
from tests.fakes.openai_compat import FakeOpenAI

KEY = "test-openai-key"
BASE = "http://openai.test/v1"
EMBED = "text-embedding-3-small"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 8).decode()
WEATHER = hub.Tool(
    "get_weather", "Weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)  # fmt: skip


def user(text: str) -> hub.Message:
    return hub.Message("user", [hub.Part("text", text=text)])


def chat_request(text: str = "hi there", **kw) -> hub.ChatRequest:
    return hub.ChatRequest(model="alias", messages=[user(text)], upstream_model="gpt-4o-mini", **kw)


@pytest.fixture
def fake():
    fake = FakeOpenAI(api_key=KEY)
    upstream_http.set_transport(httpx.MockTransport(fake.handler))
    yield fake
    upstream_http.set_transport(None)


@pytest.fixture
def client(fake) -> OpenAICompatClient:
    return OpenAICompatClient(UpstreamConfig(name="oa", kind="openai", base_url=BASE, api_key=KEY))


async def collect(events) -> list[hub.StreamEvent]:
    return [event async for event in events]


def joined(events: list[hub.StreamEvent], attr: str = "text") -> str:
    return "".join(getattr(d, attr) for e in events for d in e.deltas)


def finishes(events: list[hub.StreamEvent]) -> list[str]:
    return [d.finish_reason for e in events for d in e.deltas if d.finish_reason]


# --------------------------------------------------------------------------- chat


async def test_chat_sends_bearer_key_and_reads_the_reply(client, fake):
    resp = await client.chat(chat_request())

    assert resp.choices[0].text == "Hello from fake OpenAI: hi there"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.source == "reported" and resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0
    assert resp.response_id.startswith("chatcmpl-")
    sent = fake.last_request
    assert (sent["method"], sent["path"]) == ("POST", "/v1/chat/completions")
    assert sent["headers"]["authorization"] == f"Bearer {KEY}"
    assert sent["json"] == {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi there"}]}


async def test_no_authorization_header_without_a_key():
    fake = FakeOpenAI(api_key=None)  # a local server: no key needed
    upstream_http.set_transport(httpx.MockTransport(fake.handler))
    try:
        client = OpenAICompatClient(UpstreamConfig("local", "openai", "http://127.0.0.1:11434/v1/", ""))
        await client.chat(chat_request())
    finally:
        upstream_http.set_transport(None)
    assert "authorization" not in fake.last_request["headers"]
    assert fake.last_request["path"] == "/v1/chat/completions"  # trailing slash of the base URL dropped


async def test_full_conversation_reaches_the_upstream_in_openai_shape(client, fake):
    call = hub.ToolCall("call_1", "get_weather", {"city": "Paris"})
    req = chat_request(
        tools=[WEATHER], tool_choice=hub.ToolChoice("auto"), temperature=0.5, top_p=0.9, top_k=20, n=2,
        stop=["END"], seed=7, presence_penalty=0.1, frequency_penalty=0.2, max_tokens=100,
        logprobs=True, top_logprobs=2, reasoning_effort="low",
    )
    req.messages = [
        hub.Message("system", [hub.Part("text", text="Be brief.")]),
        hub.Message("user", [
            hub.Part("text", text="Look:"), hub.Part("media", mime_type="image/png", data=PNG),
            hub.Part("media", mime_type="audio/wav", data="UklGRg=="),
            hub.Part("media", mime_type="application/pdf", data="JVBERi0="),
        ]),
        hub.Message("assistant", [], tool_calls=[call]),
        hub.Message("tool", [hub.Part("text", text='{"temp": 21}')], tool_call_id="call_1", name="get_weather"),
    ]
    resp = await client.chat(req)

    body = fake.last_request["json"]
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [
            {"type": "text", "text": "Look:"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
            {"type": "file", "file": {"filename": "file.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
        ]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
    ]
    assert body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city", "parameters": WEATHER.parameters}}]
    assert {k: body[k] for k in ("tool_choice", "temperature", "top_p", "top_k", "n", "stop", "seed")} == {
        "tool_choice": "auto", "temperature": 0.5, "top_p": 0.9, "top_k": 20, "n": 2, "stop": ["END"], "seed": 7}
    assert (body["presence_penalty"], body["frequency_penalty"], body["max_tokens"]) == (0.1, 0.2, 100)
    assert (body["logprobs"], body["top_logprobs"], body["reasoning_effort"]) == (True, 2, "low")
    assert "stream" not in body
    assert [c.index for c in resp.choices] == [0, 1]
    assert resp.choices[0].text == 'Tool said: ["{\\"temp\\": 21}"]'
    assert resp.choices[0].logprobs and resp.choices[0].logprobs[0].token == "Tool "
    assert len(resp.choices[0].logprobs[0].top) == 2


async def test_chat_tool_call_reply(client, fake):
    resp = await client.chat(chat_request(tools=[WEATHER], tool_choice=hub.ToolChoice("required", ["get_weather"])))

    assert fake.last_request["json"]["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.text == ""
    assert [(c.name, c.arguments) for c in choice.tool_calls] == [("get_weather", {"city": "sample city"})]
    assert choice.tool_calls[0].id.startswith("call_")


async def test_chat_response_format_json_schema(client, fake):
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    resp = await client.chat(chat_request(response_format=hub.ResponseFormat("json_schema", schema, "numbers")))

    assert fake.last_request["json"]["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "numbers", "schema": schema}}
    assert json.loads(resp.choices[0].text) == {"n": 1}


async def test_chat_reasoning_is_read_from_either_field(client, fake):
    fake.script("reasoning", reasoning="Hmm.", text="Done.")
    fake.script("reasoning", reasoning="Ollama thinks.", text="Ok.", field="reasoning")
    deepseek = await client.chat(chat_request())
    ollama = await client.chat(chat_request())

    assert (deepseek.choices[0].reasoning, deepseek.choices[0].text) == ("Hmm.", "Done.")
    assert deepseek.usage.reasoning_tokens > 0
    assert (ollama.choices[0].reasoning, ollama.choices[0].text) == ("Ollama thinks.", "Ok.")


async def test_chat_without_usage_is_estimated_and_flagged(client, fake):
    fake.script("no_usage")
    resp = await client.chat(chat_request())

    assert resp.usage.source == "estimated"
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens == hub.estimate_tokens(resp.choices[0].text)


async def test_chat_with_invalid_tool_arguments_finishes_with_error(client, fake):
    fake.script("tool_calls", calls=[("get_weather", '{"city": "Par')])
    resp = await client.chat(chat_request(tools=[WEATHER]))

    assert resp.choices[0].finish_reason == "error"
    assert resp.choices[0].finish_message == "upstream returned invalid tool call arguments"


# --------------------------------------------------------------------------- streams


async def test_stream_asks_for_usage_and_yields_text_then_usage(client, fake):
    events = await collect(client.stream_chat(chat_request(stream=True)))

    sent = fake.last_request["json"]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert joined(events) == "Hello from fake OpenAI: hi there"
    assert finishes(events) == ["stop"]
    assert events[-1].deltas == [] and events[-1].usage.completion_tokens > 0
    assert events[-1].usage.source == "reported"


async def test_stream_usage_is_requested_even_when_the_client_did_not_ask(client, fake):
    await collect(client.stream_chat(chat_request(stream=True, include_usage=False)))
    assert fake.last_request["json"]["stream_options"] == {"include_usage": True}


async def test_stream_reasoning_deltas(client, fake):
    fake.script("reasoning", reasoning="First think. Then answer.", text="Answer.")
    events = await collect(client.stream_chat(chat_request(stream=True)))

    assert joined(events, "reasoning") == "First think. Then answer."
    assert joined(events) == "Answer."
    assert events[-1].usage.reasoning_tokens > 0


async def test_stream_accumulates_tool_call_fragments(client, fake):
    fake.script("tool_calls", calls=[("get_weather", {"city": "Paris", "days": 3}, "call_a"),
                                     ("get_weather", {"city": "Rome"}, "call_b")], fragments=4)
    events = await collect(client.stream_chat(chat_request(stream=True, tools=[WEATHER])))

    with_calls = [d for e in events for d in e.deltas if d.tool_calls]
    assert len(with_calls) == 1  # held back until the choice finished, then emitted whole
    delta = with_calls[0]
    assert delta.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in delta.tool_calls] == [
        ("call_a", "get_weather", {"city": "Paris", "days": 3}), ("call_b", "get_weather", {"city": "Rome"})]


async def test_stream_finish_on_the_last_content_chunk(client, fake):
    fake.script("finish_on_content", text="one two")
    events = await collect(client.stream_chat(chat_request(stream=True)))

    last = [d for e in events for d in e.deltas][-1]
    assert (last.text, last.finish_reason) == ("two", "stop")
    assert joined(events) == "one two"


async def test_stream_without_usage_or_role_chunk_still_completes(client, fake):
    fake.script("no_usage", no_role=True)
    events = await collect(client.stream_chat(chat_request(stream=True)))

    assert joined(events) == "Hello from fake OpenAI: hi there" and finishes(events) == ["stop"]
    assert all(e.usage is None for e in events)


async def test_stream_invalid_tool_arguments_finish_with_error(client, fake):
    fake.script("tool_calls", calls=[("get_weather", '{"city": ')])
    events = await collect(client.stream_chat(chat_request(stream=True, tools=[WEATHER])))

    failed = [d for e in events for d in e.deltas if d.finish_reason]
    assert [(d.finish_reason, d.finish_message) for d in failed] == [
        ("error", "upstream returned invalid tool call arguments")]


async def test_stream_broken_midway_is_an_upstream_error(client, fake):
    fake.script("break_midstream", after=3)
    events = []
    with pytest.raises(UpstreamError, match="broke"):
        async for event in client.stream_chat(chat_request(stream=True)):
            events.append(event)
    assert joined(events) == "Hello from "


async def test_stream_error_event_midway_is_raised_mapped(client, fake):
    fake.script("error_midstream", after=2, message="The server had an error while processing your request.")
    fake.script("error_midstream", after=2, message="Slow down", type="tokens", code="rate_limit_exceeded")
    with pytest.raises(UpstreamError) as first:
        await collect(client.stream_chat(chat_request(stream=True)))
    with pytest.raises(RateLimited) as second:
        await collect(client.stream_chat(chat_request(stream=True)))

    assert (first.value.status, first.value.message) == (502, "The server had an error while processing your request.")
    assert (second.value.status, second.value.message) == (429, "Slow down")


async def test_stream_that_ends_without_a_finish_is_an_error(client, fake):
    frames = ['data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n', "data: [DONE]\n\n"]
    fake.script("raw", body=frames, content_type="text/event-stream")
    fake.script("raw", body=frames[:1], content_type="text/event-stream")
    for _ in range(2):
        with pytest.raises(UpstreamError, match="ended the stream before the answer was complete"):
            await collect(client.stream_chat(chat_request(stream=True)))


async def test_stream_http_error_raises_before_any_event(client, fake):
    fake.script("error", status=429)
    events = client.stream_chat(chat_request(stream=True))
    with pytest.raises(RateLimited) as info:
        await anext(events)
    assert info.value.retry_after == 20


async def test_stream_that_is_not_an_event_stream_is_an_error(client, fake):
    fake.script("raw", body={"choices": []})
    with pytest.raises(UpstreamError, match="did not answer with an event stream"):
        await collect(client.stream_chat(chat_request(stream=True)))


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("script", "error_class", "status", "message"), [
    ({"status": 400, "message": "Invalid 'messages[0]'.", "param": "messages"}, InvalidRequest, 400,
     "Invalid 'messages[0]'."),
    ({"status": 422, "message": "Field required"}, InvalidRequest, 400, "Field required"),
    ({"status": 401}, UpstreamError, 502, "upstream authentication failed"),
    ({"status": 403}, UpstreamError, 502, "upstream authentication failed"),
    ({"status": 404}, NotFound, 404, "The model `gpt-5` does not exist or you do not have access to it."),
    ({"status": 413, "message": "Request too large"}, PayloadTooLarge, 413, "Request too large"),
    ({"status": 429, "retry_after": "7"}, RateLimited, 429, None),
    ({"status": 429, "type": "insufficient_quota", "code": "insufficient_quota", "message": "You exceeded your current quota"},
     UpstreamError, 502, "upstream quota exhausted: You exceeded your current quota"),
    ({"status": 500}, UpstreamError, 502, None),
    ({"status": 502, "message": "Bad gateway"}, UpstreamError, 502, "Bad gateway"),
    ({"status": 503}, UpstreamUnavailable, 503, "The engine is currently overloaded, please try again later."),
    ({"status": 504, "message": "Timed out"}, UpstreamTimeout, 504, "Timed out"),
])  # fmt: skip
async def test_upstream_errors_map_by_status(client, fake, script, error_class, status, message):
    fake.script("error", **script)
    with pytest.raises(error_class) as info:
        await client.chat(chat_request())
    assert type(info.value) is error_class and info.value.status == status
    if message:
        assert info.value.message == message
    if status == 429 and error_class is RateLimited:
        assert info.value.retry_after == 7
    if script["status"] == 400:
        assert info.value.param == "messages"


async def test_wrong_key_is_a_502_that_never_echoes_the_key(fake):
    client = OpenAICompatClient(UpstreamConfig("oa", "openai", BASE, "sk-wrong-secret-key-123456"))
    with pytest.raises(UpstreamError) as info:
        await client.chat(chat_request())
    assert fake.last_request["headers"]["authorization"] == "Bearer sk-wrong-secret-key-123456"
    assert info.value.status == 502 and info.value.message == "upstream authentication failed"
    assert "3456" not in info.value.message


async def test_unknown_upstream_model_is_404(client, fake):
    with pytest.raises(NotFound) as info:
        await client.chat(hub.ChatRequest(model="alias", messages=[user("hi")], upstream_model="gpt-9"))
    assert info.value.message == "The model `gpt-9` does not exist or you do not have access to it."


@pytest.mark.parametrize(("status", "body", "content_type", "error_class"), [
    (502, b"<html>bad gateway</html>", "text/html", UpstreamError),
    (400, b"bad request", "text/plain", InvalidRequest),
    (404, b"404 page not found", "text/plain", UpstreamError),  # wrong base URL, not a missing model
    (200, b"<html>oops</html>", "text/html", UpstreamError),
])  # fmt: skip
async def test_non_json_replies(client, fake, status, body, content_type, error_class):
    fake.script("raw", status=status, body=body, content_type=content_type)
    with pytest.raises(error_class) as info:
        await client.chat(chat_request())
    assert type(info.value) is error_class


async def test_retry_after_ms_is_honoured(client, fake):
    fake.script("error", status=429, headers={"retry-after-ms": "1500", "retry-after": "9"})
    with pytest.raises(RateLimited) as info:
        await client.chat(chat_request())
    assert info.value.retry_after == 2


async def test_error_object_in_a_200_body_is_raised(client, fake):
    fake.script("raw", body={"error": {"message": "Provider returned error", "code": 429}})
    with pytest.raises(RateLimited, match="Provider returned error"):
        await client.chat(chat_request())


@pytest.mark.parametrize(("exc", "error_class"), [
    (httpx.ConnectError("refused"), UpstreamUnavailable),
    (httpx.ReadTimeout("slow"), UpstreamTimeout),
    (httpx.RemoteProtocolError("gone"), UpstreamError),
])  # fmt: skip
async def test_transport_failures(exc, error_class):
    def fail(request):
        raise exc

    upstream_http.set_transport(httpx.MockTransport(fail))
    try:
        client = OpenAICompatClient(UpstreamConfig("oa", "openai", BASE, KEY))
        with pytest.raises(error_class):
            await client.chat(chat_request())
        with pytest.raises(error_class):
            await collect(client.stream_chat(chat_request(stream=True)))
    finally:
        upstream_http.set_transport(None)


# --------------------------------------------------------------------------- embeddings and models


async def test_embed_asks_for_floats_and_reads_usage(client, fake):
    fake.embedding_dims = 4
    req = hub.EmbedRequest(model="alias", inputs=["alpha", "beta"], dimensions=3, upstream_model="text-embedding-3-small")
    resp = await client.embed(req)

    assert fake.last_request["json"] == {
        "model": "text-embedding-3-small", "input": ["alpha", "beta"], "encoding_format": "float", "dimensions": 3}
    assert [len(v) for v in resp.vectors] == [3, 3] and resp.vectors[0] != resp.vectors[1]
    assert resp.usage.source == "reported" and resp.usage.prompt_tokens == 3 and resp.usage.completion_tokens == 0


async def test_embed_orders_by_index_and_estimates_missing_usage(client, fake):
    packed = base64.b64encode(struct.pack("<2f", 0.5, -1.25)).decode()
    fake.script("raw", on="embeddings", body={"object": "list", "model": "m", "data": [
        {"object": "embedding", "index": 1, "embedding": [1.0, 1.0]},
        {"object": "embedding", "index": 0, "embedding": packed},  # base64 from a server that ignored float
    ]})
    resp = await client.embed(hub.EmbedRequest(model="a", inputs=["first text", "second"], upstream_model=EMBED))

    assert resp.vectors == [[0.5, -1.25], [1.0, 1.0]]
    assert resp.usage == hub.Usage(prompt_tokens=hub.estimate_tokens("first text") + hub.estimate_tokens("second"),
                                   source="estimated")


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
    assert models[0] == hub.ModelInfo(id="gpt-4o-mini", owned_by="system", created=1721172741,
                                      display_name="gpt-4o-mini")
    assert "text-embedding-3-small" in [m.id for m in models]


# --------------------------------------------------------------------------- pass-through


async def test_forward_chat_passes_the_body_through(client, fake):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "parallel_tool_calls": False,
            "logit_bias": {"1": -100}, "user": "u1", "stream_options": {"include_usage": True}}
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
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "stream_options": {"include_usage": False}}
    chunks = [c async for c in client.forward_chat_stream(body)]

    assert fake.last_request["json"]["stream_options"] == {"include_usage": True}
    assert body["stream_options"] == {"include_usage": False}  # the caller's dict is not changed
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == \
        "Hello from fake OpenAI: hi"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert sum(codec.chunk_chars(c) for c in chunks) == len("Hello from fake OpenAI: hi")
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)


async def test_forward_chat_stream_errors(client, fake):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    fake.script("error_midstream", after=2, message="boom")
    fake.script("break_midstream", after=2)
    fake.script("raw", body=['data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'],
                content_type="text/event-stream")
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


# --------------------------------------------------------------------------- codec tables


@pytest.mark.parametrize(("choice", "wire"), [
    (hub.ToolChoice("auto"), "auto"),
    (hub.ToolChoice("none", ["f"]), "none"),
    (hub.ToolChoice("required"), "required"),
    (hub.ToolChoice("required", ["f"]), {"type": "function", "function": {"name": "f"}}),
    (hub.ToolChoice("required", ["f", "g"]), {"type": "allowed_tools", "allowed_tools": {
        "mode": "required", "tools": [{"type": "function", "function": {"name": n}} for n in ("f", "g")]}}),
    (hub.ToolChoice("auto", ["f"]), {"type": "allowed_tools", "allowed_tools": {
        "mode": "auto", "tools": [{"type": "function", "function": {"name": "f"}}]}}),
])  # fmt: skip
def test_build_tool_choice(choice, wire):
    assert codec.build_chat_request(chat_request(tool_choice=choice))["tool_choice"] == wire


@pytest.mark.parametrize(("thinking", "effort"), [
    ({"thinkingBudget": 0}, "none"), ({"thinkingBudget": 1024}, "low"), ({"thinkingBudget": 5000}, "medium"),
    ({"thinkingBudget": 20000}, "high"), ({"thinkingBudget": -1}, None), ({"thinkingLevel": "MINIMAL"}, "minimal"),
    ({"includeThoughts": True}, None),
])  # fmt: skip
def test_gemini_thinking_config_becomes_reasoning_effort(thinking, effort):
    body = codec.build_chat_request(chat_request(thinking_config=thinking))
    assert body.get("reasoning_effort") == effort and "extra_body" not in body


def test_build_request_details():
    req = chat_request(stream=True, response_format=hub.ResponseFormat("json_object"))
    req.messages = [
        hub.Message("user", [hub.Part("text", text="a"), hub.Part("text", text="b")]),
        hub.Message("user", [hub.Part("media_url", url="https://x.test/cat.png")]),
        hub.Message("assistant", [hub.Part("text", text="sure")],
                    tool_calls=[hub.ToolCall("c1", "f", {}, thought_signature="sig")]),
        hub.Message("user", [hub.Part("media", mime_type="audio/mp3", data="AAAA")]),
    ]
    body = codec.build_chat_request(req)

    assert body["stream_options"] == {"include_usage": True} and body["response_format"] == {"type": "json_object"}
    assert body["messages"][0]["content"] == [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert body["messages"][1]["content"] == [{"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}}]
    assert body["messages"][2] == {"role": "assistant", "content": "sure", "tool_calls": [{
        "id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"},
        "extra_content": {"google": {"thought_signature": "sig"}}}]}
    assert body["messages"][3]["content"][0]["input_audio"]["format"] == "mp3"
    assert "n" not in body and "logprobs" not in body and "max_tokens" not in body
    with pytest.raises(InvalidRequest) as info:
        codec.build_chat_request(chat_request(cached_content="cachedContents/abc"))
    assert info.value.param == "cached_content"


def test_parse_chat_response_tolerance():
    resp = codec.parse_chat_response({"id": "x", "choices": [
        {"message": {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                     "reasoning": "why"}, "finish_reason": None},
        {"index": 1, "message": {"content": None, "function_call": {"name": "f", "arguments": '{"a":1}'}},
         "finish_reason": "function_call"},
        {"index": 2, "message": {"content": None, "tool_calls": [
            {"function": {"name": "g", "arguments": ""},
             "extra_content": {"google": {"thought_signature": "s"}}}]}, "finish_reason": "stop"},
        {"index": 3, "message": {"content": "", "refusal": "I can't."}, "finish_reason": "content_filter"},
        {"index": 4, "message": {"content": "cut"}, "finish_reason": "length"},
        {"index": 5, "message": {"content": "odd"}, "finish_reason": "eos"},
    ], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "prompt_cache_hit_tokens": 4,
                 "completion_tokens_details": {"reasoning_tokens": 2}, "prompt_tokens_details": None}})

    a, b, c, d, e, f = resp.choices
    assert (a.text, a.reasoning, a.finish_reason) == ("ab", "why", "stop")
    assert (b.finish_reason, b.tool_calls[0].name, b.tool_calls[0].arguments) == ("tool_calls", "f", {"a": 1})
    assert b.tool_calls[0].id.startswith("call_gw_")
    assert (c.finish_reason, c.tool_calls[0].arguments, c.tool_calls[0].thought_signature) == ("tool_calls", {}, "s")
    assert (d.text, d.finish_reason) == ("I can't.", "content_filter")
    assert (e.finish_reason, f.finish_reason) == ("length", "stop")
    assert resp.usage == hub.Usage(prompt_tokens=10, completion_tokens=5, reasoning_tokens=2, cached_tokens=4)


@pytest.mark.parametrize("body", [
    {"choices": []}, {"choices": "x"}, {"choices": [{"message": {"content": 5}}]},
    {"choices": [{"message": {}}], "usage": {"prompt_tokens": "many"}},
])  # fmt: skip
def test_parse_chat_response_rejects_malformed_replies(body):
    with pytest.raises(UpstreamError):
        codec.parse_chat_response(body)


def test_stream_reader_edge_cases():
    reader = codec.StreamReader()
    first = reader.feed({"id": "r1", "choices": [{"index": 0, "delta": {"tool_calls": [
        {"id": "a", "function": {"name": "f", "arguments": '{"x"'}}]}}]})
    reader.feed({"choices": [{"index": 0, "delta": {"tool_calls": [{"function": {"arguments": ":1}"}}]}}]})
    reader.feed({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"id": "b", "function": {"name": "g", "arguments": {"y": 2}}}]}}]})
    usage = reader.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 3, "completion_tokens": 4}})

    assert first.deltas[0].tool_calls == [] and not first.deltas[0].finish_reason and reader.response_id == "r1"
    done = usage.deltas[0]
    assert done.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in done.tool_calls] == [("a", "f", {"x": 1}), ("b", "g", {"y": 2})]
    assert usage.usage.total_tokens == 7 and reader.finished
    assert reader.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}).deltas[0].finish_reason is None


def test_stream_reader_end_flushes_unfinished_calls():
    reader = codec.StreamReader()
    reader.feed({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f"}}]}}]})
    tail = reader.end()

    assert [(c.id, c.arguments) for c in tail.deltas[0].tool_calls] == [("a", {})]
    assert tail.deltas[0].finish_reason is None and not reader.finished
    assert reader.end().deltas == []


def test_stream_reader_logprobs_and_in_band_errors():
    reader = codec.StreamReader()
    event = reader.feed({"choices": [{"index": 0, "delta": {"content": "Hi"}, "logprobs": {"content": [
        {"token": "Hi", "logprob": -0.5, "top_logprobs": [{"token": "Hi", "logprob": -0.5}]}]}}]})
    assert event.deltas[0].logprobs == [hub.TokenLogprob("Hi", -0.5, [("Hi", -0.5)])]
    with pytest.raises(UpstreamUnavailable, match="overloaded"):
        reader.feed({"error": {"message": "overloaded", "type": "overloaded_error"}})
    with pytest.raises(UpstreamError, match="malformed upstream reply"):
        reader.feed({"choices": [{"delta": {"content": ["x"]}}]})


@pytest.mark.parametrize(("status", "body", "error_class", "message"), [
    (400, {"object": "error", "message": "vLLM says no", "type": "BadRequestError", "code": 400}, InvalidRequest,
     "vLLM says no"),
    (422, {"detail": [{"loc": ["body", "model"], "msg": "Field required"}]}, InvalidRequest,
     '[{"loc": ["body", "model"], "msg": "Field required"}]'),
    (400, {"error": {"message": "API key not valid. Please pass a valid API key."}}, UpstreamError,
     "upstream authentication failed"),
    (404, {"error": "model \"x\" not found, try pulling it first"}, NotFound, 'model "x" not found, try pulling it first'),
    (500, "<html>Internal</html>", UpstreamError, "OpenAI-compatible upstream answered HTTP 500"),
    (408, "", UpstreamTimeout, "OpenAI-compatible upstream answered HTTP 408"),
    (529, {"error": {"message": "Overloaded"}}, UpstreamError, "Overloaded"),
])  # fmt: skip
def test_parse_error_table(status, body, error_class, message):
    error = codec.parse_error(status, body)
    assert type(error) is error_class and error.message == message


@pytest.mark.parametrize(("retry_after", "retry_after_ms", "seconds"), [
    ("12", None, 12), ("1.2", None, 2), (None, "250", 1), ("junk", None, 30), (None, None, 30),
    ("Wed, 21 Oct 2015 07:28:00 GMT", None, 0),
])  # fmt: skip
def test_retry_after_values(retry_after, retry_after_ms, seconds):
    error = codec.parse_error(429, {}, retry_after, retry_after_ms=retry_after_ms)
    assert isinstance(error, RateLimited) and error.retry_after == seconds


def test_embed_and_model_list_codec():
    assert codec.build_embed_request(hub.EmbedRequest(model="a", inputs=["x"])) == {
        "model": "a", "input": ["x"], "encoding_format": "float"}
    resp = codec.parse_embed_response({"data": [{"embedding": [1]}, {"embedding": [2]}], "usage": {
        "prompt_tokens": 3, "total_tokens": 3}})
    assert resp.vectors == [[1.0], [2.0]] and resp.usage == hub.Usage(prompt_tokens=3)
    assert codec.parse_model_list([{"id": "llama3"}]) == [hub.ModelInfo(id="llama3", display_name="llama3")]
    with pytest.raises(UpstreamError):
        codec.parse_model_list({"data": [{"object": "model"}]})


def test_usage_of_and_chunk_chars():
    assert codec.usage_of({"choices": []}) is None
    assert codec.usage_of({"usage": {"prompt_tokens": "bad"}}) is None
    assert codec.usage_of({"usage": {"prompt_tokens": 1, "completion_tokens": 2}}).total_tokens == 3
    chunk = {"choices": [{"delta": {"content": "ab", "reasoning_content": "c", "tool_calls": [
        {"function": {"arguments": "{}"}}]}}]}
    assert codec.chunk_chars(chunk) == 5 and codec.chunk_chars({"choices": None}) == 0
