"""Thin async views: authenticate, parse with the dialect's codec, call the pipeline, render.

These are plain Django `async def` views rather than adrf APIViews on purpose: adrf runs
`initial()` (auth, permissions, throttles, content negotiation) through a sync_to_async hop on
Django's single thread-sensitive worker, which caps a process at a few hundred requests per
second (libraries.md finding 2). The only adrf view is the health check, off the hot path.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote

from adrf.views import APIView
from asgiref.sync import sync_to_async
from django.db import connection
from django.http import HttpRequest, HttpResponse
from rest_framework.response import Response

from accounts.authentication import AuthFailure, KeyIdentity, authenticate_secret, bearer_secret
from proxy_app import hub, pipeline, usage
from proxy_app.dialects import openai as oa
from proxy_app.errors import GatewayError, InvalidRequest, NotFound, Unauthorized
from proxy_app.http import json_response, read_json, stream_response
from proxy_app.usage import CallContext

log = logging.getLogger(__name__)

Operation = Callable[[HttpRequest, KeyIdentity, CallContext], Awaitable[HttpResponse]]


@dataclass(frozen=True)
class Dialect:
    name: str
    credentials: Callable[[HttpRequest], str]
    build_error: Callable[[GatewayError], object]
    auth_header: str  # WWW-Authenticate value on 401 (DRF-style trap: without it clients misread 401s)


OPENAI = Dialect("openai", lambda r: bearer_secret(r.headers.get("authorization", "")), oa.build_error, 'Bearer realm="gateway"')


def only(method: str, dialect: Dialect, view):
    """Allow one HTTP method; others get 405 in the dialect's error shape. No CSRF: keys, not cookies."""

    async def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method != method:
            err = InvalidRequest(f"Method {request.method} is not allowed here; use {method}.",
                               code="method_not_allowed", status=405)
            response = error_response(dialect, err)
            response["Allow"] = method
            return response
        return await view(request, *args, **kwargs)

    wrapped.csrf_exempt = True
    return wrapped


def error_response(dialect: Dialect, err: GatewayError) -> HttpResponse:
    headers = {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(err.retry_after)
    if err.status == 401:
        headers["WWW-Authenticate"] = dialect.auth_header
    return json_response(dialect.build_error(err), status=err.status, headers=headers)


async def serve(request: HttpRequest, dialect: Dialect, endpoint: str, operation: Operation) -> HttpResponse:
    ctx = CallContext(dialect=dialect.name, endpoint=endpoint, request_id=request.headers.get("x-request-id", ""))
    try:
        try:
            identity = await authenticate_secret(dialect.credentials(request))
        except AuthFailure as exc:
            raise Unauthorized(str(exc)) from None
        ctx.user_id, ctx.key_id, ctx.key_prefix = identity.user_id, identity.key_id, identity.prefix
        return await operation(request, identity, ctx)
    except GatewayError as err:
        usage.record(ctx, status=err.status, error_code=err.code)
        return error_response(dialect, err)
    except Exception:  # a bug of ours: still an answer in the dialect's shape, and a usage row
        log.exception("unhandled error in %s %s", dialect.name, endpoint)
        err = GatewayError("The gateway failed to process this request.")
        usage.record(ctx, status=500, error_code=err.code)
        return error_response(dialect, err)


def _ids(prefix: str) -> tuple[str, int]:
    return f"{prefix}-{secrets.token_hex(12)}", int(time.time())


async def _sse(
    events: AsyncIterator[hub.StreamEvent], encoder: oa.ChatStreamEncoder | oa.CompletionStreamEncoder
) -> AsyncIterator[bytes]:
    final = hub.Usage()
    try:
        async for event in events:
            final = event.usage or final
            for frame in encoder.encode(event):
                yield frame
    except GatewayError as err:  # after the first byte: in-band error event, then the stream ends
        yield encoder.error(err)
        return
    for frame in encoder.finish(final):
        yield frame


async def _chat_like(
    request: HttpRequest, identity: KeyIdentity, ctx: CallContext, parse, build, encoder_class, id_prefix: str
) -> HttpResponse:
    """Chat and legacy completions differ only in their codec functions."""
    req = parse(read_json(request))
    ctx.requested_model = req.model
    completion_id, created = _ids(id_prefix)
    if req.stream:
        events = await pipeline.stream_chat(req, identity, ctx)
        encoder = encoder_class(req.model, completion_id=completion_id, created=created, include_usage=req.include_usage)
        return stream_response(_sse(events, encoder), "text/event-stream")
    resp = await pipeline.chat(req, identity, ctx)
    return json_response(build(resp, req.model, created=created, completion_id=completion_id))


async def _openai_chat(request: HttpRequest, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    return await _chat_like(
        request, identity, ctx, oa.parse_chat_request, oa.build_chat_response, oa.ChatStreamEncoder, "chatcmpl"
    )


async def _openai_completion(request: HttpRequest, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    return await _chat_like(
        request, identity, ctx, oa.parse_completion_request, oa.build_completion_response,
        oa.CompletionStreamEncoder, "cmpl",
    )


async def _openai_embeddings(request: HttpRequest, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    req, encoding = oa.parse_embed_request(read_json(request))
    ctx.requested_model = req.model
    resp = await pipeline.embed(req, identity, ctx)
    return json_response(oa.build_embed_response(resp, req.model, encoding))


async def _openai_models(request: HttpRequest, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    return json_response(oa.build_model_list(await pipeline.list_models(identity)))


async def _openai_model(request: HttpRequest, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    model_id = unquote(request.resolver_match.kwargs["model_id"])
    for info in await pipeline.list_models(identity):
        if info.id == model_id:
            return json_response(oa.build_model(info))
    raise NotFound(f"The model '{model_id}' does not exist or you do not have access to it.")


async def openai_chat(request: HttpRequest) -> HttpResponse:
    return await serve(request, OPENAI, "chat.completions", _openai_chat)


async def openai_completions(request: HttpRequest) -> HttpResponse:
    return await serve(request, OPENAI, "completions", _openai_completion)


async def openai_embeddings(request: HttpRequest) -> HttpResponse:
    return await serve(request, OPENAI, "embeddings", _openai_embeddings)


async def openai_models(request: HttpRequest) -> HttpResponse:
    return await serve(request, OPENAI, "models.list", _openai_models)


async def openai_model(request: HttpRequest, model_id: str) -> HttpResponse:
    return await serve(request, OPENAI, "models.retrieve", _openai_model)


async def openai_not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    return error_response(OPENAI, NotFound(f"Unknown endpoint {request.method} {request.path}", code="not_found"))


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
    from proxy_app import routing

    return (await routing.table()).default_gemini is not None
