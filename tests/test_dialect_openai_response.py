"""OpenAI dialect: chat responses, stream frames, and the real openai SDK against the codec.

Outputs are also validated with the SDK's own types; a few tests drive the SDK through
httpx.MockTransport against the codec. Pure codec tests (no Django, no DB).
"""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from proxy_app.core import errors, hub
from proxy_app.dialects.openai.request import (
    ChatStreamEncoder,
    build_chat_response,
    build_completion_response,
    build_embed_response,
    build_error,
    parse_chat_request,
    parse_embed_request,
)
from tests.dialect_helpers import PNG, b64
from tests.dialect_openai_helpers import SCHEMA, USER, decode, ev, messages, sdk, sse

# --- chat responses ----------------------------------------------------------------------------

USAGE = hub.Usage(prompt_tokens=10, completion_tokens=7, reasoning_tokens=3, cached_tokens=4)
USAGE_JSON = {
    "prompt_tokens": 10,
    "completion_tokens": 7,
    "total_tokens": 17,
    "prompt_tokens_details": {"cached_tokens": 4},
    "completion_tokens_details": {"reasoning_tokens": 3},
}


def respond(*choices: hub.Choice) -> dict:
    out = build_chat_response(
        hub.ChatResponse(list(choices), USAGE), "alias", created=1700000000, completion_id="chatcmpl-1"
    )
    ChatCompletion.model_validate(out)
    return out


def test_text_response_exact_shape():
    assert respond(hub.Choice(text="Hello")) == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "alias",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE_JSON,
    }


def test_tool_call_response():
    calls = [
        hub.ToolCall("call_1", "get_weather", {"city": "Oslo", "n": [1, 2]}, thought_signature="sig=="),
        hub.ToolCall("call_2", "get_time", {}),
    ]
    out = respond(hub.Choice(tool_calls=calls, finish_reason="stop", reasoning="thinking..."))
    assert out["choices"][0] == {
        "index": 0,
        "message": {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo","n":[1,2]}'},
                    "extra_content": {"google": {"thought_signature": "sig=="}},
                },
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
            ],
            "reasoning_content": "thinking...",
        },
        "logprobs": None,
        "finish_reason": "tool_calls",
    }
    parsed = ChatCompletion.model_validate(out)
    assert parsed.choices[0].message.tool_calls[0].model_extra == {
        "extra_content": {"google": {"thought_signature": "sig=="}}
    }


def test_huge_integers_in_arguments_still_render():
    out = respond(hub.Choice(tool_calls=[hub.ToolCall("c", "f", {"big": 10**30, "s": "é"})]))
    assert out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == (
        '{"big":1000000000000000000000000000000,"s":"é"}'
    )


def test_thought_signature_round_trips_through_history():
    out = respond(hub.Choice(tool_calls=[hub.ToolCall("call_1", "f", {"a": 1}, thought_signature="s1")]))
    message = out["choices"][0]["message"]
    back = messages(USER, message)
    assert back[1].tool_calls == [hub.ToolCall("call_1", "f", {"a": 1}, thought_signature="s1")]


@pytest.mark.parametrize(
    ("choice", "content", "finish"),
    [
        (hub.Choice(), "", "stop"),
        (hub.Choice(finish_reason="length"), "", "length"),
        (hub.Choice(finish_reason="content_filter"), "", "content_filter"),
        (hub.Choice(text="x", tool_calls=[hub.ToolCall("c", "f", {})]), "x", "tool_calls"),
        (hub.Choice(tool_calls=[hub.ToolCall("c", "f", {})], finish_reason="length"), None, "length"),
        (hub.Choice(text="a", finish_reason="tool_calls"), "a", "tool_calls"),
    ],
)
def test_content_and_finish_reason(choice, content, finish):
    out = respond(choice)["choices"][0]
    assert (out["message"]["content"], out["finish_reason"]) == (content, finish)
    assert "reasoning_content" not in out["message"]


def test_logprobs_response():
    lp = [hub.TokenLogprob("Hé", -0.5, [("Hé", -0.5), ("Hi", -1.25)])]
    out = respond(hub.Choice(text="Hé", logprobs=lp))
    assert out["choices"][0]["logprobs"] == {
        "content": [
            {
                "token": "Hé",
                "logprob": -0.5,
                "bytes": [72, 195, 169],
                "top_logprobs": [
                    {"token": "Hé", "logprob": -0.5, "bytes": [72, 195, 169]},
                    {"token": "Hi", "logprob": -1.25, "bytes": [72, 105]},
                ],
            }
        ],
        "refusal": None,
    }


def test_several_choices():
    out = respond(hub.Choice(index=0, text="a"), hub.Choice(index=1, text="b", finish_reason="length"))
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in out["choices"]] == [
        (0, "a", "stop"),
        (1, "b", "length"),
    ]


def test_error_finish_reason_is_never_rendered():
    with pytest.raises(ValueError):
        build_chat_response(
            hub.ChatResponse([hub.Choice(finish_reason="error")], USAGE), "m", created=1, completion_id="x"
        )
    with pytest.raises(ValueError):
        build_completion_response(
            hub.ChatResponse([hub.Choice(finish_reason="error")], USAGE), "m", created=1, completion_id="x"
        )


@pytest.mark.parametrize(
    ("err", "status", "body"),
    [
        (
            errors.InvalidRequest("bad", param="messages[0].content"),
            400,
            {"message": "bad", "type": "invalid_request_error", "param": "messages[0].content", "code": None},
        ),
        (
            errors.Unauthorized("no key"),
            401,
            {"message": "no key", "type": "invalid_request_error", "param": None, "code": "invalid_api_key"},
        ),
        (
            errors.Forbidden("nope"),
            403,
            {"message": "nope", "type": "invalid_request_error", "param": None, "code": "model_not_allowed"},
        ),
        (
            errors.NotFound("The model `x` does not exist"),
            404,
            {
                "message": "The model `x` does not exist",
                "type": "invalid_request_error",
                "param": None,
                "code": "model_not_found",
            },
        ),
        (
            errors.PayloadTooLarge("big"),
            413,
            {"message": "big", "type": "invalid_request_error", "param": None, "code": "request_too_large"},
        ),
        (
            errors.RateLimited("slow down", retry_after=3),
            429,
            {"message": "slow down", "type": "requests", "param": None, "code": "rate_limit_exceeded"},
        ),
        (
            errors.UpstreamError("bad reply"),
            502,
            {"message": "bad reply", "type": "server_error", "param": None, "code": "bad_gateway"},
        ),
        (
            errors.UpstreamUnavailable("down"),
            503,
            {"message": "down", "type": "server_error", "param": None, "code": "service_unavailable"},
        ),
        (
            errors.UpstreamTimeout("slow"),
            504,
            {"message": "slow", "type": "server_error", "param": None, "code": "timeout"},
        ),
    ],
)
def test_build_error(err, status, body):
    assert err.status == status
    assert build_error(err) == {"error": body}


# --- chat streams ------------------------------------------------------------------------------

HEAD = {"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1700000001, "model": "alias"}


def encoder(include_usage=False) -> ChatStreamEncoder:
    return ChatStreamEncoder("alias", completion_id="chatcmpl-9", created=1700000001, include_usage=include_usage)


def run(enc: ChatStreamEncoder, events: list[hub.StreamEvent], usage=USAGE) -> list:
    frames = [f for e in events for f in enc.encode(e)] + enc.finish(usage)
    payloads = decode(frames)
    for p in payloads[:-1]:
        ChatCompletionChunk.model_validate(p)
    assert payloads[-1] == "[DONE]"
    return payloads


def chunk(delta, index=0, finish=None, logprobs=None) -> dict:
    return {**HEAD, "choices": [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]}


ROLE = {"role": "assistant", "content": ""}


def test_text_stream_without_usage():
    got = run(
        encoder(),
        [ev(hub.ChoiceDelta(text="Hel")), ev(hub.ChoiceDelta(text="lo")), ev(hub.ChoiceDelta(finish_reason="stop"))],
    )
    assert got == [chunk(ROLE), chunk({"content": "Hel"}), chunk({"content": "lo"}), chunk({}, finish="stop"), "[DONE]"]


def test_text_stream_with_usage():
    events = [ev(hub.ChoiceDelta(text="Hi", finish_reason="length"))]
    got = run(encoder(include_usage=True), events)
    assert got == [
        chunk(ROLE),
        chunk({"content": "Hi"}),
        chunk({}, finish="length"),
        {**HEAD, "choices": [], "usage": USAGE_JSON},
        "[DONE]",
    ]


def test_empty_usage_chunk_when_no_usage_known():
    got = run(encoder(include_usage=True), [ev(hub.ChoiceDelta(finish_reason="stop"))], usage=None)
    assert got[-2]["usage"]["total_tokens"] == 0


def test_reasoning_stream():
    events = [
        ev(hub.ChoiceDelta(reasoning="hmm")),
        ev(hub.ChoiceDelta(reasoning=" ok", text="A")),
        ev(hub.ChoiceDelta(finish_reason="stop")),
    ]
    assert run(encoder(), events) == [
        chunk(ROLE),
        chunk({"reasoning_content": "hmm"}),
        chunk({"reasoning_content": " ok"}),
        chunk({"content": "A"}),
        chunk({}, finish="stop"),
        "[DONE]",
    ]


def tool_delta(k, call_id, name, args, sig=None) -> dict:
    item = {"index": k, "id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
    if sig:
        item["extra_content"] = {"google": {"thought_signature": sig}}
    return {"tool_calls": [item]}


def test_tool_call_stream_upgrades_stop():
    events = [
        ev(hub.ChoiceDelta(text="checking")),
        ev(hub.ChoiceDelta(tool_calls=[hub.ToolCall("call_1", "get_weather", {"city": "Oslo"}, "sig")])),
        ev(hub.ChoiceDelta(finish_reason="stop")),
    ]
    assert run(encoder(), events) == [
        chunk(ROLE),
        chunk({"content": "checking"}),
        chunk(tool_delta(0, "call_1", "get_weather", '{"city":"Oslo"}', "sig")),
        chunk({}, finish="tool_calls"),
        "[DONE]",
    ]


def test_parallel_tool_calls_stream():
    calls = [hub.ToolCall("call_a", "f", {"x": 1}), hub.ToolCall("call_b", "g", {})]
    events = [
        ev(hub.ChoiceDelta(tool_calls=calls[:1])),
        ev(hub.ChoiceDelta(tool_calls=calls[1:], finish_reason="stop")),
    ]
    assert run(encoder(include_usage=True), events) == [
        chunk(ROLE),
        chunk(tool_delta(0, "call_a", "f", '{"x":1}')),
        chunk(tool_delta(1, "call_b", "g", "{}")),
        chunk({}, finish="tool_calls"),
        {**HEAD, "choices": [], "usage": USAGE_JSON},
        "[DONE]",
    ]


def test_two_choices_interleaved():
    events = [
        ev(hub.ChoiceDelta(index=0, text="a"), hub.ChoiceDelta(index=1, text="b")),
        ev(hub.ChoiceDelta(index=1, tool_calls=[hub.ToolCall("c1", "f", {})]), hub.ChoiceDelta(index=0, text="c")),
        ev(hub.ChoiceDelta(index=0, finish_reason="stop"), hub.ChoiceDelta(index=1, finish_reason="stop")),
    ]
    assert run(encoder(), events) == [
        chunk(ROLE, 0),
        chunk({"content": "a"}, 0),
        chunk(ROLE, 1),
        chunk({"content": "b"}, 1),
        chunk(tool_delta(0, "c1", "f", "{}"), 1),
        chunk({"content": "c"}, 0),
        chunk({}, 0, "stop"),
        chunk({}, 1, "tool_calls"),
        "[DONE]",
    ]


def test_stream_logprobs_ride_on_content():
    lp = [hub.TokenLogprob("a", -0.1)]
    got = run(encoder(), [ev(hub.ChoiceDelta(text="a", logprobs=lp, finish_reason="stop"))])
    assert got[1] == chunk(
        {"content": "a"},
        logprobs={"content": [{"token": "a", "logprob": -0.1, "bytes": [97], "top_logprobs": []}], "refusal": None},
    )


def test_content_filter_with_no_output_still_gets_a_role_chunk():
    assert run(encoder(), [ev(hub.ChoiceDelta(finish_reason="content_filter"))]) == [
        chunk(ROLE),
        chunk({}, finish="content_filter"),
        "[DONE]",
    ]


def test_one_finish_per_choice():
    enc = encoder()
    first = enc.encode(ev(hub.ChoiceDelta(text="a", finish_reason="stop")))
    assert enc.encode(ev(hub.ChoiceDelta(text="late", finish_reason="length"))) == []
    assert enc.encode(ev(hub.ChoiceDelta(finish_reason="error"))) == []  # finished choices cannot fail
    assert len(first) == 3


def test_error_finish_raises_before_emitting_anything():
    enc = encoder()
    assert len(enc.encode(ev(hub.ChoiceDelta(text="a")))) == 2
    with pytest.raises(errors.UpstreamError) as info:
        enc.encode(ev(hub.ChoiceDelta(text="b"), hub.ChoiceDelta(index=0, finish_reason="error")))
    assert info.value.message == "the model produced a malformed function call"
    assert info.value.status == 502
    with pytest.raises(errors.UpstreamError) as info:
        encoder().encode(ev(hub.ChoiceDelta(finish_reason="error", finish_message="MALFORMED_FUNCTION_CALL: x")))
    assert info.value.message == "MALFORMED_FUNCTION_CALL: x"
    frame = enc.error(info.value)
    assert frame == (
        b'data: {"error":{"message":"MALFORMED_FUNCTION_CALL: x","type":"server_error",'
        b'"param":null,"code":"bad_gateway"}}\n\n'
    )


def test_error_frame_hides_param():
    frame = encoder().error(errors.InvalidRequest("bad", param="x"))
    assert decode([frame]) == [
        {"error": {"message": "bad", "type": "invalid_request_error", "param": None, "code": None}}
    ]


def test_chunks_are_valid_json_for_unicode():
    got = run(encoder(), [ev(hub.ChoiceDelta(text='héllo 👋\n"q"', finish_reason="stop"))])
    assert got[1]["choices"][0]["delta"]["content"] == 'héllo 👋\n"q"'


# --- the real SDK against the codec -------------------------------------------------------------


def test_sdk_chat_round_trip():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["req"] = parse_chat_request(orjson.loads(request.content))
        choice = hub.Choice(tool_calls=[hub.ToolCall("call_1", "get_weather", {"city": "Oslo"}, "sig")])
        body = build_chat_response(hub.ChatResponse([choice], USAGE), "alias", created=1, completion_id="chatcmpl-x")
        return httpx.Response(200, json=body)

    out = sdk(handler).chat.completions.create(
        model="alias",
        messages=[
            {"role": "developer", "content": "be brief"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "weather?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(PNG)}},
                ],
            },
        ],
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA}}],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_completion_tokens=64,
        temperature=0.2,
        stop=["x"],
        seed=7,
        stream=False,
        reasoning_effort="low",
        extra_body={"top_k": 5},
    )
    req = seen["req"]
    assert (req.max_tokens, req.temperature, req.stop, req.seed, req.top_k) == (64, 0.2, ["x"], 7, 5)
    assert req.tool_choice == hub.ToolChoice("required", ["get_weather"])
    assert req.messages[1].parts[1] == hub.Part("media", mime_type="image/png", data=b64(PNG))
    assert out.choices[0].finish_reason == "tool_calls"
    assert out.choices[0].message.tool_calls[0].function.arguments == '{"city":"Oslo"}'
    assert out.usage.completion_tokens_details.reasoning_tokens == 3


def test_sdk_chat_stream():
    def handler(request: httpx.Request) -> httpx.Response:
        req = parse_chat_request(orjson.loads(request.content))
        assert (req.stream, req.include_usage) == (True, True)
        enc = ChatStreamEncoder(req.model, completion_id="chatcmpl-s", created=5, include_usage=req.include_usage)
        events = [
            ev(hub.ChoiceDelta(text="Hi ")),
            ev(hub.ChoiceDelta(tool_calls=[hub.ToolCall("c1", "f", {"a": 1}), hub.ToolCall("c2", "g", {})])),
            ev(hub.ChoiceDelta(finish_reason="stop")),
        ]
        return sse([f for e in events for f in enc.encode(e)] + enc.finish(USAGE))

    stream = sdk(handler).chat.completions.create(
        model="alias", messages=[USER], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hi "
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert [(tc.index, tc.id, tc.function.arguments) for tc in calls] == [(0, "c1", '{"a":1}'), (1, "c2", "{}")]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 17


def test_sdk_raises_on_in_band_error():
    def handler(request: httpx.Request) -> httpx.Response:
        enc = encoder()
        frames = enc.encode(ev(hub.ChoiceDelta(text="a")))
        try:
            enc.encode(ev(hub.ChoiceDelta(finish_reason="error")))
        except errors.UpstreamError as err:
            frames.append(enc.error(err))
        return sse(frames)

    stream = sdk(handler).chat.completions.create(model="alias", messages=[USER], stream=True)
    with pytest.raises(openai.APIError, match="malformed function call"):
        list(stream)


def test_sdk_embeddings_default_base64():
    def handler(request: httpx.Request) -> httpx.Response:
        req, fmt = parse_embed_request(orjson.loads(request.content))
        assert fmt == "base64"  # the SDK asks for it when the caller does not
        vectors = [[0.5, -1.25, 3.0] for _ in req.inputs]
        return httpx.Response(200, json=build_embed_response(hub.EmbedResponse(vectors, hub.Usage(4)), req.model, fmt))

    out = sdk(handler).embeddings.create(model="emb", input=["a", "b"])
    assert [d.embedding for d in out.data] == [[0.5, -1.25, 3.0], [0.5, -1.25, 3.0]]
    assert out.usage.prompt_tokens == 4
