"""Gemini-native client dialect, outbound half: hub results -> Gemini REST JSON and stream frames.

Also the pass-through relay for a Gemini upstream (mapping.md §8b): the client's body is forwarded
with only its model fields rewritten, and replies are read just enough for usage and quota.

What google-genai, @google/genai and Gemini CLI must be able to read back: GenerateContentResponse
(whole, or as `alt=sse` events / one streamed JSON array), embeddings, countTokens, Model lists and
google.rpc.Status error bodies (gemini.md §8–§13; mapping.md §6.4 reverse, §7 reverse, §8, §11,
§12). Responses are camelCase only and omit proto3 defaults where Google does (zero token counts):
the SDK silently ignores snake_case keys. `request.py` re-exports everything public here.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import secrets
from collections.abc import Iterable
from typing import Any

import orjson

from proxy_app.core import errors, hub
from proxy_app.upstreams.gemini import codec as gemini

SSE_END = b"\r\n\r\n"  # Google's delimiter; the JS SDK needs it after the last event too (§14.3)
ARRAY_SEPARATOR = b",\r\n"
MODEL_METHODS = ["generateContent", "countTokens"]
EMBED_MODEL_METHODS = ["embedContent", "batchEmbedContents"]
MEDIA_TOKENS = 258  # what Gemini bills for one image (hub.estimate_prompt_tokens uses the same)
PAGE_SIZE, MAX_PAGE_SIZE = 50, 1000
MALFORMED_CALL = "the model produced a malformed function call"
# Reverse finish reasons (mapping.md §6.4): Gemini has no tool-call reason, a call turn ends in STOP.
# "error" only reaches here if a caller skipped the pipeline's check; Gemini's own word for it is used.
FINISH_REASONS: dict[str, str] = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "content_filter": "SAFETY",
    "error": "MALFORMED_FUNCTION_CALL",
}
# google.rpc.Code names per HTTP status (mapping.md §12.1, gemini.md §13).
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "INVALID_ARGUMENT",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson refuses integers beyond 64 bits; model output may still hold them
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def json_text(value: Any) -> str:
    return dumps(value).decode()


def new_response_id() -> str:
    return secrets.token_urlsafe(17)  # 23 URL-safe characters, like Google's responseId


# --- pass-through to a Gemini upstream (mapping.md §8b) ------------------------------------------


def _model_name(upstream_model: str) -> str:
    return "models/" + upstream_model.removeprefix("models/")


def rewrite_models(body: dict[str, Any], method: str, upstream_model: str) -> dict[str, Any]:
    """The client's body for a Gemini upstream: only model fields change (they must equal the URL model)."""
    name = _model_name(upstream_model)
    out = dict(body)
    if method in ("generateContent", "streamGenerateContent", "countTokens"):
        out.pop("model", None)  # the URL names the model
    if method == "embedContent" and "model" in out:
        out["model"] = name
    if method == "batchEmbedContents" and isinstance(out.get("requests"), list):
        out["requests"] = [{**r, "model": name} if isinstance(r, dict) else r for r in out["requests"]]
    if method == "countTokens":
        for key in ("generateContentRequest", "generate_content_request"):
            if isinstance(out.get(key), dict):
                out[key] = {**out[key], "model": name}  # required there (gemini.md §10)
    return out


def usage_of(response: dict[str, Any]) -> hub.Usage | None:
    """Usage from a Gemini reply or stream chunk (mapping.md §7); None when it carries none or garbage."""
    meta = response.get("usageMetadata") if isinstance(response, dict) else None
    if meta is None:
        return None
    try:
        return gemini.parse_usage(meta)
    except errors.UpstreamError:
        return None  # a bad count must not fail an otherwise good answer; the caller estimates


_MEDIA_KEYS = frozenset({"inlineData", "inline_data", "fileData", "file_data"})
_JSON_KEYS = frozenset(
    {
        "functionCall",
        "function_call",
        "functionResponse",
        "function_response",
        "functionDeclarations",
        "function_declarations",
    }
)


def estimate_prompt(body: dict[str, Any]) -> int:
    """ceil(characters / 4) over all text (calls, results and declarations as JSON) + 258 per media part.

    Works on raw client JSON of any method and casing, never raises: it feeds quota admission and
    the countTokens answer for upstreams that cannot count (mapping.md §8).
    """
    chars, media, stack = 0, 0, [body]
    while stack:
        value = stack.pop()
        if isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                if key in _MEDIA_KEYS:
                    media += 1
                elif key in _JSON_KEYS:
                    chars += len(json_text(item))
                elif key == "text" and isinstance(item, str):
                    chars += len(item)
                else:
                    stack.append(item)
    return math.ceil(chars / 4) + MEDIA_TOKENS * media


def rename_model_version(obj: dict[str, Any], alias: str) -> dict[str, Any]:
    """A reply (or chunk) whose modelVersion names the alias the client asked for."""
    return {**obj, "modelVersion": alias} if "modelVersion" in obj else obj


# --- shared pieces ------------------------------------------------------------------------------


def usage_metadata(usage: hub.Usage) -> dict[str, int]:
    """Reverse of mapping.md §7: visible output excludes thoughts; zero counts omitted (proto3)."""
    counts = {
        "promptTokenCount": usage.prompt_tokens,
        "candidatesTokenCount": max(usage.completion_tokens - usage.reasoning_tokens, 0),
        "totalTokenCount": usage.total_tokens,
        "cachedContentTokenCount": usage.cached_tokens,
        "thoughtsTokenCount": usage.reasoning_tokens,
    }
    return {key: value for key, value in counts.items() if value}


def _function_call_part(call: hub.ToolCall) -> dict[str, Any]:
    part: dict[str, Any] = {"functionCall": {"id": call.id, "name": call.name, "args": call.arguments}}
    if call.thought_signature:
        part["thoughtSignature"] = call.thought_signature
    return part


def _parts(text: str, reasoning: str, calls: list[hub.ToolCall], include_thoughts: bool) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if reasoning and include_thoughts:  # thought summaries only when the client asked for them
        parts.append({"text": reasoning, "thought": True})
    if text:
        parts.append({"text": text})
    return parts + [_function_call_part(call) for call in calls]


def _logprobs(tokens: list[hub.TokenLogprob] | None) -> dict[str, Any]:
    if not tokens:
        return {}
    chosen = [{"token": t.token, "logProbability": t.logprob} for t in tokens]
    top = [{"candidates": [{"token": tok, "logProbability": lp} for tok, lp in t.top]} for t in tokens]
    # avgLogprobs = mean of the chosen tokens' logprobs (mapping.md §6.5 reverse).
    average = sum(t.logprob for t in tokens) / len(tokens)
    return {"avgLogprobs": average, "logprobsResult": {"topCandidates": top, "chosenCandidates": chosen}}


def _finish(reason: hub.FinishReason, message: str) -> dict[str, Any]:
    finish: dict[str, Any] = {"finishReason": FINISH_REASONS.get(reason, "STOP")}
    if reason == "error":
        finish["finishMessage"] = message or MALFORMED_CALL
    return finish


# --- whole responses ----------------------------------------------------------------------------


def _candidate(choice: hub.Choice, include_thoughts: bool) -> dict[str, Any]:
    content: dict[str, Any] = {"role": "model"}
    parts = _parts(choice.text, choice.reasoning, choice.tool_calls, include_thoughts)
    if parts:  # no output at all (filtered, or thinking ate the budget): no parts, like Google
        content["parts"] = parts
    candidate = {"content": content, **_finish(choice.finish_reason, choice.finish_message), "index": choice.index}
    return {**candidate, **_logprobs(choice.logprobs)}


def build_generate_response(resp: hub.ChatResponse, model_alias: str, *, include_thoughts: bool) -> dict[str, Any]:
    """hub.ChatResponse -> GenerateContentResponse (camelCase, modelVersion = the alias)."""
    return {
        "candidates": [_candidate(choice, include_thoughts) for choice in resp.choices],
        "usageMetadata": usage_metadata(resp.usage),
        "modelVersion": model_alias,
        "responseId": new_response_id(),
    }


def count_tokens_response(total: int) -> dict[str, Any]:
    return {"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]}


def build_embed_response(resp: hub.EmbedResponse, method: str) -> dict[str, Any]:
    """embedContent -> {"embedding": {...}}; batchEmbedContents -> {"embeddings": [...]} in input order."""
    if method != "embedContent":
        return {"embeddings": [{"values": vector} for vector in resp.vectors]}
    if len(resp.vectors) != 1:
        raise errors.UpstreamError(f"expected one embedding from the upstream, got {len(resp.vectors)}")
    return {"embedding": {"values": resp.vectors[0]}}


def build_error(err: errors.GatewayError) -> dict[str, Any]:
    """google.rpc.Status body; the HTTP status is err.status (mapping.md §12.1, Gemini column)."""
    default = "INVALID_ARGUMENT" if 400 <= err.status < 500 else "INTERNAL"
    return {"error": {"code": err.status, "message": err.message, "status": STATUS_NAMES.get(err.status, default)}}


# --- models (mapping.md §11) --------------------------------------------------------------------


def build_model(info: hub.ModelInfo) -> dict[str, Any]:
    embeds = "embedding" in info.id.lower()
    model: dict[str, Any] = {
        "name": "models/" + info.id,
        "baseModelId": info.id,
        "version": "1",
        "displayName": info.display_name or info.id,
        "description": f"{info.display_name or info.id}, served by the gateway",
    }
    if info.input_token_limit:
        model["inputTokenLimit"] = info.input_token_limit
    if info.output_token_limit:
        model["outputTokenLimit"] = info.output_token_limit
    model["supportedGenerationMethods"] = list(info.methods) or list(EMBED_MODEL_METHODS if embeds else MODEL_METHODS)
    return model


def build_model_list(infos: Iterable[hub.ModelInfo], page_size: int | None, page_token: str | None) -> dict[str, Any]:
    """One page of GET /v1beta/models: pageSize default 50, capped at 1000; opaque pageToken."""
    if page_size is not None and (isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 0):
        raise errors.InvalidRequest("pageSize must be a non-negative integer", param="pageSize")
    size = min(page_size or PAGE_SIZE, MAX_PAGE_SIZE)
    start = _page_offset(page_token) if page_token else 0
    models = list(infos)
    body: dict[str, Any] = {"models": [build_model(info) for info in models[start : start + size]]}
    if start + size < len(models):
        body["nextPageToken"] = _page_token(start + size)
    return body


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _page_offset(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        text = ""
    label, _, number = text.partition(":")
    if label != "offset" or not number.isdigit() or not number.isascii():
        raise errors.InvalidRequest("invalid pageToken; pass the nextPageToken of the previous page", param="pageToken")
    return int(number)


# --- streams (gemini.md §9, mapping.md §8) -------------------------------------------------------


class GenerateStreamEncoder:
    """streamGenerateContent frames, `alt=sse` events or one JSON array streamed element by element.

    encode(): text and thoughts go out at once, tool calls whole, one chunk per event; raises
    errors.UpstreamError for a delta finishing with hub reason "error" (nothing of that event is
    sent) — the caller then writes error(exc) and stops. finish(usage): the last chunk with every
    candidate's finishReason plus usageMetadata, then the closing "]" in array form. error(): the
    in-band error element (array form: it also closes the array). frame()/close(): framing alone,
    for native chunks relayed from a Gemini upstream (mapping.md §8b).
    """

    def __init__(self, model_alias: str, *, sse: bool, include_thoughts: bool) -> None:
        self._alias = model_alias
        self._sse = sse
        self._include_thoughts = include_thoughts
        self._response_id = new_response_id()
        self._opened = False  # array form: "[" already written
        self._closed = False
        self._seen: dict[int, dict[str, Any] | None] = {}  # candidate index -> its finish, once known
        self._usage: hub.Usage | None = None

    @property
    def media_type(self) -> str:
        return "text/event-stream" if self._sse else "application/json"

    def frame(self, obj: dict[str, Any]) -> bytes:
        """One element: `data: {json}\\r\\n\\r\\n`, or "[" / ",\\r\\n" + json in array form."""
        if self._sse:
            return b"data: " + dumps(obj) + SSE_END
        prefix = ARRAY_SEPARATOR if self._opened else b"["
        self._opened = True
        return prefix + dumps(obj)

    def close(self) -> list[bytes]:
        """End of stream: nothing for SSE; "]" (or "[]" if nothing was sent) for the array form."""
        if self._closed:
            return []
        self._closed = True
        if self._sse:
            return []
        closing = b"]" if self._opened else b"[]"
        self._opened = True
        return [closing]

    def encode(self, event: hub.StreamEvent) -> list[bytes]:
        if self._closed:
            return []
        if event.usage is not None:
            self._usage = event.usage  # running totals: the last one wins
        for delta in event.deltas:
            if delta.finish_reason == "error" and self._seen.get(delta.index) is None:
                raise errors.UpstreamError(delta.finish_message or MALFORMED_CALL, code="malformed_function_call")
        candidates = [c for c in map(self._candidate, event.deltas) if c is not None]
        return [self.frame(self._chunk(candidates))] if candidates else []

    def finish(self, usage: hub.Usage | None = None) -> list[bytes]:
        if self._closed:
            return []
        stop = _finish("stop", "")  # for candidates the upstream never finished, or none at all
        finishes = {index: finish or stop for index, finish in self._seen.items()} or {0: stop}
        # Google's last chunk carries an empty text part beside finishReason (gemini.md §9).
        candidates = [
            {"content": {"role": "model", "parts": [{"text": ""}]}, **finish, "index": index}
            for index, finish in sorted(finishes.items())
        ]
        last = self._chunk(candidates, usage_metadata(usage or self._usage or hub.Usage()))
        return [self.frame(last), *self.close()]

    def error(self, err: errors.GatewayError) -> bytes:
        """The in-band error element; the stream ends after it (mapping.md §12.3)."""
        body = dumps(build_error(err))
        self._closed = True
        if self._sse:
            return b"data: " + body + SSE_END
        prefix = ARRAY_SEPARATOR if self._opened else b"["
        self._opened = True
        return prefix + body + b"]"

    def _candidate(self, delta: hub.ChoiceDelta) -> dict[str, Any] | None:
        if self._seen.get(delta.index) is not None:
            return None  # that candidate already finished; later output would confuse clients
        self._seen[delta.index] = None
        if delta.finish_reason is not None:
            self._seen[delta.index] = _finish(delta.finish_reason, delta.finish_message)
        parts = _parts(delta.text, delta.reasoning, delta.tool_calls, self._include_thoughts)
        if not parts:
            return None
        return {"content": {"role": "model", "parts": parts}, "index": delta.index, **_logprobs(delta.logprobs)}

    def _chunk(self, candidates: list[dict[str, Any]], usage: dict[str, int] | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {"candidates": candidates}
        if usage is not None:
            chunk["usageMetadata"] = usage
        chunk["modelVersion"] = self._alias
        chunk["responseId"] = self._response_id
        return chunk
