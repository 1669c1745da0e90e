"""Per-upstream limits: calls open at once, calls per minute and tokens per minute on one upstream key.

The same counters as users' limits (proxy_app.ledger.counters): one atomic reserve before the call,
one settle after it (the in-flight lease released, the token reservation swapped for what was used).
A refusal is `UpstreamBusy` (429 with Retry-After): the pool then tries its next member.
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass

from django.conf import settings

from proxy_app.core.errors import RateLimited, UpstreamUnavailable
from proxy_app.ledger.counters import Adjust, Counters, Release, Slot, StoreUnavailable, get_counters

WINDOW_TTL = 180


class UpstreamBusy(RateLimited):
    """The upstream key is at one of its own limits (max concurrent, RPM, TPM)."""

    code = "upstream_limit"


@dataclass
class Hold:
    """What `acquire` reserved on one upstream; `release` it exactly once."""

    upstream: str
    slots: tuple[Slot, ...]
    member: str
    backend: Counters
    tokens: int
    released: bool = False


def _slots(config, tokens: int, now: float) -> tuple[tuple[Slot, ...], tuple[str, ...]]:
    minute = int(now // 60)
    tag = f"{{p:{config.name}}}"  # one cluster slot per upstream
    slots, kinds = [], []
    if config.max_concurrent is not None:
        slots.append(Slot(f"{tag}:inflight", "lease", config.max_concurrent, 1, settings.QUOTA_LEASE_SECONDS))
        kinds.append("calls open at once")
    if config.rpm is not None:
        slots.append(Slot(f"{tag}:rpm:{minute}", "count", config.rpm, 1, WINDOW_TTL))
        kinds.append("calls per minute")
    if config.tpm is not None:
        slots.append(Slot(f"{tag}:tpm:{minute}", "count", config.tpm, tokens, WINDOW_TTL))
        kinds.append("tokens per minute")
    return tuple(slots), tuple(kinds)


async def acquire(config, tokens: int, request_id: str, now: float | None = None) -> Hold | None:
    """Reserve one call of up to `tokens` tokens on `config`'s limits; None when it has none."""
    if not config.limited:
        return None
    now = time.time() if now is None else now
    slots, kinds = _slots(config, tokens, now)
    member = f"{request_id}:{secrets.token_hex(4)}"
    backend = get_counters()
    try:
        decision = await backend.reserve(
            slots, member=member, now=now, lease_until=now + settings.QUOTA_LEASE_SECONDS, seeds={}
        )
    except StoreUnavailable as exc:
        if settings.QUOTA_REDIS_FAILURE == "open":
            return None
        raise UpstreamUnavailable("rate-limit store unavailable", retry_after=1) from exc
    if not decision.admitted:
        slot = slots[decision.refused]
        wait = 1 if slot.mode == "lease" else max(1, math.ceil(60 - now % 60))
        raise UpstreamBusy(
            f"upstream '{config.name}' is at its limit of {slot.limit} {kinds[decision.refused]}; retry in {wait}s.",
            retry_after=wait,
        )
    return Hold(config.name, slots, member, backend, tokens)


async def release(hold: Hold | None, tokens_used: int, now: float | None = None) -> None:
    """Free the call's lease and count the tokens it really used (failed calls: 0)."""
    if hold is None or hold.released:
        return
    hold.released = True
    ops: list[Adjust | Release] = []
    for slot in hold.slots:
        if slot.mode == "lease":
            ops.append(Release(slot.key, hold.member))
        elif ":tpm:" in slot.key and tokens_used != hold.tokens:
            ops.append(Adjust(slot.key, tokens_used - hold.tokens, slot.ttl))
    try:
        await hold.backend.settle(ops, now=time.time() if now is None else now)
    except StoreUnavailable:
        pass  # the lease expires by itself after QUOTA_LEASE_SECONDS
