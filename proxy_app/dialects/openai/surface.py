"""The OpenAI dialect's HTTP surface under /v1/: chat, legacy completions, embeddings, models."""

from __future__ import annotations

import secrets
import time
from urllib.parse import unquote

import orjson
from django.http import HttpRequest, HttpResponse
from django.urls import path, re_path

from accounts.authentication import KeyIdentity
from proxy_app.call import pipeline
from proxy_app.core import hub
from proxy_app.core.context import CallContext
from proxy_app.core.errors import GatewayError, NotFound
from proxy_app.dialects.http import json_response, read_json, stream_response
from proxy_app.dialects.openai import request as oa
from proxy_app.dialects.surface import Dialect, bearer, endpoint, stream_frames, unknown_route
from proxy_app.upstreams.openai_compat import codec as outbound

DIALECT = Dialect("openai", bearer, oa.build_error, 'Bearer realm="gateway"')


def _ids(prefix: str) -> tuple[str, int]:
    return f"{prefix}-{secrets.token_hex(12)}", int(time.time())


async def _chat_like(
    request: HttpRequest, identity: KeyIdentity, ctx: CallContext, parse, build, encoder_class, id_prefix: str
) -> HttpResponse:
    """Chat and legacy completions differ only in their codec functions."""
    body = read_json(request)
    req = parse(body)
    ctx.requested_model = req.model
    route = await pipeline.check_model(req.model, identity, ctx)
    if route.same_family("openai") and parse is oa.parse_chat_request:
        return await _pass_through(body, req, identity, ctx)
    completion_id, created = _ids(id_prefix)
    if req.stream:
        events = await pipeline.run_stream(req, identity, ctx)
        encoder = encoder_class(
            req.model, completion_id=completion_id, created=created, include_usage=req.include_usage
        )
        return stream_response(stream_frames(events, encoder), "text/event-stream")
    resp = await pipeline.run_chat(req, identity, ctx)
    return json_response(build(resp, req.model, created=created, completion_id=completion_id))


async def _pass_through(body: dict, req, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    """OpenAI client, OpenAI-compatible upstream: the body goes through with only the model renamed.

    Streams always ask the upstream for usage (so it is always known) and drop the usage chunk
    again when the client did not ask for it.
    """

    def upstream_body(model: str) -> dict:
        cap = None if req.max_tokens else pipeline.output_cap(ctx, req.n)  # see quota.admit
        return {**body, "model": model, **({"max_tokens": cap} if cap is not None else {})}

    native = pipeline.Native(
        model=req.model,
        send=(lambda client, model: client.forward_chat_stream(upstream_body(model)))
        if req.stream
        else (lambda client, model: client.forward_chat(upstream_body(model))),
        prompt_estimate=hub.estimate_prompt_tokens(req.messages),
        max_tokens=req.max_tokens * req.n if req.max_tokens else None,
        choices=req.n,
        usage_of=outbound.usage_of,
        probe=PASS_PROBE,
    )
    if not req.stream:
        reply = await pipeline.forward(native, identity, ctx)
        return json_response({**reply, "model": req.model})
    chunks = await pipeline.forward_stream(native, identity, ctx)
    return stream_response(_relay(chunks, req.model, req.include_usage), "text/event-stream")


PASS_PROBE = pipeline.Probe(usage=outbound.usage_of, chars=outbound.chunk_chars)


async def _relay(chunks, alias: str, include_usage: bool):
    try:
        async for chunk in chunks:
            if not include_usage:
                if not chunk.get("choices") and chunk.get("usage"):
                    continue
                chunk.pop("usage", None)
            chunk["model"] = alias
            yield b"data: " + orjson.dumps(chunk) + b"\n\n"
    except GatewayError as err:
        yield b"data: " + orjson.dumps(oa.build_error(err)) + b"\n\n"
        return
    yield b"data: [DONE]\n\n"


async def chat(request: HttpRequest, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    return await _chat_like(
        request, identity, ctx, oa.parse_chat_request, oa.build_chat_response, oa.ChatStreamEncoder, "chatcmpl"
    )


async def completions(request: HttpRequest, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    return await _chat_like(
        request,
        identity,
        ctx,
        oa.parse_completion_request,
        oa.build_completion_response,
        oa.CompletionStreamEncoder,
        "cmpl",
    )


async def embeddings(request: HttpRequest, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    req, encoding = oa.parse_embed_request(read_json(request))
    ctx.requested_model = req.model
    resp = await pipeline.embed(req, identity, ctx)
    return json_response(oa.build_embed_response(resp, req.model, encoding))


async def models(request: HttpRequest, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    return json_response(oa.build_model_list(await pipeline.list_models(identity)))


async def model(request: HttpRequest, identity: KeyIdentity, ctx: CallContext, model_id: str) -> HttpResponse:
    model_id = unquote(model_id)
    for info in await pipeline.list_models(identity):
        if info.id == model_id:
            return json_response(oa.build_model(info))
    raise NotFound(f"The model '{model_id}' does not exist or you do not have access to it.")


PREFIXES = ("/v1/",)
urlpatterns = [
    path("v1/chat/completions", endpoint(DIALECT, "POST", "chat.completions", chat)),
    path("v1/completions", endpoint(DIALECT, "POST", "completions", completions)),
    path("v1/embeddings", endpoint(DIALECT, "POST", "embeddings", embeddings)),
]
# The default owner of the model routes shared with other dialects (they `claim` their clients).
# Model ids may contain "/" (sent URL-encoded by the SDK as %2F, decoded by the server).
shared = [
    path("v1/models", endpoint(DIALECT, "GET", "models.list", models)),
    path("v1/models/<path:model_id>", endpoint(DIALECT, "GET", "models.retrieve", model)),
]
fallbacks = [re_path(r"^v1/(?P<rest>[\s\S]*)$", unknown_route(DIALECT))]
