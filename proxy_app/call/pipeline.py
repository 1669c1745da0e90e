"""The one orchestration for every proxied call: route, admit, prepare, call the upstream, tally usage.

Surfaces parse, call one entry once, and encode what it returns:

- `run_chat(req)` / `run_stream(req)`: a hub chat request, answered as a hub response or as hub
  stream events;
- `embed(req)`: a hub embedding request;
- `forward(native)` / `forward_stream(native)`: pass-through, for a client of the upstream's own
  family (OpenAI → OpenAI-compatible, Gemini → Gemini) whose native body goes on almost
  unchanged; the surface supplies the call and how to read usage from native objects (`Native`).

`check_model` answers whether a model is routable (404/403) and which upstream kind serves it,
without admitting a call: surfaces use it to choose between translating and passing through.
Every entry records usage here for every outcome: success, upstream error, broken stream,
client disconnect. Each admits once, then hands its upstream call (up to a stream's first event)
to `failover.run`, which may try several members of the alias's pool; one usage row either way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from accounts.authentication import KeyIdentity
from gateway_site.singleflight import SingleFlight
from proxy_app.call import failover, health, media, routing, signatures
from proxy_app.core import context, hub
from proxy_app.core.context import CallContext
from proxy_app.core.errors import GatewayError, UpstreamError
from proxy_app.ledger import quota, usage
from proxy_app.ops import observability, tracing
from proxy_app.upstreams import UpstreamClient, client_for

log = logging.getLogger(__name__)
MALFORMED_CALL = "The model produced a malformed function call and could not finish its answer."


async def check_model(model: str, identity: KeyIdentity, ctx: CallContext) -> routing.Route:
    """The route for `model` (404 unknown, 403 not allowed for this key), with nothing admitted."""
    return await _open_route(model, identity, ctx)


async def _open_route(
    model: str,
    identity: KeyIdentity,
    ctx: CallContext,
    *,
    prompt_estimate: int | None = None,
    max_tokens: int | None = None,
    choices: int = 1,
) -> routing.Route:
    """Resolve the model (404/403 first), then, for a call that will reach the upstream
    (`prompt_estimate` given), admit it against the key's and user's limits (429): once per
    client request, however many pool members failover then tries."""
    ctx.requested_model = model
    route = await routing.resolve(model, identity)
    ctx.upstream_name, ctx.upstream_model = route.upstream.name, route.upstream_model
    if prompt_estimate is not None:
        ctx.admission = await quota.admit(
            identity,
            model=route.upstream_model,
            prompt_estimate=prompt_estimate,
            max_tokens=max_tokens,
            request_id=ctx.request_id,
            choices=choices,
        )
    return route


def _worst_tokens(ctx: CallContext, prompt_estimate: int, max_tokens: int | None) -> int:
    """What one call may use at most, for per-upstream token limits."""
    if max_tokens is None:
        max_tokens = output_cap(ctx) or settings.QUOTA_DEFAULT_MAX_TOKENS
    return max(prompt_estimate, 0) + max_tokens


def output_cap(ctx: CallContext, choices: int = 1) -> int | None:
    """The max output tokens per choice the upstream must be asked for, when the admission capped
    a request that named none (a token or budget limit applies); None: leave it as the client sent it."""
    cap = getattr(ctx.admission, "output_cap", None)
    return None if cap is None else max(cap // max(choices, 1), 1)


async def _open_chat_route(req: hub.ChatRequest, identity: KeyIdentity, ctx: CallContext):
    """`_open_route` for a hub chat request: its worst case is the prompt plus max tokens per choice;
    a request without max_tokens gets the admission's output cap, if any."""
    max_tokens = req.max_tokens * req.n if req.max_tokens else None
    opened = await _open_route(
        req.model,
        identity,
        ctx,
        prompt_estimate=hub.estimate_prompt_tokens(req.messages),
        max_tokens=max_tokens,
        choices=req.n,
    )
    if max_tokens is None and (cap := output_cap(ctx, req.n)) is not None:
        req.max_tokens = cap
    return opened


async def run_chat(req: hub.ChatRequest, identity: KeyIdentity, ctx: CallContext) -> hub.ChatResponse:
    """One non-streamed chat: route and admit, prepare, call (failing over within the pool), record."""
    route = await _open_chat_route(req, identity, ctx)
    await _prepare(req, route)
    estimate = hub.estimate_prompt_tokens(req.messages)

    async def call(attempt: failover.Attempt) -> hub.ChatResponse:
        _aim(req, route, attempt)
        return await _answer(ctx, attempt.client.chat(req), estimate)

    resp = await failover.run(
        route, ctx, call, tokens=_worst_tokens(ctx, estimate, req.max_tokens), signature=_history_signature(req, route)
    )
    return _chat_done(resp, ctx)


async def run_stream(req: hub.ChatRequest, identity: KeyIdentity, ctx: CallContext) -> AsyncIterator[hub.StreamEvent]:
    """One streamed chat, up to its first event (errors before it raise here, as plain HTTP errors,
    after failover has tried the pool); the events that follow are tallied and the usage recorded
    when the stream ends, however it ends."""
    route = await _open_chat_route(req, identity, ctx)
    await _prepare(req, route)
    estimate = hub.estimate_prompt_tokens(req.messages)

    async def call(attempt: failover.Attempt):
        _aim(req, route, attempt)
        return await _first_event(ctx, attempt.client.stream_chat(req))

    first, events = await failover.run(
        route, ctx, call, tokens=_worst_tokens(ctx, estimate, req.max_tokens), signature=_history_signature(req, route)
    )
    return _tallied(ctx, first, events, _Tally(estimate), HUB_PROBE)


async def _prepare(req: hub.ChatRequest, route: routing.Route) -> None:
    """Make a hub request ready for its upstreams: fetched images, remembered signatures."""
    await media.inline_media_urls(req.messages)
    if any(m.upstream.kind == "gemini" and m.upstream_model.startswith("gemini-3") for m in route.members):
        await signatures.restore(req.messages)


def _aim(req: hub.ChatRequest, route: routing.Route, attempt: failover.Attempt) -> None:
    """Point the request at one member: its model, grounding; signatures made on another key are
    dropped, so the Gemini codec sends the documented skip value instead (mapping.md §5.3)."""
    req.upstream_model, req.grounding = attempt.member.upstream_model, route.grounding
    if attempt.moved:
        for message in req.messages:
            for call in message.tool_calls:
                call.thought_signature = None


def _history_signature(req: hub.ChatRequest, route: routing.Route) -> str | None:
    """The latest thought signature in the history, for pools only (the affinity lookup)."""
    if not route.pooled:
        return None
    return next(
        (c.thought_signature for m in reversed(req.messages) for c in m.tool_calls if c.thought_signature), None
    )


def _remember_origin(ctx: CallContext, found: list[str]) -> None:
    """Pooled Gemini calls: note which upstream made the answer's signatures (proxy_app.call.health)."""
    if ctx.signed_by and found:
        health.remember_soon(health.digest(found[-1]), ctx.signed_by, time.time())


async def _first_event(ctx: CallContext, events: AsyncIterator[Any]) -> tuple[Any, AsyncIterator[Any]]:
    """A stream's first event (failover may try another member until it has one)."""
    ctx.streamed = True
    try:
        return await anext(events), events
    except StopAsyncIteration:
        raise UpstreamError("upstream ended the stream without sending anything") from None


async def _answer(ctx: CallContext, call: Awaitable, prompt_estimate: int = 0):
    """Await a non-streamed upstream call; a client that leaves meanwhile (the edge cancels the
    view) still gets its usage row, with the prompt estimate (the upstream was already asked),
    and the row's settlement frees its quota reservation and in-flight slot."""
    try:
        return await call
    except asyncio.CancelledError:
        status, code = _cancelled(ctx)
        usage.record(
            ctx, status=status, usage=hub.Usage(prompt_tokens=prompt_estimate, source="estimated"), error_code=code
        )
        raise


def _cancelled(ctx: CallContext) -> tuple[int, str]:
    """The row's status for a cancelled call: the client left (499), or the server stopped (503)."""
    if context.client_left():
        ctx.disconnected = True
        return 499, "client_disconnected"
    return 503, "server_shutdown"


def _chat_done(resp: hub.ChatResponse, ctx: CallContext) -> hub.ChatResponse:
    if ctx.otel is not None:
        tracing.note_reply(ctx, resp)
    failed = next((c for c in resp.choices if c.finish_reason == "error"), None)
    if failed is not None:
        err = UpstreamError(failed.finish_message or MALFORMED_CALL, code="malformed_function_call")
        usage.record(ctx, status=err.status, usage=resp.usage, error_code=err.code)
        raise err
    usage.record(ctx, status=200, usage=resp.usage)
    calls = [call for choice in resp.choices for call in choice.tool_calls]
    signatures.remember(calls)
    _remember_origin(ctx, [c.thought_signature for c in calls if c.thought_signature])
    return resp


async def embed(req: hub.EmbedRequest, identity: KeyIdentity, ctx: CallContext) -> hub.EmbedResponse:
    estimate = sum(hub.estimate_tokens(text) for text in req.inputs)
    route = await _open_route(req.model, identity, ctx, prompt_estimate=estimate, max_tokens=0)

    async def call(attempt: failover.Attempt) -> hub.EmbedResponse:
        req.upstream_model = attempt.member.upstream_model
        return await _answer(ctx, attempt.client.embed(req), estimate)

    resp = await failover.run(route, ctx, call, tokens=estimate)
    usage.record(ctx, status=200, usage=resp.usage)
    return resp


@dataclass(frozen=True)
class Native:
    """A client body in its upstream family's own wire format, for `forward` / `forward_stream`.

    `send(client, upstream_model)` makes the upstream call (with the model renamed): an awaitable
    reply object for `forward`, an async iterator of reply objects for `forward_stream`.
    """

    model: str
    send: Callable[[UpstreamClient, str], Any]
    prompt_estimate: int | None = None  # None: the call is not admitted against limits (countTokens)
    max_tokens: int | None = None  # all choices; None: not given (`send` applies `output_cap(ctx, choices)`)
    choices: int = 1
    usage_of: Callable[[dict], hub.Usage | None] = lambda reply: None  # a non-streamed reply's usage
    probe: Probe | None = None  # how a stream's events are tallied (and where replies carry signatures)
    signature: str | None = None  # the latest thought signature in the body's history (pool affinity)
    unsign: Callable[[], None] | None = None  # replace the body's signatures by the skip value (moved)


async def forward(native: Native, identity: KeyIdentity, ctx: CallContext) -> dict:
    """A pass-through call that is not streamed: route and admit, call (failing over within the
    pool), record what the upstream reported."""
    route = await _open_native(native, identity, ctx)

    async def call(attempt: failover.Attempt) -> dict:
        _aim_native(native, attempt)
        sent = native.send(attempt.client, attempt.member.upstream_model)
        return await _answer(ctx, sent, native.prompt_estimate or 0)

    tokens, sig = _native_tokens(native, ctx), _native_sig(native, route)
    reply = await failover.run(route, ctx, call, tokens=tokens, signature=sig)
    if ctx.otel is not None:
        tracing.note_reply(ctx, reply)
    usage.record(ctx, status=200, usage=native.usage_of(reply))
    if native.probe is not None:
        _remember_origin(ctx, native.probe.signatures(reply))
    return reply


async def forward_stream(native: Native, identity: KeyIdentity, ctx: CallContext) -> AsyncIterator[Any]:
    """A streamed pass-through call, up to its first event; tallied and recorded like `run_stream`."""
    route = await _open_native(native, identity, ctx)

    async def call(attempt: failover.Attempt):
        _aim_native(native, attempt)
        return await _first_event(ctx, native.send(attempt.client, attempt.member.upstream_model))

    first, events = await failover.run(
        route, ctx, call, tokens=_native_tokens(native, ctx), signature=_native_sig(native, route)
    )
    return _tallied(ctx, first, events, _Tally(native.prompt_estimate or 0), native.probe)


async def _open_native(native: Native, identity: KeyIdentity, ctx: CallContext) -> routing.Route:
    return await _open_route(
        native.model,
        identity,
        ctx,
        prompt_estimate=native.prompt_estimate,
        max_tokens=native.max_tokens,
        choices=native.choices,
    )


def _native_tokens(native: Native, ctx: CallContext) -> int:
    return _worst_tokens(ctx, native.prompt_estimate or 0, native.max_tokens)


def _native_sig(native: Native, route: routing.Route) -> str | None:
    return native.signature if route.pooled else None


def _aim_native(native: Native, attempt: failover.Attempt) -> None:
    if attempt.moved and native.unsign is not None:
        native.unsign()


@dataclass(frozen=True)
class Probe:
    """How the tally reads one kind of stream event."""

    usage: Callable[[Any], hub.Usage | None]
    chars: Callable[[Any], int]  # output characters in the event, for estimates
    check: Callable[[Any], None] = lambda event: None  # raise a GatewayError for a failed event
    final: Callable[[hub.Usage], Any] | None = None  # an extra last event carrying the final usage
    signatures: Callable[[Any], list[str]] = lambda event: []  # Gemini thought signatures in an event


def _hub_chars(event: hub.StreamEvent) -> int:
    return sum(len(d.text) + len(d.reasoning) + sum(len(str(c.arguments)) for c in d.tool_calls) for d in event.deltas)


def _hub_check(event: hub.StreamEvent) -> None:
    for delta in event.deltas:
        if delta.finish_reason == "error":
            raise UpstreamError(delta.finish_message or MALFORMED_CALL, code="malformed_function_call")
    signatures.remember(call for delta in event.deltas for call in delta.tool_calls)


def _hub_signatures(event: hub.StreamEvent) -> list[str]:
    return [c.thought_signature for d in event.deltas for c in d.tool_calls if c.thought_signature]


HUB_PROBE = Probe(
    usage=lambda e: e.usage,
    chars=_hub_chars,
    check=_hub_check,
    final=lambda u: hub.StreamEvent(usage=u),
    signatures=_hub_signatures,
)


async def _tallied(
    ctx: CallContext, first: Any, events: AsyncIterator[Any], tally: _Tally, probe: Probe
) -> AsyncIterator[Any]:
    if ctx.otel is not None:
        probe = tracing.watching(ctx, probe)
    status, code = 200, ""
    try:
        event = first
        while True:
            tally.add(probe.usage(event), probe.chars(event))
            probe.check(event)
            if ctx.signed_by:
                _remember_origin(ctx, probe.signatures(event))
            if tally.output_chars:
                ctx.mark_first_token()
            yield event
            try:
                event = await anext(events)
            except StopAsyncIteration:
                break
        if probe.final is not None:
            yield probe.final(tally.result(complete=True))
    except GatewayError as err:
        status, code = err.status, err.code
        raise
    except (asyncio.CancelledError, GeneratorExit):
        status, code = _cancelled(ctx)
        raise
    finally:
        await events.aclose()
        usage.record(ctx, status=status, usage=tally.result(complete=status == 200), error_code=code)


class _Tally:
    """Running usage of a stream: the upstream's last report, else an estimate flagged as such."""

    def __init__(self, prompt_estimate: int) -> None:
        self.prompt_estimate = prompt_estimate
        self.output_chars = 0
        self.reported: hub.Usage | None = None

    def add(self, reported: hub.Usage | None, chars: int) -> None:
        if reported is not None:
            self.reported = reported
        self.output_chars += chars

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


_upstream_models: dict[str, tuple[float, list[hub.ModelInfo]]] = {}
_model_lists = SingleFlight()  # one upstream list call per burst of /v1/models misses
_known: tuple[object, frozenset[str]] = (None, frozenset())


def _known_model_names() -> frozenset[str]:
    """Aliases and upstream models from the routing table and the cached upstream model lists, for
    the metrics' model label. Both are in-process caches refreshed anyway (no query here); the set
    is rebuilt only when one of them was reloaded."""
    global _known
    table = routing._table  # the cached table itself: routing.table() would be async and may query
    stamp = (table.loaded_at if table else None, tuple(loaded for loaded, _ in _upstream_models.values()))
    if _known[0] != stamp:
        names = {info.id for _, models in _upstream_models.values() for info in models}
        if table is not None:
            names.update(table.mappings)
            names.update(member[1] for m in table.mappings.values() for member in m.members)
        _known = (stamp, frozenset(names))
    return _known[1]


observability.known_models_from(_known_model_names)


async def list_models(identity: KeyIdentity) -> list[hub.ModelInfo]:
    """Aliases this key may use, then the default upstream's Gemini models (cached a while)."""
    upstream_models = await _default_upstream_models()
    known = {info.id: info for info in upstream_models}
    models = [_alias_info(m, known.get(m.upstream_model)) for m in await routing.visible_aliases(identity)]
    seen = {m.id for m in models}
    models += [i for i in upstream_models if i.id not in seen and identity.allows(i.id)]
    return models


def _alias_info(mapping: routing.Mapping, target: hub.ModelInfo | None) -> hub.ModelInfo:
    """An alias looks like the model behind it (limits, methods), under its own name."""
    embeds = "embedding" in mapping.upstream_model
    methods = target.methods if target else (["embedContent", "batchEmbedContents"] if embeds else [])
    return hub.ModelInfo(
        id=mapping.alias,
        owned_by=mapping.upstream.name if mapping.upstream else "gateway",
        created=mapping.created,
        display_name=mapping.alias,
        input_token_limit=target.input_token_limit if target else 0,
        output_token_limit=target.output_token_limit if target else 0,
        methods=list(methods),
    )


async def _default_upstream_models() -> list[hub.ModelInfo]:
    config = (await routing.table()).default_gemini
    if config is None:
        return []
    cached = _upstream_models.get(config.base_url)
    if cached and time.monotonic() - cached[0] < settings.MODEL_LIST_CACHE_SECONDS:
        return cached[1]
    try:
        models = await _model_lists.run(config.base_url, client_for(config).list_models)
    except GatewayError as err:  # the list still shows the aliases; try the upstream again later
        log.warning("could not list models of upstream %s: %s", config.name, err.message)
        models = cached[1] if cached else []
    _upstream_models[config.base_url] = (time.monotonic(), models)
    return models
