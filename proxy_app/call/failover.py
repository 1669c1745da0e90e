"""Trying a route's pool members in turn: order, cool-downs, per-upstream limits, failover.

`run(route, ctx, call)` makes one request's upstream call(s). Order: members cooling down are left
out; then by priority (lowest first); within one priority the member whose turn it is by smooth
weighted round-robin (nginx's: exact shares, no randomness), then the rest by weight. A
conversation whose history carries a Gemini thought signature goes first to the upstream that made
it, while it is healthy (see `Attempt.moved`).

A call that fails with 429, 5xx, a refused connection or a timeout before anything reached the
client (the whole answer, or a stream's first event: `call` covers exactly that) marks the member
as cooling down (its Retry-After, else exponential; proxy_app.call.health, shared through Redis)
and the next member is tried, while the request is younger than POOL_FAILOVER_SECONDS. Any other
error (a 400, say) is the answer. When every member failed, the last error is raised; when every
member was cooling down already, a 503 with the soonest end as Retry-After.

A single-member route behaves as before pools: never skipped, one attempt, no health read.
Each attempt is counted (`gateway_upstream_attempts_total{upstream,outcome}`); failed ones go into
the detailed log; `ctx.attempts` goes into the usage row; user quotas were admitted once before.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings

from proxy_app.call import health
from proxy_app.call.routing import Member, Route
from proxy_app.core.context import CallContext
from proxy_app.core.errors import GatewayError, UpstreamUnavailable
from proxy_app.ledger import upstream_limits
from proxy_app.ops import detail_log, observability, tracing
from proxy_app.upstreams import UpstreamClient, client_for

T = TypeVar("T")


@dataclass(frozen=True)
class Attempt:
    member: Member
    client: UpstreamClient
    # The conversation's thought signatures were made by another upstream (key) of the pool: the
    # caller replaces them by Gemini's documented skip value before sending.
    moved: bool = False


def worth_another(err: GatewayError) -> bool:
    """429, 5xx or unreachable: another member may answer. Anything else is the answer."""
    status = err.upstream_status
    return err.unreachable or status == 429 or (status is not None and status >= 500)


def outcome(err: GatewayError | None) -> str:
    if err is None:
        return "ok"
    if err.unreachable:
        return "unreachable"
    if err.upstream_status == 429:
        return "rate_limited"
    if err.upstream_status is not None and err.upstream_status >= 500:
        return "server_error"
    return "rejected"


async def run(route: Route, ctx: CallContext, call: Callable[[Attempt], Awaitable[T]], *, tokens: int,
              signature: str | None = None) -> T:  # fmt: skip
    """Make the call on the first member that answers; see the module docstring."""
    now = time.time()
    if not route.pooled:
        return await _attempt(route.members[0], ctx, call, tokens, False, last=True)
    sig = health.digest(signature) if signature else None
    names = [m.upstream.name for m in route.members]
    snap = await health.snapshot(names, sig, now)
    order = ordered(route, snap)
    if not order:
        wait = max(1, math.ceil(min(snap.cooling.values()) - now))
        raise UpstreamUnavailable(
            f"every upstream of '{route.alias}' is cooling down after errors; retry in {wait}s",
            code="upstream_cooling_down",
            retry_after=wait,
        )
    if snap.origin is not None:  # keep the conversation on the key that signed it, while it is healthy
        order.sort(key=lambda m: m.upstream.name != snap.origin)
    deadline = ctx.started + settings.POOL_FAILOVER_SECONDS
    last: GatewayError | None = None
    for number, member in enumerate(order):
        final = number == len(order) - 1 or time.monotonic() >= deadline
        moved = snap.origin is not None and member.upstream.name != snap.origin
        try:
            result = await _attempt(member, ctx, call, tokens, moved, last=final)
        except GatewayError as err:
            if final or not (worth_another(err) or isinstance(err, upstream_limits.UpstreamBusy)):
                raise
            last = err
            continue
        if snap.strikes.get(member.upstream.name):
            await health.recovered(member.upstream.name)
        if member.upstream.kind == "gemini":  # signatures in its answer are remembered as this key's
            ctx.signed_by = member.upstream.name
        return result
    raise last or UpstreamUnavailable(f"no upstream of '{route.alias}' answered")  # not reached


async def _attempt(
    member: Member, ctx: CallContext, call: Callable[[Attempt], Awaitable[T]], tokens: int, moved: bool, *, last: bool
) -> T:
    name = member.upstream.name
    ctx.upstream_name, ctx.upstream_model = name, member.upstream_model
    if ctx.otel is not None:
        tracing.routed(ctx, member.upstream.kind)
    hold = await upstream_limits.acquire(member.upstream, tokens, ctx.request_id)  # UpstreamBusy: next member
    ctx.attempts += 1
    try:
        result = await call(Attempt(member, client_for(member.upstream), moved))
    except GatewayError as err:
        await upstream_limits.release(hold, 0)
        _observe(name, err)
        if worth_another(err):
            await _cool_down(name, err)
            if not last:
                detail_log.failed_attempt(name, member.upstream_model, err)
        raise
    except BaseException:
        await upstream_limits.release(hold, 0)
        raise
    _observe(name, None)
    ctx.upstream_hold = hold  # released with the real usage when the usage row is recorded
    return result


def _observe(name: str, err: GatewayError | None) -> None:
    kind = outcome(err)
    observability.upstream_attempt(name, kind)
    health.count(name, kind not in ("ok", "rejected"), time.time())


async def _cool_down(name: str, err: GatewayError) -> None:
    now = time.time()
    last = {"at": now, "status": err.upstream_status or err.status, "code": err.code or "", "message": err.message}
    await health.failed(name, err.retry_hint, last, now)


# --- order ------------------------------------------------------------------------------------------

_turns: dict[tuple, list[int]] = {}  # smooth weighted round-robin state per (alias, priority, members)


def ordered(route: Route, snap: health.Snapshot) -> list[Member]:
    """The members to try, in order, leaving out those cooling down."""
    usable = [m for m in route.members if m.upstream.name not in snap.cooling]
    order: list[Member] = []
    for priority in sorted({m.priority for m in usable}):
        tier = [m for m in usable if m.priority == priority]
        if len(tier) > 1:
            first = _next_turn((route.alias, priority, tuple(m.upstream.name for m in tier)), tier)
            tier = [first, *sorted((m for m in tier if m is not first), key=lambda m: -m.weight)]
        order += tier
    return order


def _next_turn(key: tuple, tier: list[Member]) -> Member:
    """nginx's smooth weighted round-robin: each pick adds every weight to its member's current
    value, takes the largest and subtracts the total from it (exact shares, well interleaved)."""
    current = _turns.get(key)
    if current is None:
        if len(_turns) > 1000:
            _turns.clear()
        current = _turns[key] = [0] * len(tier)
    total = 0
    for i, member in enumerate(tier):
        current[i] += member.weight
        total += member.weight
    best = max(range(len(tier)), key=current.__getitem__)
    current[best] -= total
    return tier[best]
