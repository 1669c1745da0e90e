"""HTTP plumbing shared by every dialect: reading JSON bodies, JSON and streaming responses.

Bodies are read and parsed here, never by DRF parsers: content negotiation would 406 odd
`Accept` headers and pick parsers by Content-Type (STYLE.md, traps).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from proxy_app.core.errors import InvalidRequest, PayloadTooLarge
from proxy_app.dialects.validate import checked_depth


def too_large() -> PayloadTooLarge:
    return PayloadTooLarge(f"Request body is larger than the limit of {settings.MAX_BODY_BYTES} bytes.")


def read_body(request: HttpRequest) -> bytes:
    """The raw body, whatever the Content-Type; 413 past GATEWAY_MAX_BODY_BYTES, 408 when the client
    stopped sending it for GATEWAY_BODY_READ_TIMEOUT (the ASGI edge flags that)."""
    if request.META.get("gateway.body_stalled"):
        raise InvalidRequest(
            f"The request body did not arrive within {settings.BODY_READ_TIMEOUT:g} seconds.",
            code="request_timeout",
            status=408,
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.MAX_BODY_BYTES:
        raise too_large()
    try:
        raw = request.body
    except RequestDataTooBig:
        raise too_large() from None
    if len(raw) > settings.MAX_BODY_BYTES:
        raise too_large()
    return raw


def read_json(request: HttpRequest) -> object:
    raw = read_body(request)
    if not raw.strip():
        raise InvalidRequest("Request body is empty; expected a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"Request body is not valid JSON: {exc}") from None
    return checked_depth(raw, body)


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(orjson.dumps(body), status=status, content_type="application/json", headers=headers)


def stream_response(frames: AsyncIterator[bytes], content_type: str) -> StreamingHttpResponse:
    return StreamingHttpResponse(
        frames,
        content_type=content_type,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
