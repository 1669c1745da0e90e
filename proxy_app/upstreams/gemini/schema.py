"""Gemini's wire vocabulary, so codec.py holds only the translation rules.

Three kinds of knowledge about Google's JSON live here: typed readers for proto3 JSON replies
(defaults are omitted, so None reads as empty; a wrong type is an UpstreamError, never a crash),
the enum tables (finish reasons, thinking levels and budgets), and google.rpc.Status error bodies.
Pure functions, no I/O, no Django.
"""

from __future__ import annotations

import math
from typing import Any

from proxy_app.core.errors import UpstreamError
from proxy_app.core.hub import FinishReason

# ------------------------------------------------------------------------------------------------
# Typed readers for upstream replies (gemini.md §2: proto3 JSON omits defaults)


def malformed(where: str, expected: str) -> UpstreamError:
    return UpstreamError(f"malformed Gemini reply: {where} should be {expected}")


def read_obj(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise malformed(where, "an object")
    return value


def read_list(value: object, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise malformed(where, "a list")
    return value


def read_str(value: object, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise malformed(where, "a string")
    return value


def read_int(value: object, where: str) -> int:
    if isinstance(value, str) and value.isdigit():
        return int(value)  # proto3 JSON may write 64-bit integers as strings
    if not isinstance(value, int) or isinstance(value, bool):
        raise malformed(where, "an integer")
    return value


def read_float(value: object, where: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise malformed(where, "a number")
    return float(value)


# ------------------------------------------------------------------------------------------------
# Finish reasons: https://ai.google.dev/api/generate-content#FinishReason (mapping.md §6.4).
# Product decision over mapping.md: broken tool calls finish as "error", not "stop".

ERROR_FINISH_MESSAGES = {  # shown when the candidate carries no finishMessage
    "MALFORMED_FUNCTION_CALL": "the model produced a malformed function call",
    "UNEXPECTED_TOOL_CALL": "the model called a tool that was not enabled",
    "TOO_MANY_TOOL_CALLS": "the model made too many tool calls",
}
_FILTER_REASONS = [
    "SAFETY",
    "RECITATION",
    "LANGUAGE",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
]
_FINISH_REASONS: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    **dict.fromkeys(_FILTER_REASONS, "content_filter"),
    **dict.fromkeys(ERROR_FINISH_MESSAGES, "error"),
}


def finish_reason(reason: str) -> FinishReason:
    """OTHER, FINISH_REASON_UNSPECIFIED, values newer than this table and "" all read as stop."""
    return _FINISH_REASONS.get(reason, "stop")


# ------------------------------------------------------------------------------------------------
# Thinking (mapping.md §5.1): level names for Gemini 3, token budgets for Gemini 2.5.
# Columns: 3 Pro, 3 Flash/Flash-Lite, 2.5 Flash/Flash-Lite, 2.5 Pro.

EFFORT_TABLE: dict[str, tuple[str, str, int, int]] = {
    "none": ("LOW", "MINIMAL", 0, 128),  # Gemini 3 and 2.5 Pro cannot switch thinking off
    "minimal": ("LOW", "MINIMAL", 1024, 1024),
    "low": ("LOW", "LOW", 1024, 1024),
    "medium": ("MEDIUM", "MEDIUM", 8192, 8192),
    "high": ("HIGH", "HIGH", 24576, 24576),
    "xhigh": ("HIGH", "HIGH", 24576, 32768),
    "max": ("HIGH", "HIGH", 24576, 32768),
}


def model_name(upstream_model: str) -> str:
    return upstream_model.removeprefix("models/").lower()


def thinking_from_effort(effort: str, upstream_model: str) -> dict[str, Any] | None:
    """thinkingConfig for a known effort; None for models that cannot think (sending it 400s)."""
    column = _effort_column(upstream_model)
    if column is None:
        return None
    value = EFFORT_TABLE[effort][column]
    return {"thinkingLevel": value} if isinstance(value, str) else {"thinkingBudget": value}


def _effort_column(upstream_model: str) -> int | None:
    name = model_name(upstream_model)
    if name.startswith("gemini-3"):
        return 0 if "pro" in name else 1
    if name.startswith("gemini-2.5"):
        return 3 if "pro" in name else 2
    return None


# ------------------------------------------------------------------------------------------------
# google.rpc.Status error bodies (gemini.md §13)

DEFAULT_RETRY_AFTER = 30


def unwrap(body: object) -> object:
    # The JSON-array stream form wraps errors in a list: [{"error": {...}}] (gemini.md §9.2).
    if isinstance(body, list) and len(body) == 1:
        return body[0]
    return body


def google_error(body: object) -> dict[str, Any] | None:
    body = unwrap(body)
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else None


def error_message(error: dict[str, Any] | None) -> str:
    message = error.get("message") if error else None
    return message if isinstance(message, str) else ""


def error_details(error: dict[str, Any] | None) -> list[dict[str, Any]]:
    details = error.get("details") if error else None
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def is_key_error(error: dict[str, Any] | None) -> bool:
    # A bad key is a 400 INVALID_ARGUMENT, told apart only by its ErrorInfo reason (gemini.md §1).
    reasons = {detail.get("reason") for detail in error_details(error)}
    return "API_KEY_INVALID" in reasons or "API key not valid" in error_message(error)


def retry_after(error: dict[str, Any] | None, header: str | None) -> int:
    """RetryInfo.retryDelay ("37s"), else the Retry-After header, else DEFAULT_RETRY_AFTER."""
    given = given_retry_after(error, header)
    return DEFAULT_RETRY_AFTER if given is None else given


def given_retry_after(error: dict[str, Any] | None, header: str | None) -> int | None:
    """RetryInfo.retryDelay ("37s"), else the Retry-After header; None when neither says."""
    for detail in error_details(error):
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            seconds = _seconds(str(detail.get("retryDelay", "")).removesuffix("s"))
            if seconds is not None:
                return seconds
    return _seconds(header or "")


def _seconds(text: str) -> int | None:
    """Whole seconds, rounded up, from "37" or "1.5"; None for anything else (HTTP dates too)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return math.ceil(value) if math.isfinite(value) and value >= 0 else None
