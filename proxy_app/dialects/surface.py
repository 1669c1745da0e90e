"""Thin async views: authenticate, parse with the dialect's codec, call the pipeline, render.

These are plain Django `async def` views rather than adrf APIViews on purpose: adrf runs
`initial()` (auth, permissions, throttles, content negotiation) through a sync_to_async hop on
Django's single thread-sensitive worker, which caps a process at a few hundred requests per
second (libraries.md finding 2). The only adrf view is the health check, off the hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from adrf.views import APIView
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from rest_framework.response import Response

from accounts.authentication import AuthFailure, authenticate_secret, bearer_secret
from proxy_app.core import context, hub
from proxy_app.core.context import CallContext
from proxy_app.core.errors import (
    Forbidden,
    GatewayError,
    InvalidRequest,
    NotFound,
    Unauthorized,
    UpstreamUnavailable,
)
from proxy_app.dialects.http import json_response
from proxy_app.ledger import usage
from proxy_app.ops import detail_log, tracing

log = logging.getLogger(__name__)
# Sent in-band to streams still open when the server stops after its grace period.
SHUTTING_DOWN = UpstreamUnavailable("The gateway is shutting down; retry the request.", code="server_shutdown")

Operation = Callable[..., Awaitable[HttpResponse]]  # (request, identity, ctx, **url_kwargs)


@dataclass(frozen=True)
class Dialect:
    name: str
    credentials: Callable[[HttpRequest], str]  # the key the client sent, "" when none
    build_error: Callable[[GatewayError], object]
    auth_header: str  # WWW-Authenticate value on 401 (DRF-style trap: without it clients misread 401s)


def bearer(request: HttpRequest) -> str:
    return bearer_secret(request.headers.get("authorization", ""))


def endpoint(dialect: Dialect, method: str, name: str, operation: Operation):
    """A view for one operation of one dialect: method check, key, then the operation.

    Other methods get 405 in the dialect's error shape. No CSRF: clients use keys, not cookies.
    """

    async def view(request: HttpRequest, **kwargs) -> HttpResponse:
        if request.method != method:
            err = InvalidRequest(
                f"Method {request.method} is not allowed here; use {method}.", code="method_not_allowed", status=405
            )
            response = error_response(dialect, err)
            response["Allow"] = method
            return response
        return await serve(request, dialect, name, operation, kwargs)

    view.csrf_exempt = True
    return view


def unknown_route(dialect: Dialect):
    async def view(request: HttpRequest, **kwargs) -> HttpResponse:
        err = NotFound(f"Unknown endpoint {request.method} {request.path}", code="not_found")
        return error_response(dialect, err)

    view.csrf_exempt = True
    return view


def address_refused(client_ip: str) -> Forbidden:
    """403 for a key used from outside its IP allow-list (names the address, never the key)."""
    return Forbidden(f"This API key may not be used from {client_ip or 'this address'}.", code="ip_not_allowed")


def error_response(dialect: Dialect, err: GatewayError) -> HttpResponse:
    headers = {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(err.retry_after)
    if err.status == 401:
        headers["WWW-Authenticate"] = dialect.auth_header
    if err.code == "insufficient_quota":  # waiting will not help before the period ends
        headers["x-should-retry"] = "false"
    return json_response(dialect.build_error(err), status=err.status, headers=headers)


def _header_bytes(request: HttpRequest) -> int:
    """Names and values of the request's headers, as they came (ASGI requests; others: 0)."""
    scope = getattr(request, "scope", None)
    return sum(len(name) + len(value) for name, value in scope["headers"]) if scope else 0


async def serve(
    request: HttpRequest, dialect: Dialect, endpoint: str, operation: Operation, kwargs: dict | None = None
) -> HttpResponse:
    ctx = CallContext(dialect=dialect.name, endpoint=endpoint, request_id=request.headers.get("x-request-id", ""))
    ctx.client_ip = request.META.get("REMOTE_ADDR", "")  # the real client: ClientIPASGI set it
    if tracing.on:
        tracing.begin(ctx, request.headers)
    trace = None
    try:
        if _header_bytes(request) > settings.MAX_HEADER_BYTES:  # before anything reads them (the key)
            raise InvalidRequest(
                f"The request headers are larger than the limit of {settings.MAX_HEADER_BYTES} bytes.",
                code="request_header_fields_too_large",
                status=431,
            )
        try:
            identity = await authenticate_secret(dialect.credentials(request))
        except AuthFailure as exc:
            raise Unauthorized(str(exc)) from None
        ctx.user_id, ctx.key_id, ctx.key_prefix = identity.user_id, identity.key_id, identity.prefix
        if not identity.allows_address(ctx.client_ip):
            raise address_refused(ctx.client_ip)
        trace = await detail_log.begin(request, ctx.request_id)
        response = await operation(request, identity, ctx, **(kwargs or {}))
    except GatewayError as err:
        usage.record(ctx, status=err.status, error_code=err.code)
        response = error_response(dialect, err)
    except Exception:  # a bug of ours: still an answer in the dialect's shape, and a usage row
        log.exception("unhandled error in %s %s", dialect.name, endpoint)
        err = GatewayError("The gateway failed to process this request.")
        usage.record(ctx, status=500, error_code=err.code)
        response = error_response(dialect, err)
    if trace is not None:  # kept or not is decided when the usage is recorded (upstream known)
        detail_log.client_response(trace, response)
    if ctx.admission is not None:  # OpenAI-style x-ratelimit-* headers, on answers and refusals
        for name, value in ctx.admission.headers().items():
            response[name] = value
    if ctx.otel is not None and not ctx.streamed:  # a request that records no usage (model lists)
        tracing.finish(ctx, status=response.status_code)
    return response


async def stream_frames(events: AsyncIterator, encoder) -> AsyncIterator[bytes]:
    """Frames from a stream encoder (`encode`, `finish`, `error`): errors after the first byte
    go in-band, as the dialect's own error frame, and then the stream ends."""
    final = hub.Usage()
    try:
        async for event in events:
            final = getattr(event, "usage", None) or final
            for frame in encoder.encode(event):
                yield frame
    except GatewayError as err:
        yield encoder.error(err)
        return
    except asyncio.CancelledError:
        if context.client_left():
            raise
        # The server is stopping (its grace period is over): say so in-band, then end the body
        # cleanly instead of cutting it; the pipeline below records the usage row (at once, or
        # when it is closed below if the cancellation reached this generator at a yield).
        yield encoder.error(SHUTTING_DOWN)
        return
    finally:  # however this ends, the stream below ends now (not when it is garbage-collected)
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
    for frame in encoder.finish(final):
        yield frame


async def keep_alive(frames: AsyncIterator[bytes], ping: bytes, every: float) -> AsyncIterator[bytes]:
    """The frames, plus the dialect's `ping` frame whenever none came for `every` seconds, so proxies
    and clients with idle timeouts keep a long-thinking stream open (Anthropic: `event: ping`;
    Responses: an SSE comment).

    The next frame is awaited in a task of its own (a timeout must not cancel the stream); when the
    client leaves, that task is cancelled and awaited, so the pipeline records the disconnect."""
    iterator = aiter(frames)
    pending: asyncio.Future | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({pending}, timeout=every)
            if not done:
                yield ping
                continue
            finished, pending = pending, None
            try:
                frame = finished.result()
            except StopAsyncIteration:
                return
            yield frame
    except asyncio.CancelledError:
        if pending is None or context.client_left():
            raise
        # The server is stopping: the stream below ends itself in-band (stream_frames); pass on its
        # last frame and end the body cleanly.
        finished, pending = pending, None
        if finished.done() and not finished.cancelled() and finished.exception() is None:
            # The next frame was ready before the cancellation came (it was not seen below): pass
            # the frame on, then hand the cancellation down so the stream still ends in-band.
            yield finished.result()
            try:
                last = await iterator.athrow(asyncio.CancelledError())
            except (asyncio.CancelledError, StopAsyncIteration):
                return
        else:
            finished.cancel()
            try:
                last = await finished
            except StopAsyncIteration:
                return
        yield last
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, Exception):
                await pending
        await iterator.aclose()


class Health(APIView):
    """GET /health: 200 when the database answers, 503 otherwise. No key needed, no secrets shown."""

    authentication_classes: list = []
    permission_classes: list = []

    async def get(self, request) -> Response:
        try:
            await sync_to_async(_ping_db)()
        except Exception as exc:
            return Response({"status": "unhealthy", "database": f"unreachable: {type(exc).__name__}"}, status=503)
        return Response({"status": "healthy", "database": "ok", "upstream_configured": await _upstream_configured()})


def _ping_db() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def _upstream_configured() -> bool:
    from proxy_app.call import routing

    return (await routing.table()).default_gemini is not None
