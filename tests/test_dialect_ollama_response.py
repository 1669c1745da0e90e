"""Ollama dialect: whole /api/chat and /api/generate responses, timings, NDJSON stream frames.

Pure codec tests (no Django, no DB); outputs are validated with ollama-python 0.6.3's own
pydantic types.
"""

from __future__ import annotations

from datetime import UTC, datetime, timezone

import orjson
import pytest
from ollama._types import ChatResponse, GenerateResponse

from proxy_app.core import errors, hub
from proxy_app.dialects.ollama import response as ollama_stream
from proxy_app.dialects.ollama.request import (
    ChatStreamEncoder,
    GenerateStreamEncoder,
    Timings,
    build_chat_response,
    build_generate_response,
)
from tests.dialect_ollama_helpers import TIMESTAMP, TIMINGS, USAGE

METRICS = {
    "total_duration": 900,
    "load_duration": 0,
    "prompt_eval_count": 7,
    "prompt_eval_duration": 300,
    "eval_count": 11,
    "eval_duration": 600,
}


def without_time(line: bytes) -> dict:
    body = orjson.loads(line)
    assert TIMESTAMP.fullmatch(body.pop("created_at"))
    return body


# --- whole responses ------------------------------------------------------------------------------


def chat_response(**choice) -> hub.ChatResponse:
    return hub.ChatResponse(choices=[hub.Choice(**choice)], usage=USAGE)


def test_build_chat_response_full_shape():
    resp = chat_response(
        text="It is cold.",
        reasoning="Look it up.",
        tool_calls=[hub.ToolCall("call_1", "get_weather", {"city": "Oslo"}), hub.ToolCall("call_2", "noop", {})],
        finish_reason="tool_calls",
    )
    body = build_chat_response(resp, "llama3.2:latest", timings=TIMINGS)
    assert TIMESTAMP.fullmatch(body.pop("created_at"))
    assert body == {
        "model": "llama3.2:latest",
        "message": {
            "role": "assistant",
            "content": "It is cold.",
            "thinking": "Look it up.",
            "tool_calls": [
                {"id": "call_1", "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Oslo"}}},
                {"id": "call_2", "function": {"index": 1, "name": "noop", "arguments": {}}},
            ],
        },
        "done": True,
        "done_reason": "stop",
        **METRICS,
    }
    parsed = ChatResponse.model_validate(build_chat_response(resp, "m", timings=TIMINGS))
    assert parsed.message.tool_calls[0].function.arguments == {"city": "Oslo"}
    assert (parsed.eval_count, parsed.prompt_eval_count, parsed.done_reason) == (11, 7, "stop")


def test_build_chat_response_plain_text_has_no_optional_keys():
    body = build_chat_response(chat_response(text="hi"), "m", timings=TIMINGS)
    assert body["message"] == {"role": "assistant", "content": "hi"}
    assert "logprobs" not in body


@pytest.mark.parametrize(
    ("reason", "done_reason"),
    [("stop", "stop"), ("tool_calls", "stop"), ("length", "length"), ("content_filter", "content_filter")],
)
def test_done_reasons(reason, done_reason):
    resp = chat_response(text="x", finish_reason=reason)
    assert build_chat_response(resp, "m", timings=TIMINGS)["done_reason"] == done_reason
    assert build_generate_response(resp, "m", timings=TIMINGS)["done_reason"] == done_reason


@pytest.mark.parametrize("build", [build_chat_response, build_generate_response])
def test_error_finish_is_the_callers_job(build):
    with pytest.raises(ValueError):
        build(chat_response(finish_reason="error", finish_message="bad call"), "m", timings=TIMINGS)


def test_build_chat_response_uses_choice_zero_and_survives_no_choices():
    resp = hub.ChatResponse(choices=[hub.Choice(index=1, text="b"), hub.Choice(index=0, text="a")], usage=USAGE)
    assert build_chat_response(resp, "m", timings=TIMINGS)["message"]["content"] == "a"
    empty = build_chat_response(hub.ChatResponse(choices=[], usage=hub.Usage()), "m", timings=TIMINGS)
    assert (empty["message"], empty["done_reason"], empty["eval_count"]) == (
        {"role": "assistant", "content": ""},
        "stop",
        0,
    )


def test_build_chat_response_logprobs():
    logprobs = [hub.TokenLogprob("Hi", -0.25, [("Hi", -0.25), ("Hey", -1.5)])]
    body = build_chat_response(chat_response(text="Hi", logprobs=logprobs), "m", timings=TIMINGS)
    assert body["logprobs"] == [
        {
            "token": "Hi",
            "logprob": -0.25,
            "bytes": [72, 105],
            "top_logprobs": [
                {"token": "Hi", "logprob": -0.25, "bytes": [72, 105]},
                {"token": "Hey", "logprob": -1.5, "bytes": [72, 101, 121]},
            ],
        }
    ]
    assert ChatResponse.model_validate(body).logprobs[0].top_logprobs[1].token == "Hey"


def test_build_generate_response_shape():
    body = build_generate_response(chat_response(text="Blue.", reasoning="Sky."), "m:7b", timings=TIMINGS)
    assert TIMESTAMP.fullmatch(body.pop("created_at"))
    assert body == {
        "model": "m:7b",
        "response": "Blue.",
        "thinking": "Sky.",
        "done": True,
        "done_reason": "stop",
        **METRICS,
    }
    assert "context" not in body
    GenerateResponse.model_validate(body)
    plain = build_generate_response(chat_response(text="Blue."), "m", timings=TIMINGS)
    assert "thinking" not in plain


def test_created_at_format():
    moment = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert ollama_stream.timestamp(moment) == "2026-01-02T03:04:05.123456000Z"
    assert TIMESTAMP.fullmatch(ollama_stream.timestamp())


# --- timings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("started", "first", "ended", "expected"),
    [
        (10.0, 10.25, 11.0, (1_000_000_000, 250_000_000, 750_000_000)),
        (10.0, None, 12.0, (2_000_000_000, 2_000_000_000, 1)),  # no first byte: all prompt eval
        (10.0, 10.0, 10.0, (1, 1, 1)),  # never zero: clients divide by durations
        (10.0, 9.0, 11.0, (1_000_000_000, 1, 1_000_000_000)),  # first byte before start: clamped
        (10.0, 12.0, 11.0, (1_000_000_000, 1_000_000_000, 1)),  # first byte after end: clamped
    ],
)
def test_timings_measure(started, first, ended, expected):
    t = Timings.measure(started, first, ended)
    assert (t.total_ns, t.prompt_eval_ns, t.eval_ns, t.load_ns) == (*expected, 0)


def test_timings_measure_defaults_end_to_now(monkeypatch):
    monkeypatch.setattr(ollama_stream.time, "monotonic", lambda: 105.0)
    assert Timings.measure(100.0).total_ns == 5_000_000_000


# --- streams --------------------------------------------------------------------------------------


def event(**delta) -> hub.StreamEvent:
    return hub.StreamEvent(deltas=[hub.ChoiceDelta(**delta)])


def run(encoder, events, usage=USAGE, timings=TIMINGS) -> list[bytes]:
    lines = [line for e in events for line in encoder.encode(e)]
    return lines + encoder.finish(usage, timings)


def test_chat_stream_sequence():
    lines = run(
        ChatStreamEncoder("llama3.2"),
        [
            event(reasoning="Let me think."),
            event(text="The"),
            event(text=" answer", reasoning="More."),
            event(text=""),
            event(tool_calls=[hub.ToolCall("call_1", "get_weather", {"city": "Tokyo"})]),
            event(tool_calls=[hub.ToolCall("call_2", "get_time", {})], finish_reason="tool_calls"),
        ],
    )
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)
    head = {"model": "llama3.2"}
    assert [without_time(line) for line in lines] == [
        {**head, "message": {"role": "assistant", "content": "", "thinking": "Let me think."}, "done": False},
        {**head, "message": {"role": "assistant", "content": "The"}, "done": False},
        {**head, "message": {"role": "assistant", "content": "", "thinking": "More."}, "done": False},
        {**head, "message": {"role": "assistant", "content": " answer"}, "done": False},
        {
            **head,
            "message": {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": "call_1", "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Tokyo"}}}
                ],
            },
            "done": False,
        },
        {
            **head,
            "message": {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": "call_2", "function": {"index": 1, "name": "get_time", "arguments": {}}}],
            },
            "done": False,
        },
        {**head, "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop", **METRICS},
    ]
    for line in lines:
        ChatResponse.model_validate_json(line)


def test_generate_stream_sequence():
    lines = run(
        GenerateStreamEncoder("m"),
        [event(reasoning="hmm"), event(text="Hello"), event(text=" world", finish_reason="length")],
    )
    assert [without_time(line) for line in lines] == [
        {"model": "m", "response": "", "thinking": "hmm", "done": False},
        {"model": "m", "response": "Hello", "done": False},
        {"model": "m", "response": " world", "done": False},
        {"model": "m", "response": "", "done": True, "done_reason": "length", **METRICS},
    ]
    for line in lines:
        GenerateResponse.model_validate_json(line)


@pytest.mark.parametrize("encoder_class", [ChatStreamEncoder, GenerateStreamEncoder])
def test_stream_ends_with_stop_when_no_reason_was_seen(encoder_class):
    (final,) = encoder_class("m").finish(None, TIMINGS)
    body = without_time(final)
    assert (body["done"], body["done_reason"], body["eval_count"], body["prompt_eval_count"]) == (True, "stop", 0, 0)


def test_stream_shows_only_choice_zero():
    encoder = ChatStreamEncoder("m")
    frames = encoder.encode(
        hub.StreamEvent(deltas=[hub.ChoiceDelta(index=1, text="other"), hub.ChoiceDelta(index=0, text="mine")])
    )
    assert [without_time(f)["message"]["content"] for f in frames] == ["mine"]
    assert encoder.encode(event(index=1, finish_reason="error")) == []


def test_stream_ignores_output_after_finish():
    encoder = ChatStreamEncoder("m")
    assert len(encoder.encode(event(text="a", finish_reason="content_filter"))) == 1
    assert encoder.encode(event(text="late")) == []
    assert without_time(encoder.finish(USAGE, TIMINGS)[0])["done_reason"] == "content_filter"


def test_stream_ignores_usage_on_events():
    encoder = ChatStreamEncoder("m")
    assert encoder.encode(hub.StreamEvent(usage=hub.Usage(1, 2))) == []


@pytest.mark.parametrize("encoder_class", [ChatStreamEncoder, GenerateStreamEncoder])
def test_stream_error_finish_raises(encoder_class):
    encoder = encoder_class("m")
    encoder.encode(event(text="partial"))
    with pytest.raises(errors.UpstreamError) as info:
        encoder.encode(event(text="lost", finish_reason="error", finish_message="MALFORMED_FUNCTION_CALL"))
    assert info.value.message == "MALFORMED_FUNCTION_CALL"
    with pytest.raises(errors.UpstreamError) as info:
        encoder_class("m").encode(event(finish_reason="error"))
    assert info.value.message == "the model produced a malformed function call"


@pytest.mark.parametrize("encoder_class", [ChatStreamEncoder, GenerateStreamEncoder])
def test_stream_error_line(encoder_class):
    line = encoder_class("m").error(errors.UpstreamTimeout("upstream timed out"))
    assert line == b'{"error":"upstream timed out"}\n'


def test_stream_logprobs_on_content_lines():
    (line,) = ChatStreamEncoder("m").encode(event(text="a", logprobs=[hub.TokenLogprob("a", -0.5)]))
    body = without_time(line)
    assert body["logprobs"] == [{"token": "a", "logprob": -0.5, "bytes": [97], "top_logprobs": []}]
    ChatResponse.model_validate(body)


def test_stream_survives_huge_integers_in_arguments():
    (line,) = ChatStreamEncoder("m").encode(event(tool_calls=[hub.ToolCall("c", "f", {"n": 2**70})]))
    assert without_time(line)["message"]["tool_calls"][0]["function"]["arguments"] == {"n": 2**70}
