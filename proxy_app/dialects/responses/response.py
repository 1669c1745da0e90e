"""Responses dialect, outbound half: hub results -> Response objects and SSE stream events.

Follows docs/reference/responses.md §3, §4 and §7.2/§7.3:
- `output` in order: one `reasoning` item (the hub's reasoning text as a summary), one `message`
  item with one `output_text` part, then one `function_call` item per call (`arguments` a compact
  JSON string, `call_id` the hub call id); a call of a `custom` tool is a `custom_tool_call`
  item whose `input` is the call's `input` argument (streamed as custom_tool_call_input events);
  a call of a `namespace` tool's function carries `namespace` and the function's own name; a
  call of the client-executed `tool_search` tool is a `tool_search_call` item;
- `status` incomplete with `incomplete_details.reason` max_output_tokens / content_filter for
  the hub's length / content_filter finishes, else completed;
- usage: `input_tokens` includes cached tokens, `output_tokens` includes reasoning tokens;
- errors use the OpenAI chat dialect's body (`build_error`, re-exported); after a stream
  started, an `error` event and then the terminal `response.failed`.
Pure, no Django; request.py re-exports everything public.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy_app.core import errors, hub
from proxy_app.dialects.openai.response import build_error

__all__ = ["build_error", "build_response", "new_id", "ResponseStreamEncoder", "usage_dict", "base_object"]
MALFORMED_CALL = "the model produced a malformed function call"
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def usage_dict(usage: hub.Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def base_object(response_id: str, model: str, created_at: int, echo: dict[str, Any]) -> dict[str, Any]:
    """A response object in progress: no output yet, the request's settings echoed."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "model": model,
        "output": [],
        "usage": None,
        **echo,
    }


def _finished(obj: dict[str, Any], output: list[dict], reason: hub.FinishReason, usage: hub.Usage) -> dict[str, Any]:
    calls = any(i["type"] in ("function_call", "custom_tool_call", "tool_search_call") for i in output)
    incomplete = INCOMPLETE.get(reason) if not calls else None
    return {
        **obj,
        "status": "incomplete" if incomplete else "completed",
        "completed_at": int(time.time()),
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "output": output,
        "usage": usage_dict(usage),
    }


def reasoning_item(text: str, item_id: str | None = None) -> dict[str, Any]:
    return {"type": "reasoning", "id": item_id or new_id("rs"), "summary": [{"type": "summary_text", "text": text}]}


def message_item(text: str, item_id: str | None = None, status: str = "completed") -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {"type": "message", "id": item_id or new_id("msg"), "role": "assistant", "status": status, "content": [part]}


@dataclass(frozen=True)
class CallKinds:
    """What the request's tools make of the model's calls (request.py fills it in): the names of
    `custom` tools (custom_tool_call items), upstream function name -> (namespace, name) for the
    tools of `namespace` tools, and the function a client `tool_search` tool is declared as."""

    custom: frozenset[str] = frozenset()
    namespaces: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    search: str | None = None


PLAIN = CallKinds()  # function tools only


def call_item(
    call: hub.ToolCall, item_id: str | None = None, status: str = "completed", kinds: CallKinds = PLAIN
) -> dict[str, Any]:
    """A function_call (or custom_tool_call) item; a call of a namespace's tool names its namespace;
    a call of the client-executed `tool_search` tool is a tool_search_call item with `arguments`
    an object."""
    space, name = kinds.namespaces.get(call.name, (None, call.name))
    if kinds.search is not None and call.name == kinds.search:
        item = {"type": "tool_search_call", "id": item_id or new_id("tsc"), "call_id": call.id}
        item.update(arguments=call.arguments or {}, execution="client", status=status)
        return item
    if call.name in kinds.custom:
        value = (call.arguments or {}).get("input", "")
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        item = {"type": "custom_tool_call", "id": item_id or new_id("ctc"), "call_id": call.id, "name": name}
        item.update(input=text, status=status)
    else:
        item = {"type": "function_call", "id": item_id or new_id("fc"), "call_id": call.id, "name": name}
        item.update(arguments=orjson.dumps(call.arguments or {}).decode(), status=status)
    if space is not None:
        item["namespace"] = space
    return item


def build_response(
    resp: hub.ChatResponse,
    model: str,
    response_id: str,
    created_at: int,
    echo: dict[str, Any],
    kinds: CallKinds = PLAIN,
) -> dict[str, Any]:
    """hub.ChatResponse -> a finished Response object."""
    choice = resp.choices[0] if resp.choices else hub.Choice(finish_reason="content_filter")
    output: list[dict[str, Any]] = []
    if choice.reasoning:
        output.append(reasoning_item(choice.reasoning))
    if choice.text:
        output.append(message_item(choice.text))
    output.extend(call_item(c, kinds=kinds) for c in choice.tool_calls)
    return _finished(base_object(response_id, model, created_at, echo), output, choice.finish_reason, resp.usage)


def failed_response(obj: dict[str, Any], output: list[dict], err: errors.GatewayError) -> dict[str, Any]:
    """A failed response; a rate limit says "try again in Ns", which Codex waits for (§9)."""
    code = "rate_limit_exceeded" if err.status == 429 else "server_error"
    message = err.message
    if err.status == 429 and err.retry_after is not None and "try again in" not in message.lower():
        message = f"{message} Please try again in {err.retry_after}s."
    return {**obj, "status": "failed", "output": output, "error": {"code": code, "message": message}}


class ResponseStreamEncoder:
    """hub stream events -> Responses SSE events (§4): response.created and .in_progress first,
    one output item open at a time (reasoning, message; function calls open and close at once),
    `sequence_number` counting from 0, exactly one terminal event. After `finish()` (or
    `error()`), `response` holds the final Response object."""

    def __init__(
        self,
        model: str,
        response_id: str,
        created_at: int,
        echo: dict[str, Any],
        kinds: CallKinds = PLAIN,
    ) -> None:
        self._kinds = kinds
        self._obj = base_object(response_id, model, created_at, echo)
        self._seq = 0
        self._started = False
        self._output: list[dict[str, Any]] = []
        self._open: dict[str, Any] | None = None  # the reasoning or message item being streamed
        self._text = ""
        self._reason: hub.FinishReason = "stop"
        self.response: dict[str, Any] | None = None

    def _event(self, name: str, payload: dict[str, Any]) -> bytes:
        data = orjson.dumps({"type": name, "sequence_number": self._seq, **payload})
        self._seq += 1
        return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        return [
            self._event("response.created", {"response": self._obj}),
            self._event("response.in_progress", {"response": self._obj}),
        ]

    def encode(self, ev: hub.StreamEvent) -> list[bytes]:
        frames = self._start()
        for delta in ev.deltas:
            if delta.index != 0:
                continue
            if delta.finish_reason == "error":
                raise errors.UpstreamError(delta.finish_message or MALFORMED_CALL)
            if delta.reasoning:
                frames += self._open_item("reasoning")
                frames.append(self._event("response.reasoning_summary_text.delta", self._at(delta=delta.reasoning)))
                self._text += delta.reasoning
            if delta.text:
                frames += self._open_item("message")
                frames.append(self._event("response.output_text.delta", self._at(delta=delta.text, logprobs=[])))
                self._text += delta.text
            for call in delta.tool_calls:
                frames += self._call(call)
            if delta.finish_reason is not None:
                self._reason = delta.finish_reason
        return frames

    def _at(self, **payload: Any) -> dict[str, Any]:
        """Where the open item's current part is: item_id, output_index and the part's index."""
        assert self._open is not None
        index = "summary_index" if self._open["type"] == "reasoning" else "content_index"
        return {"item_id": self._open["id"], "output_index": len(self._output), index: 0, **payload}

    def _open_item(self, kind: str) -> list[bytes]:
        if self._open is not None and self._open["type"] == kind:
            return []
        frames = self._close()
        if kind == "reasoning":
            self._open = {"type": "reasoning", "id": new_id("rs"), "summary": []}
            part, added = {"type": "summary_text", "text": ""}, "response.reasoning_summary_part.added"
        else:
            self._open = {**message_item("", status="in_progress"), "content": []}
            part, added = {"type": "output_text", "text": "", "annotations": []}, "response.content_part.added"
        frames.append(
            self._event("response.output_item.added", {"output_index": len(self._output), "item": self._open})
        )
        frames.append(self._event(added, self._at(part=part)))
        return frames

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        text, frames = self._text, []
        if self._open["type"] == "reasoning":
            item = reasoning_item(text, self._open["id"])
            frames.append(self._event("response.reasoning_summary_text.done", self._at(text=text)))
            frames.append(self._event("response.reasoning_summary_part.done", self._at(part=item["summary"][0])))
        else:
            item = message_item(text, self._open["id"])
            frames.append(self._event("response.output_text.done", self._at(text=text, logprobs=[])))
            frames.append(self._event("response.content_part.done", self._at(part=item["content"][0])))
        frames.append(self._event("response.output_item.done", {"output_index": len(self._output), "item": item}))
        self._output.append(item)
        self._open, self._text = None, ""
        return frames

    def _call(self, call: hub.ToolCall) -> list[bytes]:
        frames = self._close()
        item = call_item(call, kinds=self._kinds)
        index = len(self._output)
        if item["type"] == "tool_search_call":  # no argument events: added, then done
            added = {**item, "status": "in_progress"}
            frames.append(self._event("response.output_item.added", {"output_index": index, "item": added}))
            frames.append(self._event("response.output_item.done", {"output_index": index, "item": item}))
            self._output.append(item)
            return frames
        field, events = (
            ("input", "custom_tool_call_input")
            if item["type"] == "custom_tool_call"
            else ("arguments", "function_call_arguments")
        )
        added = {**item, field: "", "status": "in_progress"}
        frames.append(self._event("response.output_item.added", {"output_index": index, "item": added}))
        where = {"item_id": item["id"], "output_index": index}
        frames.append(self._event(f"response.{events}.delta", {**where, "delta": item[field]}))
        done = (
            {**where, field: item[field]} if field == "input" else {**where, "name": item["name"], field: item[field]}
        )
        frames.append(self._event(f"response.{events}.done", done))
        frames.append(self._event("response.output_item.done", {"output_index": index, "item": item}))
        self._output.append(item)
        return frames

    def finish(self, usage: hub.Usage | None) -> list[bytes]:
        frames = self._start() + self._close()
        self.response = _finished(self._obj, self._output, self._reason, usage or hub.Usage())
        name = "response.incomplete" if self.response["status"] == "incomplete" else "response.completed"
        frames.append(self._event(name, {"response": self.response}))
        return frames

    def error(self, err: errors.GatewayError) -> bytes:
        frames = self._start()
        self._open, self._text = None, ""  # a half-streamed item is not part of a failed response
        self.response = failed_response(self._obj, self._output, err)
        frames.append(self._event("error", {"code": err.code, "message": err.message, "param": err.param}))
        frames.append(self._event("response.failed", {"response": self.response}))
        return b"".join(frames)
