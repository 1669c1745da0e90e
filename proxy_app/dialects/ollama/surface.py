"""The Ollama dialect's HTTP surface at the root (/api/*), as Ollama clients expect.

Bodies are JSON whatever the Content-Type (Ollama's curl examples send none); answers stream as
NDJSON unless `"stream": false`. `/api/version` and `/` answer without a key: editors probe them
before sending credentials, and they reveal nothing.
"""

from __future__ import annotations

import time

from django.http import HttpRequest, HttpResponse
from django.urls import path, re_path

from accounts.authentication import KeyIdentity
from proxy_app.call import pipeline
from proxy_app.core import hub
from proxy_app.core.context import CallContext
from proxy_app.dialects.http import json_response, read_body, stream_response
from proxy_app.dialects.ollama import request as ol
from proxy_app.dialects.surface import Dialect, bearer, endpoint, stream_frames, unknown_route

DIALECT = Dialect("ollama", bearer, ol.build_error, 'Bearer realm="gateway"')


class _Timed:
    """Gives an Ollama encoder's `finish` the measured durations of this request."""

    def __init__(self, encoder, ctx: CallContext) -> None:
        self.encoder, self.ctx = encoder, ctx
        self.encode, self.error = encoder.encode, encoder.error

    def finish(self, usage: hub.Usage) -> list[bytes]:
        return self.encoder.finish(usage, _timings(self.ctx))


def _timings(ctx: CallContext) -> ol.Timings:
    return ol.Timings.measure(ctx.started, ctx.first_token_at, time.monotonic())


async def _generate(request, identity, ctx, parse, build, encoder_class) -> HttpResponse:
    body = ol.parse_body(read_body(request))
    if ol.is_load_request(body):
        load = ol.parse_load_request(body)
        await pipeline.check_model(load.model, identity, ctx)  # unknown → 404, not allowed → 403
        return json_response(
            ol.build_load_response(
                load.model, done_reason=load.done_reason, generate=parse is ol.parse_generate_request
            )
        )
    req = parse(body)
    if req.stream:
        events = await pipeline.run_stream(req, identity, ctx)
        return stream_response(stream_frames(events, _Timed(encoder_class(req.model), ctx)), ol.MEDIA_TYPE)
    resp = await pipeline.run_chat(req, identity, ctx)
    return json_response(build(resp, req.model, timings=_timings(ctx)))


async def chat(request: HttpRequest, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    return await _generate(request, identity, ctx, ol.parse_chat_request, ol.build_chat_response, ol.ChatStreamEncoder)


async def generate(request: HttpRequest, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    return await _generate(
        request, identity, ctx, ol.parse_generate_request, ol.build_generate_response, ol.GenerateStreamEncoder
    )


async def _embed(request: HttpRequest, identity: KeyIdentity, ctx: CallContext, parse) -> hub.EmbedResponse | None:
    req = parse(ol.parse_body(read_body(request)))
    if not req.inputs:  # Ollama answers an empty input with no embeddings, without the model
        await pipeline.check_model(req.model, identity, ctx)
        return None
    return await pipeline.embed(req, identity, ctx)


async def embed(request: HttpRequest, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    resp = await _embed(request, identity, ctx, ol.parse_embed_request)
    if resp is None:
        return json_response(ol.build_empty_embed_response(ctx.requested_model))
    return json_response(ol.build_embed_response(resp, ctx.requested_model, timings=_timings(ctx)))


async def embeddings(request: HttpRequest, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    resp = await _embed(request, identity, ctx, ol.parse_legacy_embeddings_request)
    return json_response(ol.build_legacy_embeddings_response(resp or hub.EmbedResponse([[]], hub.Usage())))


async def tags(request: HttpRequest, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    return json_response(ol.build_tags(await pipeline.list_models(identity)))


async def show(request: HttpRequest, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    name = ol.parse_show_request(ol.parse_body(read_body(request)))
    wanted = {name, name.removesuffix(":latest")}
    for info in await pipeline.list_models(identity):
        if info.id in wanted:
            return json_response(ol.build_show(info))
    await pipeline.check_model(name, identity, ctx)  # routable but unlisted (hidden alias, other Gemini model)
    return json_response(ol.build_show(hub.ModelInfo(id=name.removesuffix(":latest"))))


async def version(request: HttpRequest) -> HttpResponse:
    return json_response(ol.build_version())


async def root(request: HttpRequest) -> HttpResponse:
    return HttpResponse(ol.ROOT_TEXT, content_type="text/plain; charset=utf-8")


# `/` is not a proxy prefix, so Django's middleware runs for it: a key-less probe has no CSRF token,
# and a PUT or POST got Django's HTML 403 page (found by the fuzzer).
root.csrf_exempt = True


PREFIXES = ("/api/",)
urlpatterns = [
    path("", root),
    path("api/version", version),
    path("api/chat", endpoint(DIALECT, "POST", "chat", chat)),
    path("api/generate", endpoint(DIALECT, "POST", "generate", generate)),
    path("api/embed", endpoint(DIALECT, "POST", "embed", embed)),
    path("api/embeddings", endpoint(DIALECT, "POST", "embeddings", embeddings)),
    path("api/tags", endpoint(DIALECT, "GET", "tags", tags)),
    path("api/show", endpoint(DIALECT, "POST", "show", show)),
]
fallbacks = [re_path(r"^api/(?P<rest>[\s\S]*)$", unknown_route(DIALECT))]
