"""Admission before the upstream call and settlement after it: check, reserve, correct.

    admission = await quota.admit(identity, model=..., prompt_estimate=..., max_tokens=..., request_id=...)
    try:
        ... call the upstream ...
    finally:
        cost = await quota.settle(admission, usage, model)

`admit` reserves the request's worst case — the prompt estimate plus its output cap, and that
many tokens' cost — against every token and budget limit of every applicable scope (user and
key), and counts it against requests per minute and requests in flight, all at once in the counter
backend (proxy_app.counters): everything or nothing. The output cap is the request's max_tokens;
when it names none, QUOTA_DEFAULT_MAX_TOKENS or what remains under the tightest token/budget limit
if less (granted inside the same atomic step; refused only when not even one output token fits),
and the caller must pass that cap upstream (`Admission.output_cap`). `settle` replaces the
reservation by the real usage and frees the in-flight slot.

The bound: admission requires `used + reserved + this request's worst case <= limit`, so the
counted total only passes a limit when a request's real usage exceeds its own reservation (a
prompt larger than estimated, an upstream ignoring max_tokens), and then by at most that excess.

Windows: requests/tokens per minute are fixed one-minute windows (a burst may straddle a
boundary); days and months are UTC calendar periods. Day/month/budget counters are seeded from
the usage tables when missing (a restart, a new period), by ledger.reports.quota_usage: a user's
from the daily roll-up for rolled-up days (whose raw rows may be pruned) and raw rows after; a
key's from raw rows only (the roll-up has no key), so with a raw retention shorter than a month a
key's monthly counter is seeded with the retained days only. When the Redis store does not answer,
QUOTA_REDIS_FAILURE decides: "closed" (default) refuses with 503, "open" admits unmetered.

Known edges, each bounded by the requests in flight at that moment: a day/month counter seeded
while requests are in flight (a limit just added, a flushed Redis) does not hold their
reservations, and their settlement applies only (actual − reserved), clamped at 0; a request
settled after its period ended is charged to the new period only if that counter already exists
(otherwise the seed finds it in the usage table once the writer has flushed it).
"""

from __future__ import annotations

import asyncio
import calendar
import functools
import logging
import math
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError

from accounts.limits import EffectiveLimits, Scope, effective_limits
from proxy_app.core import hub
from proxy_app.core.errors import RateLimited, UpstreamUnavailable
from proxy_app.ledger import pricing
from proxy_app.ledger.counters import (
    MILLION,
    Adjust,
    Counters,
    Decision,
    Release,
    Slot,
    StoreUnavailable,
    get_counters,
    resolved,
)

log = logging.getLogger(__name__)

DESCRIPTIONS = {
    "rpm": "requests per minute",
    "tpm": "tokens per minute",
    "max_parallel": "requests in flight",
    "daily_tokens": "tokens per day",
    "monthly_tokens": "tokens per month",
    "budget_usd": "monthly budget",
}
KINDS = tuple(DESCRIPTIONS)  # also the order limits are checked in
TOKEN_KINDS = ("tpm", "daily_tokens", "monthly_tokens")
QUOTA_KINDS = ("daily_tokens", "monthly_tokens", "budget_usd")  # 429 insufficient_quota
DAY = 86_400


class QuotaExceeded(RateLimited):
    """A daily/monthly token quota or the monthly budget is used up (OpenAI's insufficient_quota)."""

    code = "insufficient_quota"
    kind = "insufficient_quota"


def _setting(name: str, default):
    return getattr(settings, name, default)


# --- windows and keys ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Counted:
    """One limit of one scope, as counted for one admission."""

    scope: Scope
    kind: str
    slot: Slot
    reset_at: float  # when its window/period ends (UTC epoch seconds)


def windows(now: float) -> dict[str, tuple[str, float, int]]:
    """kind -> (key suffix, reset time, key TTL) of the window or period `now` falls in."""
    minute = int(now // 60)
    found = dict(_periods(int(now // DAY)))  # UTC days are exactly DAY seconds of epoch time
    found["rpm"] = (f"rpm:{minute}", (minute + 1) * 60.0, 180)
    found["tpm"] = (f"tpm:{minute}", (minute + 1) * 60.0, 180)
    found["max_parallel"] = ("inflight", now + 1, int(_setting("QUOTA_LEASE_SECONDS", 900)))
    return found


@functools.lru_cache(maxsize=8)
def _periods(day_number: int) -> dict[str, tuple[str, float, int]]:
    """The UTC day and month containing day `day_number` (cached: calendar maths is the slow part)."""
    day = datetime.fromtimestamp(day_number * DAY, UTC)
    month = day.replace(day=1)
    month_end = (month + timedelta(days=calendar.monthrange(month.year, month.month)[1])).timestamp()
    return {
        "daily_tokens": (f"tokens:d{day:%Y%m%d}", (day_number + 1) * DAY, 3 * DAY),
        "monthly_tokens": (f"tokens:m{month:%Y%m}", month_end, 62 * DAY),
        "budget_usd": (f"usd:m{month:%Y%m}", month_end, 62 * DAY),
    }


def _key(scope: Scope, suffix: str) -> str:
    # The {u<id>} hash tag keeps all of one request's keys (user and key scope) in one cluster slot.
    owner = "u" if scope.kind == "user" else "k"
    return f"{{u{scope.user_id}}}:{owner}{scope.id}:{suffix}"


def _mode(kind: str) -> str:
    return {"rpm": "count", "tpm": "count", "max_parallel": "lease"}.get(kind, "seeded")


def _limit_units(kind: str, value) -> int:
    return pricing.micro_usd(Decimal(value)) if kind == "budget_usd" else int(value)


def plan(
    limits: EffectiveLimits, now: float, *, tokens: int, micro_usd: int, micro_usd_rate: int = 0, flexible: bool = False
) -> tuple[Counted, ...]:
    """Every counter this request touches, user scope before key scope, in KINDS order.

    tokens/micro_usd: the fixed part (the prompt's, or the whole worst case); with `flexible`, the
    token and budget counters also grow per output token granted (counters.Slot.rate): tokens by
    one each, the budget by `micro_usd_rate` micro-USD per million output tokens."""
    amounts = {
        "rpm": 1,
        "max_parallel": 1,
        "tpm": tokens,
        "daily_tokens": tokens,
        "monthly_tokens": tokens,
        "budget_usd": micro_usd,
    }
    rates = {"tpm": MILLION, "daily_tokens": MILLION, "monthly_tokens": MILLION, "budget_usd": micro_usd_rate}
    current = windows(now)
    counted = []
    for kind in KINDS:
        for scope in limits.scopes:
            value = getattr(scope.limits, kind)
            if value is None:
                continue
            suffix, reset_at, ttl = current[kind]
            rate = rates.get(kind, 0) if flexible else 0
            slot = Slot(_key(scope, suffix), _mode(kind), _limit_units(kind, value), amounts[kind], ttl, rate)
            counted.append(Counted(scope, kind, slot, reset_at))
    return tuple(counted)


# --- the admission ------------------------------------------------------------------------------


@dataclass
class Admission:
    """What admit() reserved for one request; settle() it exactly once."""

    request_id: str
    model: str
    now: float
    counted: tuple[Counted, ...] = ()
    used: tuple[int, ...] = ()  # per counted limit, before this request
    member: str = ""  # this request's in-flight lease
    backend: Counters | None = None
    degraded: bool = False  # the store was down and QUOTA_REDIS_FAILURE is "open"
    # The request named no max_tokens and a token or budget limit applies: the most output
    # tokens (all choices together) it was granted; the upstream must be asked for no more.
    output_cap: int | None = None
    settled: bool = field(default=False, compare=False)

    @property
    def limited(self) -> bool:
        return bool(self.counted)

    def headers(self) -> dict[str, str]:
        """OpenAI-style x-ratelimit-* headers for the tightest applicable limit; {} when none."""
        out: dict[str, str] = {}
        for unit, kinds in (("requests", ("rpm",)), ("tokens", TOKEN_KINDS)):
            tightest = self._tightest(kinds)
            if tightest is not None:
                c, remaining = tightest
                out[f"x-ratelimit-limit-{unit}"] = str(c.slot.limit)
                out[f"x-ratelimit-remaining-{unit}"] = str(remaining)
                out[f"x-ratelimit-reset-{unit}"] = format_duration(c.reset_at - self.now)
        return out

    def _tightest(self, kinds: tuple[str, ...]) -> tuple[Counted, int] | None:
        found = [
            (c, max(c.slot.limit - used - c.slot.amount, 0))
            for c, used in zip(self.counted, self.used, strict=True)
            if c.kind in kinds
        ]
        return min(found, key=lambda pair: (pair[1], pair[0].reset_at)) if found else None


def format_duration(seconds: float) -> str:
    """OpenAI's reset format (Go durations): '1s', '59s', '6m0s', '1h0m0s'; at least 1s."""
    total = max(1, math.ceil(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


async def admit(
    identity,
    *,
    model: str,
    prompt_estimate: int,
    max_tokens: int | None,
    request_id: str,
    choices: int = 1,
    now: float | None = None,
) -> Admission:
    """Reserve this request's worst case against every applicable limit, or raise.

    identity: accounts.authentication.KeyIdentity; model: the upstream model (prices);
    max_tokens: the request's output cap (all choices), 0 for requests without output
    (embeddings), None for "not given": then the output reserved is QUOTA_DEFAULT_MAX_TOKENS or
    what remains under the tightest token/budget limit if less (at least `choices` tokens, one per
    choice), and `Admission.output_cap` says how much the upstream may be asked for. Raises
    RateLimited (rpm, tpm, in flight) or QuotaExceeded (day, month, budget) with retry_after, or
    UpstreamUnavailable (503) when the counter store is down and QUOTA_REDIS_FAILURE is "closed".
    """
    table = await pricing.aload()  # fresh prices for settle(), which must not touch the database
    limits = await effective_limits(identity)
    now = time.time() if now is None else now
    if limits.unlimited:
        return Admission(request_id, model, now)
    prompt = max(prompt_estimate, 0)
    flexible = max_tokens is None
    if flexible:
        want, need = int(_setting("QUOTA_DEFAULT_MAX_TOKENS", 4096)), max(choices, 1)
        want = max(want, need)
    else:
        want = need = max(max_tokens, 0)
    price = table.price_for(model)
    counted = plan(
        limits,
        now,
        tokens=prompt,
        micro_usd=pricing.micro_usd(table.cost(model, hub.Usage(prompt_tokens=prompt))),
        micro_usd_rate=math.ceil(price.output * MILLION) if price else 0,
        flexible=True,
    )
    member = f"{request_id}:{secrets.token_hex(4)}"  # unique even if a client reuses request ids
    backend = get_counters()
    try:
        decision = await _reserve(backend, counted, member, now, want, need)
    except StoreUnavailable as exc:
        return _store_down(exc, request_id, model, now)
    if not decision.admitted:
        raise refusal(counted[decision.refused], decision.refused_used, now, hub.Usage(prompt, want), flexible)
    cap = decision.output if flexible and any(c.slot.rate for c in counted) else None
    slots = resolved([c.slot for c in counted], decision.output)
    counted = tuple(Counted(c.scope, c.kind, slot, c.reset_at) for c, slot in zip(counted, slots, strict=True))
    return Admission(request_id, model, now, counted, decision.used, member, backend, output_cap=cap)


async def _reserve(
    backend: Counters, counted: tuple[Counted, ...], member: str, now: float, want: int, need: int
) -> Decision:
    slots = [c.slot for c in counted]
    lease_until = now + float(_setting("QUOTA_LEASE_SECONDS", 900))
    kwargs = {"member": member, "now": now, "lease_until": lease_until, "want": want, "need": need}
    decision = await backend.reserve(slots, seeds={}, **kwargs)
    if decision.missing:  # cold day/month counters: seed them from the usage table, then retry
        try:
            seeds = await seed_values([(i, counted[i]) for i in decision.missing], now)
        except DatabaseError as exc:
            raise StoreUnavailable(f"usage table unreadable: {exc}") from exc
        decision = await backend.reserve(slots, seeds=seeds, **kwargs)
        if decision.missing:
            raise StoreUnavailable("counters vanished while being seeded")
    return decision


_last_open_warning = -math.inf


def _store_down(exc: StoreUnavailable, request_id: str, model: str, now: float) -> Admission:
    """Apply QUOTA_REDIS_FAILURE: anything but "open" fails closed (never silent unlimited use)."""
    global _last_open_warning
    closed = _setting("QUOTA_REDIS_FAILURE", "closed") != "open"
    if time.monotonic() - _last_open_warning > 10:  # one log line per 10 s, not one per request
        _last_open_warning = time.monotonic()
        if closed:
            log.error("rate-limit store unavailable, refusing requests (QUOTA_REDIS_FAILURE=closed): %s", exc)
        else:
            log.warning("rate-limit store unavailable, admitting without limits (QUOTA_REDIS_FAILURE=open): %s", exc)
    if closed:
        raise UpstreamUnavailable("rate-limit store unavailable", retry_after=1) from exc
    return Admission(request_id, model, now, degraded=True)


def refusal(c: Counted, used: int, now: float, worst: hub.Usage, flexible: bool = False) -> RateLimited:
    """The 429 for limit `c`: names the scope and limit, says when it resets and what to do."""
    retry = max(1, math.ceil(c.reset_at - now))
    limit = _limit_text(c)
    message = f"{c.scope.label} exceeded {DESCRIPTIONS[c.kind]} ({c.kind}={limit}): {_detail(c, used, worst, flexible)}"
    if c.kind != "max_parallel":
        message += f" Resets in {format_duration(c.reset_at - now)}."
    err = (QuotaExceeded if c.kind in QUOTA_KINDS else RateLimited)(message, retry_after=retry)
    if c.kind == "tpm":
        err.kind = "tokens"  # OpenAI's error.type for TPM limits ("requests" is the class default)
    err.limit, err.scope = c.kind, c.scope.kind
    return err


def _detail(c: Counted, used: int, worst: hub.Usage, flexible: bool) -> str:
    if c.kind == "rpm":
        return f"{used} requests this minute."
    if c.kind == "max_parallel":
        return f"{used} requests already in flight; retry when one finishes."
    unit = _usd if c.kind == "budget_usd" else (lambda n: f"{n} tokens")
    remaining = f"{unit(max(c.slot.limit - used, 0))} remain"
    if flexible:
        return (
            f"{unit(used)} already used or reserved, {remaining}: not enough for this request's prompt "
            f"(~{worst.prompt_tokens} tokens) and any answer; shorten it or wait."
        )
    need = (
        f"this request may use up to {unit(c.slot.at(worst.completion_tokens))} "
        f"(prompt ~{worst.prompt_tokens} + max_tokens {worst.completion_tokens})"
    )
    if c.slot.at(worst.completion_tokens) > c.slot.limit:
        return f"{need}, more than the whole limit; {remaining}; lower max_tokens."
    return f"{unit(used)} already used or reserved, {remaining}; {need}; lower max_tokens or wait."


def _limit_text(c: Counted) -> str:
    return _usd(c.slot.limit)[1:] if c.kind == "budget_usd" else str(c.slot.limit)


def _usd(micro: int) -> str:
    amount = Decimal(micro) / 1_000_000
    text = f"{amount:.6f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac.ljust(2, '0')}"


# --- seeding cold counters from the usage table --------------------------------------------------


async def seed_values(items: list[tuple[int, Counted]], now: float) -> dict[int, int]:
    """Current day/month totals from the usage tables for each (slot index, counted)."""
    scopes = {(c.scope.kind, c.scope.id) for _, c in items}
    totals = {scope: await _scope_totals(*scope, now) for scope in sorted(scopes)}
    seeds = {}
    for index, c in items:
        value = totals[(c.scope.kind, c.scope.id)][c.kind] or 0
        seeds[index] = pricing.micro_usd(Decimal(value)) if c.kind == "budget_usd" else int(value)
    return seeds


_totals_queries: dict[tuple, asyncio.Future] = {}
SEED_MEMO_SECONDS = 1.0


def clear_cache() -> None:
    """Forget recent usage-table totals (tests that simulate a restart)."""
    _totals_queries.clear()


async def _scope_totals(kind: str, scope_id: int, now: float) -> dict:
    """One read of the usage tables per scope and day, shared by every request that finds the
    same counters cold at once (a restart under load would otherwise send one read per request).
    The answer is kept SEED_MEMO_SECONDS more for requests whose "missing" reply was already on
    its way; seeds are written with SET NX, so a late duplicate changes nothing."""
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    flight = (kind, scope_id, day)
    loop = asyncio.get_running_loop()
    running = _totals_queries.get(flight)
    if running is None or running.get_loop() is not loop:
        running = _totals_queries[flight] = asyncio.ensure_future(_query_totals(kind, scope_id, day))

        def drop(done: asyncio.Future) -> None:
            if _totals_queries.get(flight) is done:
                del _totals_queries[flight]

        def forget(done: asyncio.Future) -> None:
            if done.cancelled() or done.exception() is not None:
                drop(done)  # never memoize a failure
            else:
                loop.call_later(SEED_MEMO_SECONDS, drop, done)

        running.add_done_callback(forget)
    return await asyncio.shield(running)


async def _query_totals(kind: str, scope_id: int, day: datetime) -> dict:
    from proxy_app.ledger import reports

    return await sync_to_async(reports.quota_usage)(kind, scope_id, day)


# --- settlement ---------------------------------------------------------------------------------


async def settle(admission: Admission, usage: hub.Usage, model: str = "", *, now: float | None = None) -> Decimal:
    """Replace the reservation by the real usage, free the in-flight slot; return the USD cost.

    Call it exactly once per admitted request, from a `finally` (success, error, disconnect);
    later calls only return the cost. It is short: no database work (prices were loaded by
    admit), one script call on Redis, shielded so a cancellation cannot cut it in half; if the
    store is down it logs and returns (the lease expires by itself after QUOTA_LEASE_SECONDS).
    Pass the same `usage` that goes into the usage record so counters and the table agree.
    """
    cost = pricing.cost(model or admission.model, usage)
    if admission.settled or admission.backend is None or not admission.counted:
        admission.settled = True
        return cost
    admission.settled = True
    now = time.time() if now is None else now
    try:
        await admission.backend.settle(settle_ops(admission, usage.total_tokens, pricing.micro_usd(cost), now), now=now)
    except StoreUnavailable as exc:
        log.warning("could not settle request %s in the rate-limit store: %s", admission.request_id, exc)
    return cost


def settle_ops(admission: Admission, tokens: int, micro_usd: int, now: float) -> list[Adjust | Release]:
    """Per counted limit: release the lease, or swap the reservation for the actual amount.

    Actual usage goes to the window/period current at settlement (where its usage record will
    be dated); the reservation is taken back from the one it was made in.
    """
    ops: list[Adjust | Release] = []
    current = windows(now)
    for c in admission.counted:
        if c.kind == "max_parallel":
            ops.append(Release(c.slot.key, admission.member))
            continue
        if c.kind == "rpm":
            continue
        actual = micro_usd if c.kind == "budget_usd" else tokens
        suffix, _, ttl = current[c.kind]
        key = _key(c.scope, suffix)
        if key == c.slot.key:
            ops.append(Adjust(key, actual - c.slot.amount, ttl))
        else:
            ops.append(Adjust(c.slot.key, -c.slot.amount, c.slot.ttl))
            ops.append(Adjust(key, actual, ttl, create=c.slot.mode == "count"))
    return ops


# --- reading (dashboards, member page) ----------------------------------------------------------


@dataclass(frozen=True)
class LimitStatus:
    scope: str  # "user alice", "key gw-…"
    kind: str
    limit: int  # micro-USD for budget_usd
    used: int | None  # None: not counted yet in this period (see the usage table)
    reset_at: float


async def status(identity, *, now: float | None = None) -> list[LimitStatus]:
    """Current counter values against every applicable limit (no reservation, no seeding)."""
    limits = await effective_limits(identity)
    now = time.time() if now is None else now
    counted = plan(limits, now, tokens=0, micro_usd=0)
    if not counted:
        return []
    values = await get_counters().read([c.slot for c in counted], now=now)
    return [
        LimitStatus(c.scope.label, c.kind, c.slot.limit, v, c.reset_at) for c, v in zip(counted, values, strict=True)
    ]
