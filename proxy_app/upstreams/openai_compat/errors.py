"""OpenAI codec, upstream side, errors: an OpenAI-compatible server's error reply → GatewayError.

By HTTP status (openai.md §9, mapping.md §12.2; 422 → 400), reading OpenAI's {"error": {...}} and the
shapes other servers send instead (vLLM, FastAPI, plain text, HTML pages), plus `error` objects that
arrive inside a 200 body or a stream event. codec.py re-exports parse_error and
in_band_error. Pure functions, no I/O, no Django.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
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

DEFAULT_RETRY_AFTER = 30  # seconds, when a 429 names no delay


def parse_error(
    status: int, body: object, retry_after: str | None = None, *, retry_after_ms: str | None = None
) -> GatewayError:
    """The gateway error for an upstream error reply (HTTP status + OpenAI-shaped body, or not),
    carrying that status and the wait the server asked for (retry-after-ms / Retry-After), if any."""
    err = _mapped_error(status, body, retry_after, retry_after_ms)
    err.upstream_status = status
    if retry_after or retry_after_ms:
        err.retry_hint = _retry_after(retry_after, retry_after_ms)
    return err


def _mapped_error(status: int, body: object, retry_after: str | None, retry_after_ms: str | None) -> GatewayError:
    error = _error_object(body)
    message = _error_message(error, body) or f"OpenAI-compatible upstream answered HTTP {status}"
    code = error.get("code") if error else None
    if status in (401, 403) or code == "invalid_api_key" or "API key not valid" in message:
        # The gateway's own upstream key is wrong: not the client's fault, and never echoed.
        return UpstreamError("upstream authentication failed")
    if code == "insufficient_quota":
        return UpstreamError(f"upstream quota exhausted: {message}")  # billing: the client cannot fix it
    if status in (400, 422):
        param = error.get("param") if error else None
        return InvalidRequest(
            message, param=param if isinstance(param, str) else None, code=code if isinstance(code, str) else None
        )
    if status == 404:
        # A JSON error names a missing model; a bare 404 page means a wrong base URL (config).
        return NotFound(message) if error is not None else UpstreamError(message)
    if status == 413:
        return PayloadTooLarge(message)
    if status == 429:
        return RateLimited(message, retry_after=_retry_after(retry_after, retry_after_ms))
    if status == 503:
        return UpstreamUnavailable(message)
    if status in (408, 504):
        return UpstreamTimeout(message)
    return UpstreamError(message)  # 500, 502, odd statuses and bodies


def in_band_error(body: object) -> GatewayError | None:
    """The mapped error for a 200 body or stream event that carries an `error` object, else None."""
    if not isinstance(body, dict) or body.get("error") is None:
        return None
    return parse_error(_in_band_status(body["error"]), body)


def _in_band_status(error: object) -> int:
    """In-band errors have no HTTP status: take a numeric code, else read the type / code words."""
    if not isinstance(error, dict):
        return 500
    for key in ("status", "code"):
        value = error.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599:
            return value
    words = {str(error.get("type") or ""), str(error.get("code") or "")}
    if words & {"rate_limit_exceeded", "tokens", "requests", "rate_limit_error"}:
        return 429
    if words & {"overloaded_error", "server_overloaded", "service_unavailable"}:
        return 503
    return 500


def _error_object(body: object) -> dict[str, Any] | None:
    """OpenAI's {"error": {...}}, also vLLM's top-level {"object": "error", "message"} and FastAPI's
    {"detail": ...}; None when the body carries no recognisable error."""
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):
        return error
    if isinstance(error, str):
        return {"message": error}
    if isinstance(body.get("message"), str):
        return body
    if body.get("detail") is not None:
        detail = body["detail"]
        return {"message": detail if isinstance(detail, str) else json.dumps(detail)[:500]}
    return None


def _error_message(error: dict[str, Any] | None, body: object) -> str:
    if error is not None:
        message = error.get("message")
        return message if isinstance(message, str) else ""
    if isinstance(body, str) and body.strip() and not body.lstrip().startswith("<"):
        return body.strip()[:300]  # plain-text errors; HTML error pages say nothing useful
    return ""


def _retry_after(header: str | None, header_ms: str | None) -> int:
    """Whole seconds from retry-after-ms (finer), else Retry-After (seconds or HTTP date)."""
    for text, scale in ((header_ms, 1000.0), (header, 1.0)):
        try:
            value = float(text or "") / scale
        except ValueError:
            continue
        if math.isfinite(value) and value >= 0:
            return math.ceil(value)
    if header:
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return DEFAULT_RETRY_AFTER
        return max(math.ceil(when.timestamp() - time.time()), 0)
    return DEFAULT_RETRY_AFTER
