"""Anthropic dialect, outbound half: hub results -> Messages API JSON and SSE stream events.

Whole messages, errors and model objects, and the stream encoder, follow
docs/reference/anthropic.md §3–§5 and the mapping of §6.3/§6.5:
- content in order: a `thinking` block (the hub's reasoning text), one `text` block, then one
  `tool_use` block per call (`input` an object; streamed as start + one `input_json_delta` with
  the whole compact JSON + stop, because Claude Code rebuilds `input` only from the deltas);
- the thinking block's `signature` is "gw1." + the Gemini thought signature of the first signed
  call that follows it (blocks.py reads it back onto that call), "" when there is none;
- `stop_reason`: tool_use when there are calls, else end_turn / max_tokens / refusal; never
  stop_sequence, since Gemini does not say which sequence matched (`stop_sequence` is null);
- usage: `input_tokens` excludes cached tokens, which go to `cache_read_input_tokens`.
Pure, no Django; request.py re-exports everything public.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from proxy_app.core import errors, hub

SIGNATURE_TAG = "gw1."  # same as blocks.SIGNATURE_TAG (kept apart: response.py imports no inbound code)
MALFORMED_CALL = "the model produced a malformed function call"
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def stop_reason(reason: hub.FinishReason, saw_call: bool) -> str:
    if reason == "error":
        raise ValueError('finish_reason "error" must become an error response, not a message')
    return "tool_use" if saw_call else STOP_REASONS.get(reason, "end_turn")


def usage_dict(usage: hub.Usage) -> dict[str, Any]:
    return {
        "input_tokens": max(usage.prompt_tokens - usage.cached_tokens, 0),
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status) or ("invalid_request_error" if status < 500 else "api_error")


def build_error(err: errors.GatewayError) -> dict[str, Any]:
    """§5.3 error body; the HTTP status comes from err.status."""
    return {"type": "error", "error": {"type": error_type(err.status), "message": err.message}}


def signature_of(calls: Iterable[hub.ToolCall]) -> str:
    signed = next((c.thought_signature for c in calls if c.thought_signature), None)
    return SIGNATURE_TAG + signed if signed else ""


def tool_use_block(call: hub.ToolCall) -> dict[str, Any]:
    return {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments or {}}


# --- whole responses ---------------------------------------------------------------------------


def build_message(resp: hub.ChatResponse, model: str, message_id: str) -> dict[str, Any]:
    """hub.ChatResponse -> a Message object; raises ValueError on finish_reason "error"."""
    choice = resp.choices[0] if resp.choices else hub.Choice(finish_reason="content_filter")
    content: list[dict[str, Any]] = []
    if choice.reasoning:
        content.append({"type": "thinking", "thinking": choice.reasoning, "signature": signature_of(choice.tool_calls)})
    if choice.text:
        content.append({"type": "text", "text": choice.text})
    content.extend(tool_use_block(c) for c in choice.tool_calls)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice.finish_reason, bool(choice.tool_calls)),
        "stop_sequence": None,
        "usage": usage_dict(resp.usage),
    }


def _timestamp(created: int) -> str:
    return datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_model(info: hub.ModelInfo) -> dict[str, Any]:
    return {
        "type": "model",
        "id": info.id,
        "display_name": info.display_name or info.id,
        "created_at": _timestamp(info.created),
    }


def build_model_list(infos: Iterable[hub.ModelInfo]) -> dict[str, Any]:
    """All models in one page (has_more false, so the SDK's paginator stops)."""
    data = [build_model(i) for i in infos]
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


# --- streams -----------------------------------------------------------------------------------


def event(name: str, payload: dict[str, Any]) -> bytes:
    """One SSE event: the SDK dispatches on the `event:` line, the data repeats it as `type`."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **payload}) + b"\n\n"


class MessageStreamEncoder:
    """hub stream events -> message_start, content blocks (one open at a time, consecutive
    indexes), message_delta, message_stop (§4, §6.5). Only choice 0 exists (no `n` here).

    `encode()` raises errors.UpstreamError for a delta that finishes with reason "error"; the
    caller then writes `error(exc)` (an `event: error`) and stops without `finish()`.
    """

    def __init__(self, model: str, message_id: str) -> None:
        self._model, self._id = model, message_id
        self._started = False
        self._open: str | None = None  # "text" | "thinking" while a block is open
        self._index = -1
        self._saw_call = False
        self._reason: hub.FinishReason = "stop"

    def encode(self, ev: hub.StreamEvent) -> list[bytes]:
        frames = self._start(ev.usage)
        for delta in ev.deltas:
            if delta.index != 0:
                continue
            if delta.finish_reason == "error":
                raise errors.UpstreamError(delta.finish_message or MALFORMED_CALL)
            if delta.reasoning:
                frames += self._block("thinking", {"type": "thinking", "thinking": "", "signature": ""})
                frames.append(self._delta({"type": "thinking_delta", "thinking": delta.reasoning}))
            if delta.text:
                frames += self._block("text", {"type": "text", "text": ""})
                frames.append(self._delta({"type": "text_delta", "text": delta.text}))
            for call in delta.tool_calls:
                frames += self._tool_use(call)
            if delta.finish_reason is not None:
                self._reason = delta.finish_reason
        return frames

    def finish(self, usage: hub.Usage | None) -> list[bytes]:
        frames = self._start(usage) + self._close()
        counts = usage_dict(usage or hub.Usage())
        delta = {"stop_reason": stop_reason(self._reason, self._saw_call), "stop_sequence": None}
        frames.append(event("message_delta", {"delta": delta, "usage": counts}))
        frames.append(event("message_stop", {}))
        return frames

    def error(self, err: errors.GatewayError) -> bytes:
        body = build_error(err)
        return event("error", {"error": body["error"]})

    def _start(self, usage: hub.Usage | None) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        counts = {**usage_dict(usage or hub.Usage()), "output_tokens": 0}
        message = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": counts,
        }
        return [event("message_start", {"message": message})]

    def _block(self, kind: str, start: dict[str, Any]) -> list[bytes]:
        """Open a block of `kind` unless one is open already (closing one of another kind)."""
        if self._open == kind:
            return []
        frames = self._close()
        self._index += 1
        self._open = kind
        frames.append(event("content_block_start", {"index": self._index, "content_block": start}))
        return frames

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return event("content_block_delta", {"index": self._index, "delta": delta})

    def _close(self, signature: str = "") -> list[bytes]:
        if self._open is None:
            return []
        frames = []
        if self._open == "thinking" and signature:
            frames.append(self._delta({"type": "signature_delta", "signature": signature}))
        frames.append(event("content_block_stop", {"index": self._index}))
        self._open = None
        return frames

    def _tool_use(self, call: hub.ToolCall) -> list[bytes]:
        frames = self._close(signature_of([call]))
        self._index += 1
        self._saw_call = True
        start = {**tool_use_block(call), "input": {}}
        frames.append(event("content_block_start", {"index": self._index, "content_block": start}))
        partial = orjson.dumps(call.arguments or {}).decode()
        frames.append(self._delta({"type": "input_json_delta", "partial_json": partial}))
        frames.append(event("content_block_stop", {"index": self._index}))
        return frames
