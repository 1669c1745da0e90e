"""OpenAICompatClient against the fake OpenAI server (tests/fakes/openai_compat.py): chat, streams,
errors.

Everything goes through the one shared outbound client with the fake as its transport; asserts
look at what the fake received as well as at what the client returned.
"""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from proxy_app.core import hub
from proxy_app.core.errors import (
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from proxy_app.upstreams import http as upstream_http
from proxy_app.upstreams.base import UpstreamConfig
from proxy_app.upstreams.openai_compat.client import OpenAICompatClient
from tests.fakes.openai_compat import FakeOpenAI
from tests.openai_compat_helpers import BASE, KEY, chat_request, client, fake, user

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 8).decode()
WEATHER = hub.Tool(
    "get_weather",
    "Weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


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
        tools=[WEATHER],
        tool_choice=hub.ToolChoice("auto"),
        temperature=0.5,
        top_p=0.9,
        top_k=20,
        n=2,
        stop=["END"],
        seed=7,
        presence_penalty=0.1,
        frequency_penalty=0.2,
        max_tokens=100,
        logprobs=True,
        top_logprobs=2,
        reasoning_effort="low",
    )
    req.messages = [
        hub.Message("system", [hub.Part("text", text="Be brief.")]),
        hub.Message(
            "user",
            [
                hub.Part("text", text="Look:"),
                hub.Part("media", mime_type="image/png", data=PNG),
                hub.Part("media", mime_type="audio/wav", data="UklGRg=="),
                hub.Part("media", mime_type="application/pdf", data="JVBERi0="),
            ],
        ),
        hub.Message("assistant", [], tool_calls=[call]),
        hub.Message("tool", [hub.Part("text", text='{"temp": 21}')], tool_call_id="call_1", name="get_weather"),
    ]
    resp = await client.chat(req)

    body = fake.last_request["json"]
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look:"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                {"type": "file", "file": {"filename": "file.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {"name": "get_weather", "description": "Weather for a city", "parameters": WEATHER.parameters},
        }
    ]
    assert {k: body[k] for k in ("tool_choice", "temperature", "top_p", "top_k", "n", "stop", "seed")} == {
        "tool_choice": "auto",
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 20,
        "n": 2,
        "stop": ["END"],
        "seed": 7,
    }
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
        "type": "json_schema",
        "json_schema": {"name": "numbers", "schema": schema},
    }
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
    fake.script(
        "tool_calls",
        calls=[("get_weather", {"city": "Paris", "days": 3}, "call_a"), ("get_weather", {"city": "Rome"}, "call_b")],
        fragments=4,
    )
    events = await collect(client.stream_chat(chat_request(stream=True, tools=[WEATHER])))

    with_calls = [d for e in events for d in e.deltas if d.tool_calls]
    assert len(with_calls) == 1  # held back until the choice finished, then emitted whole
    delta = with_calls[0]
    assert delta.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in delta.tool_calls] == [
        ("call_a", "get_weather", {"city": "Paris", "days": 3}),
        ("call_b", "get_weather", {"city": "Rome"}),
    ]


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
        ("error", "upstream returned invalid tool call arguments")
    ]


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


@pytest.mark.parametrize(
    ("script", "error_class", "status", "message"),
    [
        (
            {"status": 400, "message": "Invalid 'messages[0]'.", "param": "messages"},
            InvalidRequest,
            400,
            "Invalid 'messages[0]'.",
        ),
        ({"status": 422, "message": "Field required"}, InvalidRequest, 400, "Field required"),
        ({"status": 401}, UpstreamError, 502, "upstream authentication failed"),
        ({"status": 403}, UpstreamError, 502, "upstream authentication failed"),
        ({"status": 404}, NotFound, 404, "The model `gpt-5` does not exist or you do not have access to it."),
        ({"status": 413, "message": "Request too large"}, PayloadTooLarge, 413, "Request too large"),
        ({"status": 429, "retry_after": "7"}, RateLimited, 429, None),
        (
            {
                "status": 429,
                "type": "insufficient_quota",
                "code": "insufficient_quota",
                "message": "You exceeded your current quota",
            },
            UpstreamError,
            502,
            "upstream quota exhausted: You exceeded your current quota",
        ),
        ({"status": 500}, UpstreamError, 502, None),
        ({"status": 502, "message": "Bad gateway"}, UpstreamError, 502, "Bad gateway"),
        ({"status": 503}, UpstreamUnavailable, 503, "The engine is currently overloaded, please try again later."),
        ({"status": 504, "message": "Timed out"}, UpstreamTimeout, 504, "Timed out"),
    ],
)
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


@pytest.mark.parametrize(
    ("status", "body", "content_type", "error_class"),
    [
        (502, b"<html>bad gateway</html>", "text/html", UpstreamError),
        (400, b"bad request", "text/plain", InvalidRequest),
        (404, b"404 page not found", "text/plain", UpstreamError),  # wrong base URL, not a missing model
        (200, b"<html>oops</html>", "text/html", UpstreamError),
    ],
)
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


@pytest.mark.parametrize(
    ("exc", "error_class"),
    [
        (httpx.ConnectError("refused"), UpstreamUnavailable),
        (httpx.ReadTimeout("slow"), UpstreamTimeout),
        (httpx.RemoteProtocolError("gone"), UpstreamError),
    ],
)
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
