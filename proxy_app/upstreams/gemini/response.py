"""Gemini codec, upstream side, replies: response bodies, stream chunks and error bodies -> hub objects.

Read defensively: proto3 omits defaults (docs/reference/gemini.md §2), and a value of the wrong type
becomes an UpstreamError (502), never a crash. codec.py re-exports the four public readers, so
callers keep one codec module per upstream kind.
"""

from __future__ import annotations

from typing import Any

from proxy_app.core.errors import (
    GatewayError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from proxy_app.core.hub import (
    ChatResponse,
    Choice,
    ChoiceDelta,
    FinishReason,
    StreamEvent,
    TokenLogprob,
    ToolCall,
    Usage,
    synthetic_call_id,
)
from proxy_app.upstreams.gemini import schema as wire
from proxy_app.upstreams.gemini.schema import read_float, read_int, read_list, read_obj, read_str

_USAGE_KEYS = [
    "promptTokenCount",
    "toolUsePromptTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
    "cachedContentTokenCount",
]


def parse_generate_response(body: dict[str, Any]) -> ChatResponse:
    """A whole generateContent reply; a blocked prompt becomes one content_filter choice."""
    body = read_obj(body, "response")
    candidates = read_list(body.get("candidates"), "candidates")
    choices = [Choice(**_read_candidate(c, k, final=True)) for k, c in enumerate(candidates)]
    if not choices and not _prompt_blocked(body):
        raise UpstreamError("Gemini returned no candidates and no block reason")
    return ChatResponse(
        choices=choices or [Choice(index=0, finish_reason="content_filter")],
        usage=parse_usage(body.get("usageMetadata")),
        response_id=read_str(body.get("responseId"), "responseId"),
    )


def parse_stream_chunk(body: dict[str, Any]) -> StreamEvent:
    """One streamGenerateContent event: a delta per candidate, usage when the chunk has it.

    Stateless on purpose: finish_reason is "tool_calls" only when the function call arrives in the
    same chunk as the finishReason. Gemini says STOP after a call made in an earlier chunk, so the
    caller must upgrade "stop" to "tool_calls" for a choice that streamed any tool call.
    An in-stream {"error": {...}} object is raised as the mapped GatewayError.
    """
    body = read_obj(wire.unwrap(body), "stream chunk")
    if "error" in body:
        error = read_obj(body["error"], "error")
        code = error.get("code")
        raise parse_error(code if isinstance(code, int) and not isinstance(code, bool) else 500, body)
    candidates = read_list(body.get("candidates"), "candidates")
    deltas = [ChoiceDelta(**_read_candidate(c, k, final=False)) for k, c in enumerate(candidates)]
    if not deltas and _prompt_blocked(body):
        deltas = [ChoiceDelta(index=0, finish_reason="content_filter")]
    meta = body.get("usageMetadata")
    return StreamEvent(deltas=deltas, usage=parse_usage(meta) if meta is not None else None)


def parse_usage(meta: dict[str, Any] | None) -> Usage:
    """usageMetadata → Usage (mapping.md §7): tool-use prompt counts as prompt, thoughts as output."""
    if meta is None:
        return Usage(source="estimated")
    meta = read_obj(meta, "usageMetadata")
    count = {key: read_int(meta.get(key, 0), f"usageMetadata.{key}") for key in _USAGE_KEYS}
    return Usage(
        prompt_tokens=count["promptTokenCount"] + count["toolUsePromptTokenCount"],
        completion_tokens=count["candidatesTokenCount"] + count["thoughtsTokenCount"],
        reasoning_tokens=count["thoughtsTokenCount"],
        cached_tokens=count["cachedContentTokenCount"],
    )


def _prompt_blocked(body: dict[str, Any]) -> bool:
    return bool(read_obj(body.get("promptFeedback"), "promptFeedback").get("blockReason"))


def _read_candidate(raw: object, position: int, *, final: bool) -> dict[str, Any]:
    """Fields shared by Choice and ChoiceDelta; `final` means a missing finishReason is "stop"."""
    candidate = read_obj(raw, "candidate")
    content = read_obj(candidate.get("content"), "candidate.content")
    pieces: dict[str, list[Any]] = {"text": [], "reasoning": [], "call": []}
    for part in read_list(content.get("parts"), "candidate.content.parts"):
        piece = _read_part(read_obj(part, "part"))
        if piece is not None:
            pieces[piece[0]].append(piece[1])
    finish, message = _finish(candidate, bool(pieces["call"]), final)
    return {
        "index": read_int(candidate.get("index", position), "candidate.index"),
        "text": "".join(pieces["text"]),  # no separator: parts split words mid-way (§14.23)
        "reasoning": "".join(pieces["reasoning"]),
        "tool_calls": pieces["call"],
        "finish_reason": finish,
        "finish_message": message,
        "logprobs": _logprobs(candidate.get("logprobsResult")),
    }


def _read_part(part: dict[str, Any]) -> tuple[str, Any] | None:
    if "functionCall" in part:
        return "call", _tool_call(part)
    if "executableCode" in part or "codeExecutionResult" in part:
        return "text", _code_block(part)  # code execution output must not vanish (§14.32)
    if "text" not in part:
        return None  # inlineData, fileData, …: nothing the hub can carry
    return ("reasoning" if part.get("thought") is True else "text"), read_str(part["text"], "part.text")


def _code_block(part: dict[str, Any]) -> str:
    if "executableCode" in part:
        code = read_obj(part["executableCode"], "executableCode")
        language = read_str(code.get("language"), "executableCode.language")
        tag = "" if language == "LANGUAGE_UNSPECIFIED" else language.lower()
        body = read_str(code.get("code"), "executableCode.code")
    else:
        result = read_obj(part["codeExecutionResult"], "codeExecutionResult")
        tag, body = "output", read_str(result.get("output"), "codeExecutionResult.output")
    return f"\n```{tag}\n{body}\n```\n"


def _tool_call(part: dict[str, Any]) -> ToolCall:
    call = read_obj(part["functionCall"], "functionCall")
    return ToolCall(
        id=read_str(call.get("id"), "functionCall.id") or synthetic_call_id(),
        name=read_str(call.get("name"), "functionCall.name"),
        arguments=read_obj(call.get("args"), "functionCall.args"),  # absent for zero-argument calls
        thought_signature=read_str(part.get("thoughtSignature"), "thoughtSignature") or None,
    )


def _finish(candidate: dict[str, Any], has_calls: bool, final: bool) -> tuple[FinishReason | None, str]:
    reason = read_str(candidate.get("finishReason"), "finishReason")
    if not reason and not final:
        return None, ""
    if has_calls:  # Gemini has no tool-call reason: it says STOP (§14.22)
        return "tool_calls", ""
    mapped = wire.finish_reason(reason)
    if mapped != "error":
        return mapped, ""
    message = read_str(candidate.get("finishMessage"), "finishMessage")
    return "error", message or wire.ERROR_FINISH_MESSAGES[reason]


def _logprobs(raw: object) -> list[TokenLogprob] | None:
    if raw is None:
        return None
    result = read_obj(raw, "logprobsResult")
    chosen = read_list(result.get("chosenCandidates"), "logprobsResult.chosenCandidates")
    top = read_list(result.get("topCandidates"), "logprobsResult.topCandidates")
    return [TokenLogprob(*_token_logprob(c), top=_alternatives(top, i)) for i, c in enumerate(chosen)]


def _alternatives(top: list[Any], i: int) -> list[tuple[str, float]]:
    if i >= len(top):
        return []
    candidates = read_obj(top[i], "topCandidates[]").get("candidates")
    return [_token_logprob(c) for c in read_list(candidates, "topCandidates[].candidates")]


def _token_logprob(raw: object) -> tuple[str, float]:
    candidate = read_obj(raw, "logprobs candidate")
    logprob = read_float(candidate.get("logProbability", 0.0), "logProbability")
    return read_str(candidate.get("token"), "token"), logprob


# ------------------------------------------------------------------------------------------------
# Errors (mapping.md §12.2)


def parse_error(status: int, body: object, retry_after_header: str | None = None) -> GatewayError:
    """The gateway error for a Gemini error reply (HTTP status + google.rpc.Status body), carrying
    that status and the wait Google asked for (RetryInfo, else Retry-After), if any."""
    err = _mapped_error(status, body, retry_after_header)
    err.upstream_status = status
    err.retry_hint = wire.given_retry_after(wire.google_error(body), retry_after_header)
    return err


def _mapped_error(status: int, body: object, retry_after_header: str | None) -> GatewayError:
    error = wire.google_error(body)
    message = wire.error_message(error) or f"Gemini upstream answered HTTP {status}"
    if status in (401, 403) or (status == 400 and wire.is_key_error(error)):
        # The gateway's own upstream key is wrong: not the client's fault, and never echoed.
        return UpstreamError("upstream authentication failed")
    if status == 429:
        return RateLimited(message, retry_after=wire.retry_after(error, retry_after_header))
    if status == 503:
        return UpstreamUnavailable(message)
    if status == 504:
        return UpstreamTimeout(message)
    if status == 408:
        return UpstreamTimeout(message)
    if status == 400 and error is not None and error.get("status") == "FAILED_PRECONDITION":
        return UpstreamError(message)  # billing or region: the gateway's account, not the client's body
    if status == 404:  # without Google's body: a wrong base URL (the gateway's configuration)
        return NotFound(message, code="model_not_found") if error is not None else UpstreamError(message)
    if status == 413:
        return PayloadTooLarge(message)
    if 400 <= status < 500:  # Google refused the body the client sent: the client's 4xx, not a 502
        return InvalidRequest(message, status=400 if status == 422 else status)  # its message names the field
    return UpstreamError(message)  # 5xx and odd statuses
