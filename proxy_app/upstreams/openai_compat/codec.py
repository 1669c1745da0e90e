"""OpenAI codec, upstream side: hub requests → OpenAI bodies, OpenAI replies → hub objects.

For talking TO an OpenAI-compatible server (OpenAI, DeepSeek, vLLM, Ollama's /v1, Google's compat
endpoint, ...). The client-facing half of the same wire format is proxy_app/dialects/openai/;
the shapes are openai.md §2–§9, read with the tolerance §11 asks for: no role chunk, finish_reason
on the last content chunk, no usage, reasoning under either vendor name, tool-call deltas split or
whole. Pure functions plus one small stateful stream reader; no I/O, no Django. A reply of the
wrong shape becomes an UpstreamError (502), never a crash.
This module reads replies; the request bodies are built in request.py and error
replies mapped in errors.py, both re-exported here so callers import one module.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from dataclasses import dataclass, field
from typing import Any

from proxy_app.core import hub
from proxy_app.core.errors import UpstreamError
from proxy_app.upstreams.openai_compat.errors import in_band_error, parse_error
from proxy_app.upstreams.openai_compat.request import build_chat_request, build_embed_request

__all__ = [  # the upstream codec's whole public surface: requests, replies, stream, errors
    "build_chat_request",
    "build_embed_request",
    "parse_chat_response",
    "parse_usage",
    "usage_of",
    "chunk_chars",
    "StreamReader",
    "parse_error",
    "in_band_error",
    "parse_embed_response",
    "parse_model_list",
]

INVALID_ARGUMENTS = "upstream returned invalid tool call arguments"
# Chat finish reasons an OpenAI-compatible server may send (openai.md §4); "error" is OpenRouter's.
_FINISH: dict[str, hub.FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",  # legacy functions API
    "content_filter": "content_filter",
    "error": "error",
}


# ------------------------------------------------------------------------------------------------
# Typed readers for upstream replies: null reads as empty, a wrong type is an UpstreamError.


def _malformed(where: str, expected: str) -> UpstreamError:
    return UpstreamError(f"malformed upstream reply: {where} should be {expected}")


def _obj(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _malformed(where, "an object")
    return value


def _list(value: object, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _malformed(where, "a list")
    return value


def _str(value: object, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _malformed(where, "a string")
    return value


def _int(value: object, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        return int(value)  # some servers count in floats
    if not isinstance(value, int) or isinstance(value, bool):
        raise _malformed(where, "an integer")
    return value


def _float(value: object, where: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise _malformed(where, "a number")
    return float(value)


# ------------------------------------------------------------------------------------------------
# chat completion → hub (openai.md §4)


def parse_chat_response(body: dict[str, Any]) -> hub.ChatResponse:
    """A whole chat.completion; an `error` object in a 200 body raises the mapped error."""
    body = _obj(body, "response")
    error = in_band_error(body)
    if error is not None:
        raise error
    choices = [_read_choice(_obj(c, "choice"), k) for k, c in enumerate(_list(body.get("choices"), "choices"))]
    if not choices:
        raise UpstreamError("upstream returned no choices")
    usage = body.get("usage")
    return hub.ChatResponse(
        choices=choices,
        usage=parse_usage(usage) if usage is not None else hub.Usage(source="estimated"),
        response_id=_str(body.get("id"), "id"),
    )


def _read_choice(raw: dict[str, Any], position: int) -> hub.Choice:
    message = _obj(raw.get("message"), "choice.message")
    calls: list[hub.ToolCall] = []
    broken = False
    for k, item in enumerate(_list(message.get("tool_calls"), "message.tool_calls")):
        item = _obj(item, f"message.tool_calls[{k}]")
        function = _obj(item.get("function"), "tool_call.function")
        call = _make_call(
            _str(item.get("id"), "tool_call.id"),
            _str(function.get("name"), "tool_call.function.name"),
            function.get("arguments"),
            _signature(item.get("extra_content")),
        )
        broken = broken or call is None
        calls += [call] if call else []
    if message.get("function_call") is not None:  # legacy functions API
        legacy = _obj(message["function_call"], "message.function_call")
        call = _make_call("", _str(legacy.get("name"), "function_call.name"), legacy.get("arguments"), None)
        broken = broken or call is None
        calls += [call] if call else []
    reason, note = _finish(raw.get("finish_reason"), has_calls=bool(calls), final=True)
    if broken:
        reason, note = "error", INVALID_ARGUMENTS
    return hub.Choice(
        index=_int(raw.get("index", position), "choice.index"),
        text=_content(message.get("content"), "message.content") or _str(message.get("refusal"), "refusal"),
        reasoning=_reasoning(message),
        tool_calls=calls,
        finish_reason=reason or "stop",
        finish_message=note,
        logprobs=_logprobs(raw.get("logprobs")),
    )


def _content(value: object, where: str) -> str:
    """String content, or (some servers) an array of text parts."""
    if isinstance(value, list):
        return "".join(_str(_obj(p, where).get("text"), f"{where}[].text") for p in value)
    return _str(value, where)


def _reasoning(message: dict[str, Any]) -> str:
    # DeepSeek / vLLM say reasoning_content, Ollama and OpenRouter say reasoning (openai.md §4).
    value = message.get("reasoning_content")
    if value is None:
        value = message.get("reasoning")
    return value if isinstance(value, str) else ""


def _signature(extra: object) -> str | None:
    """Gemini 3 thought signature from Google's compat endpoint (gemini.md §15)."""
    if not isinstance(extra, dict):
        return None
    for vendor in ("google", "vertex"):
        scope = extra.get(vendor)
        if isinstance(scope, dict) and isinstance(scope.get("thought_signature"), str):
            return scope["thought_signature"]
    return None


def _make_call(call_id: str, name: str, arguments: object, signature: str | None) -> hub.ToolCall | None:
    """A ToolCall, or None when the arguments are not a JSON object."""
    args = _arguments(arguments)
    if args is None:
        return None
    return hub.ToolCall(id=call_id or hub.synthetic_call_id(), name=name, arguments=args, thought_signature=signature)


def _arguments(raw: object) -> dict[str, Any] | None:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):  # not OpenAI's shape, but some servers send objects
        return raw
    if not isinstance(raw, str):
        return None
    try:
        value = json.loads(raw)  # json, not orjson: model output may hold integers beyond 64 bits
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _finish(raw: object, *, has_calls: bool, final: bool) -> tuple[hub.FinishReason | None, str]:
    """Upstream finish_reason → hub; unknown values read as stop, a missing one only when final."""
    reason = _str(raw, "finish_reason")
    if not reason and not final:
        return None, ""
    mapped = _FINISH.get(reason, "stop")
    if mapped == "error":
        return "error", "the upstream could not finish the answer"
    if mapped == "stop" and has_calls:
        return "tool_calls", ""  # some servers say stop after a call
    return mapped, ""


def _logprobs(raw: object) -> list[hub.TokenLogprob] | None:
    if raw is None:
        return None
    content = _obj(raw, "logprobs").get("content")
    if content is None:
        return None
    tokens = []
    for item in _list(content, "logprobs.content"):
        item = _obj(item, "logprobs.content[]")
        top = [_token_logprob(_obj(t, "top_logprobs[]")) for t in _list(item.get("top_logprobs"), "top_logprobs")]
        tokens.append(hub.TokenLogprob(*_token_logprob(item), top=top))
    return tokens


def _token_logprob(item: dict[str, Any]) -> tuple[str, float]:
    return _str(item.get("token"), "logprobs token"), _float(item.get("logprob", 0.0), "logprob")


def parse_usage(raw: object) -> hub.Usage:
    """OpenAI usage → hub (mapping.md §7); DeepSeek's prompt_cache_hit_tokens count as cached."""
    usage = _obj(raw, "usage")
    prompt = _int(usage.get("prompt_tokens"), "usage.prompt_tokens")
    completion = usage.get("completion_tokens")
    if completion is None:  # embeddings-style usage, or a server that only says total
        completion = max(_int(usage.get("total_tokens"), "usage.total_tokens") - prompt, 0)
    prompt_details = _obj(usage.get("prompt_tokens_details"), "usage.prompt_tokens_details")
    completion_details = _obj(usage.get("completion_tokens_details"), "usage.completion_tokens_details")
    cached = prompt_details.get("cached_tokens", usage.get("prompt_cache_hit_tokens"))
    return hub.Usage(
        prompt_tokens=prompt,
        completion_tokens=_int(completion, "usage.completion_tokens"),
        reasoning_tokens=_int(completion_details.get("reasoning_tokens"), "usage.reasoning_tokens"),
        cached_tokens=_int(cached, "usage.cached_tokens"),
    )


def usage_of(body: dict[str, Any]) -> hub.Usage | None:
    """The usage a native reply or stream chunk reports, or None (pass-through tallies)."""
    raw = body.get("usage") if isinstance(body, dict) else None
    if raw is None:
        return None
    try:
        return parse_usage(raw)
    except UpstreamError:
        return None  # a pass-through must not fail over a bookkeeping field


def chunk_chars(chunk: dict[str, Any]) -> int:
    """Output characters in a native stream chunk (text, reasoning, tool-call arguments), for estimates."""
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    total = 0
    for choice in choices if isinstance(choices, list) else []:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            continue
        for key in ("content", "reasoning_content", "reasoning"):
            total += len(delta[key]) if isinstance(delta.get(key), str) else 0
        for call in delta.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            args = function.get("arguments") if isinstance(function, dict) else None
            total += len(args) if isinstance(args, str) else 0
    return total


# ------------------------------------------------------------------------------------------------
# chat.completion.chunk stream → hub events (openai.md §5, §11)


@dataclass
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    signature: str | None = None


class StreamReader:
    """Turns each upstream chunk into a hub.StreamEvent; one reader per stream.

    Text and reasoning pass through as they come. Tool calls are accumulated per choice by their
    `index` (id and name from the first delta, argument fragments concatenated) and emitted whole
    on the delta that finishes the choice, or by `end()` when the stream stops without a finish.
    Arguments that are not a JSON object finish the choice with "error" (INVALID_ARGUMENTS).
    """

    def __init__(self) -> None:
        self._calls: dict[int, dict[int, _PendingCall]] = {}
        self._finished: set[int] = set()
        self.response_id = ""

    @property
    def finished(self) -> bool:
        """Whether any choice has received a finish_reason."""
        return bool(self._finished)

    def feed(self, chunk: dict[str, Any]) -> hub.StreamEvent:
        chunk = _obj(chunk, "stream chunk")
        error = in_band_error(chunk)
        if error is not None:
            raise error
        self.response_id = self.response_id or _str(chunk.get("id"), "chunk.id")
        choices = _list(chunk.get("choices"), "choices")
        deltas = [self._delta(_obj(c, "chunk.choices[]"), k) for k, c in enumerate(choices)]
        usage = chunk.get("usage")  # the usage chunk has choices [], but some servers add it earlier
        return hub.StreamEvent(deltas=deltas, usage=parse_usage(usage) if usage is not None else None)

    def end(self) -> hub.StreamEvent:
        """Tool calls still held for choices that never finished (the stream stopped early)."""
        deltas = []
        for index in sorted(self._calls):
            if index not in self._finished and self._calls[index]:
                delta = hub.ChoiceDelta(index=index)
                self._release(delta)
                deltas.append(delta)
        return hub.StreamEvent(deltas=deltas)

    def _delta(self, raw: dict[str, Any], position: int) -> hub.ChoiceDelta:
        index = _int(raw.get("index", position), "choice.index")
        delta = _obj(raw.get("delta") if "delta" in raw else raw.get("message"), "choice.delta")
        out = hub.ChoiceDelta(
            index=index,
            text=_content(delta.get("content"), "delta.content"),
            reasoning=_reasoning(delta),
            logprobs=_logprobs(raw.get("logprobs")),
        )
        if index in self._finished:
            return out  # one finish per choice; stray output after it still passes
        for k, item in enumerate(_list(delta.get("tool_calls"), "delta.tool_calls")):
            self._collect(index, _obj(item, f"delta.tool_calls[{k}]"))
        if delta.get("function_call") is not None:  # legacy functions API: one call per choice
            self._collect(index, {"index": 0, "function": delta["function_call"]})
        reason, note = _finish(raw.get("finish_reason"), has_calls=False, final=False)  # see _release
        if reason is not None:
            self._finished.add(index)
            out.finish_reason, out.finish_message = reason, note
            self._release(out)
        return out

    def _collect(self, choice: int, item: dict[str, Any]) -> None:
        calls = self._calls.setdefault(choice, {})
        raw_index = item.get("index")
        if isinstance(raw_index, int) and not isinstance(raw_index, bool):
            k = raw_index
        else:  # servers that omit the index: a new id opens a call, anything else continues one
            known = any(c.id == item.get("id") for c in calls.values())
            k = len(calls) if not calls or (item.get("id") and not known) else max(calls)
        call = calls.setdefault(k, _PendingCall())
        function = _obj(item.get("function"), "tool_call.function")
        call.id = call.id or _str(item.get("id"), "tool_call.id")
        call.name = call.name or _str(function.get("name"), "tool_call.function.name")
        call.signature = call.signature or _signature(item.get("extra_content"))
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # whole arguments as an object (non-standard)
            call.arguments = [json.dumps(arguments)]
        elif arguments is not None:
            call.arguments.append(_str(arguments, "tool_call.function.arguments"))

    def _release(self, out: hub.ChoiceDelta) -> None:
        """Move the choice's accumulated calls onto `out`, in tool index order."""
        pending = self._calls.pop(out.index, {})
        for k in sorted(pending):
            call = pending[k]
            made = _make_call(call.id, call.name, "".join(call.arguments), call.signature)
            if made is None:
                out.finish_reason, out.finish_message = "error", INVALID_ARGUMENTS
            else:
                out.tool_calls.append(made)
        if out.tool_calls and out.finish_reason == "stop":
            out.finish_reason = "tool_calls"


# ------------------------------------------------------------------------------------------------
# Embeddings and models (openai.md §6, §7; mapping.md §10)


def parse_embed_response(body: dict[str, Any]) -> hub.EmbedResponse:
    """Vectors in input order (sorted by `index`); missing usage → zeros flagged "estimated"."""
    body = _obj(body, "embeddings response")
    error = in_band_error(body)
    if error is not None:
        raise error
    items = [_obj(item, "data[]") for item in _list(body.get("data"), "data")]
    ordered = sorted(enumerate(items), key=lambda pair: _int(pair[1].get("index", pair[0]), "data[].index"))
    usage = body.get("usage")
    return hub.EmbedResponse(
        vectors=[_vector(item.get("embedding")) for _, item in ordered],
        usage=parse_usage(usage) if usage is not None else hub.Usage(source="estimated"),
    )


def _vector(raw: object) -> list[float]:
    if isinstance(raw, str):  # base64 little-endian float32, if a server ignored encoding_format
        try:
            packed = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise _malformed("data[].embedding", "floats or base64") from None
        if len(packed) % 4:
            raise _malformed("data[].embedding", "whole float32 values")
        return list(struct.unpack(f"<{len(packed) // 4}f", packed))
    return [_float(v, "data[].embedding[]") for v in _list(raw, "data[].embedding")]


def parse_model_list(body: object) -> list[hub.ModelInfo]:
    """GET /models: {"object": "list", "data": [...]} (a bare list is tolerated)."""
    items = body if isinstance(body, list) else _list(_obj(body, "model list").get("data"), "data")
    models = []
    for raw in items:
        raw = _obj(raw, "model")
        model_id = _str(raw.get("id"), "model.id")
        if not model_id:
            raise UpstreamError("upstream listed a model without an id")
        info = hub.ModelInfo(id=model_id, created=_int(raw.get("created"), "model.created"), display_name=model_id)
        info.owned_by = _str(raw.get("owned_by"), "model.owned_by") or info.owned_by
        models.append(info)
    return models
