"""The Anthropic dialect's HTTP surface: POST /v1/messages (+ count_tokens), and GET /v1/models in
Anthropic's shape for Anthropic clients.

The key comes as `x-api-key` (the SDK's `api_key`, Claude Code's ANTHROPIC_API_KEY) or as
`Authorization: Bearer` (`auth_token`, ANTHROPIC_AUTH_TOKEN) and is always the gateway key.
`anthropic-version` and `anthropic-beta` are accepted whatever their value and never forwarded.
Every model, on any upstream kind, is translated through the hub.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import unquote

from django.http import HttpRequest, HttpResponse
from django.urls import path, re_path

from accounts.authentication import KeyIdentity
from proxy_app.call import pipeline
from proxy_app.core import hub
from proxy_app.core.context import CallContext
from proxy_app.dialects.anthropic import request as an
from proxy_app.dialects.http import json_response, read_json, stream_response
from proxy_app.dialects.surface import Dialect, bearer, endpoint, keep_alive, stream_frames, unknown_route
from proxy_app.ledger import usage


def anthropic_key(request: HttpRequest) -> str:
    return request.headers.get("x-api-key") or bearer(request)


def is_anthropic_client(request: HttpRequest) -> bool:
    """On routes shared with OpenAI (GET /v1/models...): the SDK always sends anthropic-version,
    and x-api-key is Anthropic's way of sending the key."""
    return "anthropic-version" in request.headers or "x-api-key" in request.headers


claims = is_anthropic_client
DIALECT = Dialect("anthropic", anthropic_key, an.build_error, 'Bearer realm="gateway"')
PING_SECONDS = 15.0
PING = an.event("ping", {})


def with_pings(frames: AsyncIterator[bytes], every: float = PING_SECONDS) -> AsyncIterator[bytes]:
    """The frames, plus an `event: ping` whenever none came for `every` seconds (anthropic.md §6.5),
    so proxies and clients with idle timeouts keep a long-thinking stream open. The SDK skips pings."""
    return keep_alive(frames, PING, every)


async def messages(request: HttpRequest, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    req = an.parse_messages_request(read_json(request))
    ctx.requested_model = req.model
    message_id = an.new_message_id()
    if req.stream:
        events = await pipeline.run_stream(req, identity, ctx)
        encoder = an.MessageStreamEncoder(req.model, message_id)
        return stream_response(with_pings(stream_frames(events, encoder)), "text/event-stream")
    resp = await pipeline.run_chat(req, identity, ctx)
    return json_response(an.build_message(resp, req.model, message_id))


async def count_tokens(request: HttpRequest, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    """An estimate, as the other dialects' count paths (mapping.md §8): Claude Code calls it often,
    and it costs nothing upstream. Unknown or forbidden models still get 404 / 403."""
    req = an.parse_count_tokens_request(read_json(request))
    await pipeline.check_model(req.model, identity, ctx)
    usage.record(ctx, status=200, usage=hub.Usage(source="estimated"))
    tools = sum(hub.estimate_tokens(f"{t.name}{t.description}{t.parameters}") for t in req.tools)
    return json_response({"input_tokens": hub.estimate_prompt_tokens(req.messages) + tools})


async def models(request: HttpRequest, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    return json_response(an.build_model_list(await pipeline.list_models(identity)))


async def model(request: HttpRequest, identity: KeyIdentity, ctx: CallContext, model_id: str) -> HttpResponse:
    model_id = unquote(model_id)
    for info in await pipeline.list_models(identity):
        if info.id == model_id:
            return json_response(an.build_model(info))
    await pipeline.check_model(model_id, identity, ctx)  # routable but unlisted (hidden); else 404 / 403
    return json_response(an.build_model(hub.ModelInfo(id=model_id)))


async def hello(request: HttpRequest) -> HttpResponse:
    """Claude Code's connectivity probe (HEAD or GET /api/hello, anthropic.md §8): 200, no key needed,
    nothing revealed (a 404 or 405 reads as "gateway down"). `HEAD /` is the Ollama root's 200."""
    return json_response({})


hello.csrf_exempt = True

PREFIXES = ("/v1/messages", "/v1/models", "/api/hello")
urlpatterns = [
    path("api/hello", hello),
    path("v1/messages", endpoint(DIALECT, "POST", "messages", messages)),
    path("v1/messages/count_tokens", endpoint(DIALECT, "POST", "messages.count_tokens", count_tokens)),
]
# GET /v1/models[/id] is shared with OpenAI (the default) and Google; Anthropic clients `claim` it.
shared = [
    path("v1/models", endpoint(DIALECT, "GET", "models.list", models)),
    path("v1/models/<path:model_id>", endpoint(DIALECT, "GET", "models.retrieve", model)),
]
fallbacks = [re_path(r"^v1/messages/(?P<rest>[\s\S]*)$", unknown_route(DIALECT))]
