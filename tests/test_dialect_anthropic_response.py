"""Anthropic dialect, outbound: hub responses -> Message JSON, stream events, errors, models, as tables.

Pure codec tests (no Django, no DB).
"""

from __future__ import annotations

import json

import pytest

from proxy_app.core import errors, hub
from proxy_app.dialects.anthropic.response import (
    MessageStreamEncoder,
    build_error,
    build_message,
    build_model,
    build_model_list,
)

USAGE = hub.Usage(prompt_tokens=30, completion_tokens=12, reasoning_tokens=4, cached_tokens=10)
CALL = hub.ToolCall("call_gw_1", "get_weather", {"city": "Paris"}, thought_signature="SIG")


def message(**choice) -> dict:
    return build_message(hub.ChatResponse([hub.Choice(**choice)], USAGE), "claude-x", "msg_1")


def test_text_message_shape_and_usage():
    assert message(text="Hi") == {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [{"type": "text", "text": "Hi"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 20,  # cached tokens are not input tokens in Anthropic's usage
            "output_tokens": 12,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 10,
        },
    }


STOP_REASONS = [
    ({"finish_reason": "stop"}, "end_turn"),
    ({"finish_reason": "length"}, "max_tokens"),
    ({"finish_reason": "content_filter"}, "refusal"),
    ({"finish_reason": "tool_calls", "tool_calls": [CALL]}, "tool_use"),
    ({"finish_reason": "stop", "tool_calls": [CALL]}, "tool_use"),
]


@pytest.mark.parametrize(("choice", "expected"), STOP_REASONS)
def test_stop_reasons(choice, expected):
    assert message(**choice)["stop_reason"] == expected


def test_error_finish_is_not_a_message():
    with pytest.raises(ValueError):
        message(finish_reason="error")


def test_thinking_text_and_tool_use_in_order_with_the_tagged_signature():
    content = message(reasoning="hmm", text="Checking.", tool_calls=[CALL], finish_reason="tool_calls")["content"]
    assert content == [
        {"type": "thinking", "thinking": "hmm", "signature": "gw1.SIG"},
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_gw_1", "name": "get_weather", "input": {"city": "Paris"}},
    ]
    assert message(reasoning="hmm", text="x")["content"][0]["signature"] == ""


def test_blocked_prompt_without_choices():
    body = build_message(hub.ChatResponse([], hub.Usage()), "m", "msg_2")
    assert (body["content"], body["stop_reason"]) == ([], "refusal")


ERRORS = [
    (errors.InvalidRequest("bad"), "invalid_request_error"),
    (errors.InvalidRequest("no", status=405), "invalid_request_error"),
    (errors.Unauthorized("who"), "authentication_error"),
    (errors.Forbidden("no"), "permission_error"),
    (errors.NotFound("gone"), "not_found_error"),
    (errors.PayloadTooLarge("big"), "request_too_large"),
    (errors.RateLimited("slow", retry_after=3), "rate_limit_error"),
    (errors.GatewayError("oops"), "api_error"),
    (errors.UpstreamError("bad reply"), "api_error"),
    (errors.UpstreamUnavailable("busy"), "overloaded_error"),
    (errors.UpstreamTimeout("late"), "timeout_error"),
    (errors.GatewayError("busy", status=529), "overloaded_error"),
]


@pytest.mark.parametrize(("err", "kind"), ERRORS)
def test_error_types_follow_the_status(err, kind):
    assert build_error(err) == {"type": "error", "error": {"type": kind, "message": err.message}}


def test_models():
    info = hub.ModelInfo(id="gemini-2.5-flash", display_name="Gemini 2.5 Flash", created=1700000000)
    assert build_model(info) == {
        "type": "model",
        "id": "gemini-2.5-flash",
        "display_name": "Gemini 2.5 Flash",
        "created_at": "2023-11-14T22:13:20Z",
    }
    listing = build_model_list([info, hub.ModelInfo(id="alias")])
    assert (listing["has_more"], listing["first_id"], listing["last_id"]) == (False, "gemini-2.5-flash", "alias")
    assert listing["data"][1] == {
        "type": "model",
        "id": "alias",
        "display_name": "alias",
        "created_at": "1970-01-01T00:00:00Z",
    }
    assert build_model_list([]) == {"data": [], "has_more": False, "first_id": None, "last_id": None}


# --- streams -----------------------------------------------------------------------------------


def decode(frames: list[bytes]) -> list[tuple[str, dict]]:
    out = []
    for frame in frames:
        head, data, empty = frame.decode().split("\n", 2)
        assert head.startswith("event: ") and data.startswith("data: ") and empty == "\n"
        payload = json.loads(data.removeprefix("data: "))
        assert payload["type"] == head.removeprefix("event: ")
        out.append((payload["type"], payload))
    return out


def run(events: list[hub.StreamEvent], usage: hub.Usage = USAGE) -> list[tuple[str, dict]]:
    encoder = MessageStreamEncoder("claude-x", "msg_1")
    frames = [f for e in events for f in encoder.encode(e)] + encoder.finish(usage)
    return decode(frames)


def delta(**kw) -> hub.StreamEvent:
    return hub.StreamEvent([hub.ChoiceDelta(**kw)])


def test_text_stream_sequence():
    out = run([delta(text="He"), delta(text="llo"), delta(finish_reason="stop")])
    assert [name for name, _ in out] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = out[0][1]["message"]
    assert (start["id"], start["model"], start["content"], start["stop_reason"]) == ("msg_1", "claude-x", [], None)
    assert out[1][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert out[2][1]["delta"] == {"type": "text_delta", "text": "He"}
    assert out[5][1]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert out[5][1]["usage"]["output_tokens"] == 12 and out[5][1]["usage"]["input_tokens"] == 20


def test_thinking_then_tool_calls_stream():
    second = hub.ToolCall("call_gw_2", "get_weather", {})
    out = run(
        [delta(reasoning="hmm"), delta(reasoning="..."), delta(tool_calls=[CALL, second], finish_reason="tool_calls")]
    )
    body = [(name, p.get("index"), p.get("content_block") or p.get("delta")) for name, p in out[1:-2]]
    assert body == [
        ("content_block_start", 0, {"type": "thinking", "thinking": "", "signature": ""}),
        ("content_block_delta", 0, {"type": "thinking_delta", "thinking": "hmm"}),
        ("content_block_delta", 0, {"type": "thinking_delta", "thinking": "..."}),
        ("content_block_delta", 0, {"type": "signature_delta", "signature": "gw1.SIG"}),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, {"type": "tool_use", "id": "call_gw_1", "name": "get_weather", "input": {}}),
        ("content_block_delta", 1, {"type": "input_json_delta", "partial_json": '{"city":"Paris"}'}),
        ("content_block_stop", 1, None),
        ("content_block_start", 2, {"type": "tool_use", "id": "call_gw_2", "name": "get_weather", "input": {}}),
        ("content_block_delta", 2, {"type": "input_json_delta", "partial_json": "{}"}),
        ("content_block_stop", 2, None),
    ]
    assert out[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_kind_changes_close_the_open_block():
    out = run([delta(reasoning="a"), delta(text="b"), delta(reasoning="c"), delta(finish_reason="length")])
    starts = [(p["index"], p["content_block"]["type"]) for name, p in out if name == "content_block_start"]
    assert starts == [(0, "thinking"), (1, "text"), (2, "thinking")]
    assert [p["index"] for name, p in out if name == "content_block_stop"] == [0, 1, 2]
    assert out[-2][1]["delta"]["stop_reason"] == "max_tokens"


def test_empty_stream_still_starts_and_stops():
    assert [name for name, _ in run([], hub.Usage())] == ["message_start", "message_delta", "message_stop"]


def test_usage_in_message_start_and_other_choices_ignored():
    encoder = MessageStreamEncoder("m", "msg_1")
    frames = encoder.encode(hub.StreamEvent([hub.ChoiceDelta(index=1, text="x")], usage=USAGE))
    ((name, payload),) = decode(frames)
    assert name == "message_start" and payload["message"]["usage"]["input_tokens"] == 20
    assert payload["message"]["usage"]["output_tokens"] == 0


def test_error_event_and_error_finish():
    encoder = MessageStreamEncoder("m", "msg_1")
    with pytest.raises(errors.UpstreamError):
        encoder.encode(delta(finish_reason="error", finish_message="Malformed"))
    ((name, payload),) = decode([encoder.error(errors.UpstreamUnavailable("Overloaded"))])
    assert payload == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
