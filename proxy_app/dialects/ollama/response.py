"""Ollama dialect, outbound half: hub results -> Ollama JSON bodies and NDJSON stream lines.

Whole responses and the two stream encoders build their lines from the same field helpers, so a
streamed answer and a whole one look alike (ollama.md §2, §3, §5–§7; mapping.md §6.4, §7, §9–§12).
Model listings (/api/tags, /api/show, /api/version) and error bodies live here too.
`ollama.py` parses requests and re-exports everything public from here, so callers import one module.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from proxy_app.core import errors, hub

MEDIA_TYPE = "application/x-ndjson"  # streamed /api/chat and /api/generate
ROOT_TEXT = "Ollama is running"  # GET / and HEAD / (liveness probes)
# VS Code Copilot refuses servers below 0.6.4, the release that added /api/show capabilities.
VERSION = "0.6.4"
# Shown when an upstream flags a candidate as broken (e.g. Gemini MALFORMED_FUNCTION_CALL) without saying why.
MALFORMED_CALL = "the model produced a malformed function call"
# mapping.md §6.4, Ollama column: there is no "tool_calls" reason; content_filter is kept visible.
DONE_REASONS = {"stop": "stop", "tool_calls": "stop", "length": "length", "content_filter": "content_filter"}
# Advertised when the upstream did not say (ModelInfo.input_token_limit == 0) [decision]: clients such as
# Copilot size their prompts from "<family>.context_length", and 0 would leave them no room at all.
DEFAULT_CONTEXT_LENGTH = 32768
CHAT_CAPABILITIES = ["completion", "tools", "vision", "thinking"]
_GENERATE_METHODS = {"generateContent", "streamGenerateContent", "bidiGenerateContent", "generateAnswer", "chat"}
_EMBED_METHODS = {"embedContent", "batchEmbedContents", "asyncBatchEmbedContent", "embed", "embeddings"}


# --- shared pieces ------------------------------------------------------------------------------


def _ns(seconds: float) -> int:
    # Clients compute tokens/s as count / duration: never report a zero duration.
    return max(1, round(seconds * 1e9))


@dataclass(frozen=True)
class Timings:
    """Durations (integer ns) for Ollama's metric fields (mapping.md §7). Build it with measure()
    from time.monotonic() readings, or pass already computed nanoseconds."""

    total_ns: int = 0
    prompt_eval_ns: int = 0  # time to the first upstream byte
    eval_ns: int = 0  # the rest
    load_ns: int = 0  # nothing to load behind a gateway

    @classmethod
    def measure(cls, started: float, first_byte: float | None = None, ended: float | None = None) -> Timings:
        """`started` = request arrival; `first_byte` = first upstream byte (None: the end);
        `ended` = last byte (None: now)."""
        ended = time.monotonic() if ended is None else max(ended, started)
        first = ended if first_byte is None else min(max(first_byte, started), ended)
        return cls(total_ns=_ns(ended - started), prompt_eval_ns=_ns(first - started), eval_ns=_ns(ended - first))


def timestamp(moment: datetime | None = None) -> str:
    """RFC 3339 UTC with a nanosecond-width fraction, like Ollama's created_at."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}000Z"


def done_reason(reason: hub.FinishReason) -> str:
    if reason == "error":
        raise ValueError('finish_reason "error" must become an error response, not a done_reason')
    return DONE_REASONS.get(reason, "stop")


def _metrics(usage: hub.Usage, timings: Timings) -> dict[str, int]:
    return {
        "total_duration": timings.total_ns,
        "load_duration": timings.load_ns,
        "prompt_eval_count": usage.prompt_tokens,
        "prompt_eval_duration": timings.prompt_eval_ns,
        "eval_count": usage.completion_tokens,  # includes reasoning tokens (mapping.md §7)
        "eval_duration": timings.eval_ns,
    }


def _tool_call(call: hub.ToolCall, index: int) -> dict[str, Any]:
    # Arguments stay an object (OpenAI's JSON string would break ollama-python's Mapping type).
    return {"id": call.id, "function": {"index": index, "name": call.name, "arguments": call.arguments}}


def _logprobs(tokens: list[hub.TokenLogprob]) -> list[dict[str, Any]]:
    def token(text: str, logprob: float) -> dict[str, Any]:
        return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}

    return [{**token(t.token, t.logprob), "top_logprobs": [token(s, lp) for s, lp in t.top]} for t in tokens]


# Where one line's text, thinking and (index, tool call) pairs go: chat `message` or generate `response`.
Fields = Callable[[str, str, list[tuple[int, hub.ToolCall]]], dict[str, Any]]


def _chat_fields(text: str, thinking: str, calls: list[tuple[int, hub.ToolCall]]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if thinking:
        message["thinking"] = thinking
    if calls:
        message["tool_calls"] = [_tool_call(call, k) for k, call in calls]
    return {"message": message}


def _generate_fields(text: str, thinking: str, calls: list[tuple[int, hub.ToolCall]]) -> dict[str, Any]:
    # /api/generate takes no tools, so `calls` is always empty there.
    return {"response": text, "thinking": thinking} if thinking else {"response": text}


def _head(model: str) -> dict[str, Any]:
    return {"model": model, "created_at": timestamp()}


# --- whole responses ---------------------------------------------------------------------------


def _whole(resp: hub.ChatResponse, model: str, timings: Timings, fields: Fields) -> dict[str, Any]:
    choice = next((c for c in resp.choices if c.index == 0), None) or hub.Choice()
    reason = done_reason(choice.finish_reason)
    body = {**_head(model), **fields(choice.text, choice.reasoning, list(enumerate(choice.tool_calls)))}
    body.update({"done": True, "done_reason": reason, **_metrics(resp.usage, timings)})
    if choice.logprobs is not None:
        body["logprobs"] = _logprobs(choice.logprobs)
    return body


def build_chat_response(resp: hub.ChatResponse, model: str, *, timings: Timings) -> dict[str, Any]:
    """hub.ChatResponse -> /api/chat object (mapping.md §9.2); raises ValueError on finish_reason "error"."""
    return _whole(resp, model, timings, _chat_fields)


def build_generate_response(resp: hub.ChatResponse, model: str, *, timings: Timings) -> dict[str, Any]:
    """hub.ChatResponse -> /api/generate object (no `context`); raises ValueError on "error"."""
    return _whole(resp, model, timings, _generate_fields)


def build_load_response(model: str, *, done_reason: str = "load", generate: bool = False) -> dict[str, Any]:
    """Answer to a load request (ollama.md §2, §3); send it as one JSON object even when streaming."""
    fields = _generate_fields if generate else _chat_fields
    return {**_head(model), **fields("", "", []), "done_reason": done_reason, "done": True}


# --- streams -----------------------------------------------------------------------------------


class _LineEncoder:
    """NDJSON lines for one streamed answer; subclasses only say where text goes.

    Only choice 0 is shown (Ollama has no `n`). `encode()` raises errors.UpstreamError when a delta
    finishes with hub reason "error" (nothing of that event is written); the caller then writes
    `error(exc)` and stops without `finish()`. StreamEvent.usage is ignored here: the caller tallies
    it and passes the last one to finish().
    """

    def __init__(self, model: str) -> None:
        self._model = model
        self._next_tool = 0
        self._reason = "stop"
        self._finished = False

    def encode(self, event: hub.StreamEvent) -> list[bytes]:
        deltas = [d for d in event.deltas if d.index == 0]
        lines: list[bytes] = []
        for delta in deltas:
            if self._finished:
                break  # output after the finish would follow a done line in other dialects; drop it
            if delta.finish_reason == "error":
                raise errors.UpstreamError(delta.finish_message or MALFORMED_CALL)
            lines += self._output(delta)
            if delta.finish_reason is not None:
                self._reason = done_reason(delta.finish_reason)
                self._finished = True
        return lines

    def finish(self, usage: hub.Usage | None, timings: Timings) -> list[bytes]:
        """The closing `done: true` line with done_reason and metrics."""
        body = {**_head(self._model), **self._fields("", "", []), "done": True, "done_reason": self._reason}
        return [_line({**body, **_metrics(usage or hub.Usage(), timings)})]

    def error(self, err: errors.GatewayError) -> bytes:
        """In-band error line (status already 200; mapping.md §12.3); ollama-python raises on it."""
        return _line(build_error(err))

    def _output(self, delta: hub.ChoiceDelta) -> list[bytes]:
        lines = []
        if delta.reasoning:  # thinking before content, as thinking models stream it
            lines.append(self._chunk(self._fields("", delta.reasoning, [])))
        if delta.text:
            lines.append(self._chunk(self._fields(delta.text, "", []), delta.logprobs))
        for call in delta.tool_calls:  # hub deltas carry whole calls: one line each
            lines.append(self._chunk(self._fields("", "", [(self._next_tool, call)])))
            self._next_tool += 1
        return lines

    def _chunk(self, fields: dict[str, Any], logprobs: list[hub.TokenLogprob] | None = None) -> bytes:
        body = {**_head(self._model), **fields, "done": False}
        if logprobs is not None:
            body["logprobs"] = _logprobs(logprobs)
        return _line(body)

    @staticmethod
    def _fields(text: str, thinking: str, calls: list[tuple[int, hub.ToolCall]]) -> dict[str, Any]:
        raise NotImplementedError


def _line(body: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(body) + b"\n"
    except TypeError:  # orjson refuses ints beyond 64 bits; model-made tool arguments may hold them
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


class ChatStreamEncoder(_LineEncoder):
    """/api/chat lines: {"message": {"role": "assistant", "content", "thinking"?, "tool_calls"?}}."""

    _fields = staticmethod(_chat_fields)


class GenerateStreamEncoder(_LineEncoder):
    """/api/generate lines: {"response", "thinking"?}."""

    _fields = staticmethod(_generate_fields)


# --- embeddings (mapping.md §10) ------------------------------------------------------------------


def _normalised(vector: list[float]) -> list[float]:
    norm = math.sqrt(math.fsum(x * x for x in vector))
    return [x / norm for x in vector] if norm > 0 else list(vector)


def build_embed_response(
    resp: hub.EmbedResponse, model: str, *, timings: Timings, normalize: bool = True
) -> dict[str, Any]:
    """/api/embed body; vectors L2-normalised like Ollama's (idempotent if the upstream did it)."""
    vectors = [_normalised(v) for v in resp.vectors] if normalize else resp.vectors
    return {
        "model": model,
        "embeddings": vectors,
        "total_duration": timings.total_ns,
        "load_duration": timings.load_ns,
        "prompt_eval_count": resp.usage.prompt_tokens,
    }


def build_empty_embed_response(model: str) -> dict[str, Any]:
    """Empty /api/embed input: Ollama answers 200 with no vectors (the model is just loaded)."""
    return {"model": model, "embeddings": []}


def build_legacy_embeddings_response(resp: hub.EmbedResponse) -> dict[str, Any]:
    """/api/embeddings body: the one vector as received; no vectors -> []."""
    return {"embedding": resp.vectors[0] if resp.vectors else []}


# --- model listing (mapping.md §11) -----------------------------------------------------------------


def tagged_name(model_id: str) -> str:
    """`name:tag` as /api/tags shows it; the tag is after the last ':' of the last path segment."""
    return model_id if ":" in model_id.rsplit("/", 1)[-1] else f"{model_id}:latest"


def family(model_id: str) -> str:
    base = model_id.rsplit("/", 1)[-1].lower()
    return "gemini" if base.startswith("gemini") else "gemma" if base.startswith("gemma") else "openai"


def is_embedding_model(info: hub.ModelInfo) -> bool:
    methods = set(info.methods)
    only_embeds = bool(methods & _EMBED_METHODS) and not methods & _GENERATE_METHODS
    return only_embeds or "embedding" in info.id.lower()


def _capabilities(info: hub.ModelInfo) -> list[str]:
    return ["embedding"] if is_embedding_model(info) else list(CHAT_CAPABILITIES)


def _details(info: hub.ModelInfo) -> dict[str, Any]:
    name = family(info.id)
    return {
        "parent_model": "",
        "format": "gguf",
        "family": name,
        "families": [name],
        "parameter_size": "",
        "quantization_level": "",
    }


def _modified_at(info: hub.ModelInfo) -> str:
    return timestamp(datetime.fromtimestamp(max(info.created, 0), UTC))


def _tag(info: hub.ModelInfo) -> dict[str, Any]:
    name = tagged_name(info.id)
    return {
        "name": name,
        "model": name,
        "modified_at": _modified_at(info),
        "size": 0,
        "digest": hashlib.sha256(info.id.encode("utf-8")).hexdigest(),
        "details": _details(info),
        "capabilities": _capabilities(info),  # newer servers list them here too
    }


def build_tags(infos: Iterable[hub.ModelInfo]) -> dict[str, Any]:
    """GET /api/tags body."""
    return {"models": [_tag(i) for i in infos]}


def build_show(info: hub.ModelInfo) -> dict[str, Any]:
    """POST /api/show body; ollama-python requires the `model_info` key."""
    arch = family(info.id)
    model_info: dict[str, Any] = {
        "general.architecture": arch,
        f"{arch}.context_length": info.input_token_limit or DEFAULT_CONTEXT_LENGTH,
    }
    return {
        "modelfile": "",
        "parameters": "",
        "template": "",
        "details": _details(info),
        "model_info": model_info,
        "capabilities": _capabilities(info),
        "modified_at": _modified_at(info),
    }


def build_version() -> dict[str, str]:
    return {"version": VERSION}


# --- errors (mapping.md §12.1) ----------------------------------------------------------------------


def build_error(err: errors.GatewayError, *, model: str | None = None) -> dict[str, Any]:
    """{"error": message}; the HTTP status comes from err.status. An unknown model reads
    "model 'x' not found" like Ollama's, x being `model` or the name quoted in err.message."""
    if isinstance(err, errors.NotFound) and err.code == "model_not_found":
        quoted = re.search(r"'([^']+)'", err.message)
        name = model or (quoted.group(1) if quoted else None)
        if name:
            return {"error": f"model '{name}' not found"}
    return {"error": err.message}
