"""The one orchestration for every proxied call: route, prepare, call the upstream, tally usage.

Dialects hand in hub requests and get hub responses (or an async iterator of hub stream events);
usage is recorded here for every outcome: success, upstream error, broken stream, disconnect.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from django.conf import settings

from accounts.authentication import KeyIdentity
from proxy_app import hub, media, routing, signatures, usage
from proxy_app.errors import GatewayError, UpstreamError
from proxy_app.upstreams import UpstreamClient, client_for
from proxy_app.usage import CallContext

log = logging.getLogger(__name__)
MALFORMED_CALL = "The model produced a malformed function call and could not finish its answer."


async def _route(model: str, identity: KeyIdentity, ctx: CallContext) -> tuple[routing.Route, UpstreamClient]:
    ctx.requested_model = model
    route = await routing.resolve(model, identity)
    ctx.upstream_name, ctx.upstream_model = route.upstream.name, route.upstream_model
    return route, client_for(route.upstream)


async def _prepare_chat(req: hub.ChatRequest, identity: KeyIdentity, ctx: CallContext) -> UpstreamClient:
    route, client = await _route(req.model, identity, ctx)
    req.upstream_model, req.grounding = route.upstream_model, route.grounding
    await media.inline_media_urls(req.messages)
    if route.upstream.kind == "gemini" and req.upstream_model.startswith("gemini-3"):
        await signatures.restore(req.messages)
    return client


async def chat(req: hub.ChatRequest, identity: KeyIdentity, ctx: CallContext) -> hub.ChatResponse:
    client = await _prepare_chat(req, identity, ctx)
    resp = await client.chat(req)
    failed = next((c for c in resp.choices if c.finish_reason == "error"), None)
    if failed is not None:
        err = UpstreamError(failed.finish_message or MALFORMED_CALL, code="malformed_function_call")
        usage.record(ctx, status=err.status, usage=resp.usage, error_code=err.code)
        raise err
    usage.record(ctx, status=200, usage=resp.usage)
    signatures.remember(call for choice in resp.choices for call in choice.tool_calls)
    return resp


async def stream_chat(req: hub.ChatRequest, identity: KeyIdentity, ctx: CallContext) -> AsyncIterator[hub.StreamEvent]:
    """Start the upstream stream; errors before its first event raise here (a normal HTTP error)."""
    ctx.streamed = True
    client = await _prepare_chat(req, identity, ctx)
    events = client.stream_chat(req)
    try:
        first = await anext(events)
    except StopAsyncIteration:
        raise UpstreamError("upstream ended the stream without sending anything") from None
    return _tallied(req, ctx, first, events)


async def _tallied(
    req: hub.ChatRequest, ctx: CallContext, first: hub.StreamEvent, events: AsyncIterator[hub.StreamEvent]
) -> AsyncIterator[hub.StreamEvent]:
    tally = _Tally(hub.estimate_prompt_tokens(req.messages))
    status, code = 200, ""
    try:
        event = first
        while True:
            tally.add(event)
            _raise_for_failed_choice(event)
            signatures.remember(call for delta in event.deltas for call in delta.tool_calls)
            if tally.output_chars:
                ctx.mark_first_token()
            yield event
            try:
                event = await anext(events)
            except StopAsyncIteration:
                break
        # A last event with the final usage (reported, or estimated when the upstream never said).
        yield hub.StreamEvent(usage=tally.result(complete=True))
    except GatewayError as err:
        status, code = err.status, err.code
        raise
    except (asyncio.CancelledError, GeneratorExit):
        ctx.disconnected, status, code = True, 499, "client_disconnected"
        raise
    finally:
        await events.aclose()
        usage.record(ctx, status=status, usage=tally.result(complete=status == 200), error_code=code)


def _raise_for_failed_choice(event: hub.StreamEvent) -> None:
    for delta in event.deltas:
        if delta.finish_reason == "error":
            raise UpstreamError(delta.finish_message or MALFORMED_CALL, code="malformed_function_call")


class _Tally:
    """Running usage of a stream: the upstream's last report, else an estimate flagged as such."""

    def __init__(self, prompt_estimate: int) -> None:
        self.prompt_estimate = prompt_estimate
        self.output_chars = 0
        self.reported: hub.Usage | None = None

    def add(self, event: hub.StreamEvent) -> None:
        if event.usage is not None:
            self.reported = event.usage
        for d in event.deltas:
            self.output_chars += len(d.text) + len(d.reasoning) + sum(len(str(c.arguments)) for c in d.tool_calls)

    def result(self, *, complete: bool) -> hub.Usage:
        estimate = hub.Usage(
            prompt_tokens=self.prompt_estimate, completion_tokens=(self.output_chars + 3) // 4, source="estimated"
        )
        if self.reported is None:
            return estimate
        if complete:
            return self.reported
        # Cut short: the upstream's running totals may lag what was already sent; keep the larger.
        if self.reported.completion_tokens >= estimate.completion_tokens:
            return self.reported
        return hub.Usage(
            prompt_tokens=self.reported.prompt_tokens or estimate.prompt_tokens,
            completion_tokens=estimate.completion_tokens,
            reasoning_tokens=self.reported.reasoning_tokens,
            cached_tokens=self.reported.cached_tokens,
            source="estimated",
        )


async def embed(req: hub.EmbedRequest, identity: KeyIdentity, ctx: CallContext) -> hub.EmbedResponse:
    route, client = await _route(req.model, identity, ctx)
    req.upstream_model = route.upstream_model
    resp = await client.embed(req)
    usage.record(ctx, status=200, usage=resp.usage)
    return resp


_upstream_models: dict[str, tuple[float, list[hub.ModelInfo]]] = {}


async def list_models(identity: KeyIdentity) -> list[hub.ModelInfo]:
    """Aliases this key may use, then the default upstream's Gemini models (cached a while)."""
    models = [
        hub.ModelInfo(id=m.alias, owned_by=m.upstream.name if m.upstream else "gateway")
        for m in await routing.visible_aliases(identity)
    ]
    seen = {m.id for m in models}
    for info in await _default_upstream_models():
        if info.id not in seen and identity.allows(info.id):
            models.append(info)
    return models


async def _default_upstream_models() -> list[hub.ModelInfo]:
    config = (await routing.table()).default_gemini
    if config is None:
        return []
    cached = _upstream_models.get(config.base_url)
    if cached and time.monotonic() - cached[0] < settings.MODEL_LIST_CACHE_SECONDS:
        return cached[1]
    try:
        models = await client_for(config).list_models()
    except GatewayError as err:  # the list still shows the aliases; try the upstream again later
        log.warning("could not list models of upstream %s: %s", config.name, err.message)
        models = cached[1] if cached else []
    _upstream_models[config.base_url] = (time.monotonic(), models)
    return models
