"""Which limits apply to a request made with a given key: policy only, no counting.

Two scopes can apply at once and both are enforced, each with counters of its own:
- the user's scope: the user's own Limits row, or the default row when the user has none
  (a user's row replaces the default as a whole);
- the key's scope: the key's own Limits row, which narrows its user's.

The three candidate rows are read with one query and kept LIMITS_CACHE_SECONDS (default 2 s)
per process, so the request path usually does no database work and an admin edit (or
`set_limits` in another process) applies everywhere within that time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Literal

from cachetools import TTLCache
from django.conf import settings
from django.db.models import Q

from accounts.models import Limits
from gateway_site.singleflight import SingleFlight

_VALUE_FIELDS = ("user_id", "api_key_id", "is_default", *Limits.LIMIT_FIELDS)


@dataclass(frozen=True)
class LimitSet:
    """One row's limits; None means no limit of that kind."""

    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    daily_tokens: int | None = None
    monthly_tokens: int | None = None
    budget_usd: Decimal | None = None

    def any(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))


@dataclass(frozen=True)
class Scope:
    """Who a set of counters belongs to: ("user", user id) or ("key", key id)."""

    kind: Literal["user", "key"]
    id: int
    user_id: int  # the key's owner for key scopes (keeps a request's counters together)
    label: str  # for messages: "user alice", "key gw-1a2b3c4d"
    limits: LimitSet


@dataclass(frozen=True)
class EffectiveLimits:
    scopes: tuple[Scope, ...]  # only scopes with at least one limit; user scope first

    @property
    def unlimited(self) -> bool:
        return not self.scopes


NO_LIMITS = EffectiveLimits(())

_cache: TTLCache = TTLCache(maxsize=10_000, ttl=getattr(settings, "LIMITS_CACHE_SECONDS", 2.0), timer=time.monotonic)
_MISSING = object()
_flight = SingleFlight()  # concurrent misses for one user and key run one query


def clear_cache() -> None:
    _cache.clear()


def _query(user_id: int, key_id: int):
    wanted = Q(user_id=user_id) | Q(api_key_id=key_id) | Q(is_default=True)
    return Limits.objects.filter(wanted).values(*_VALUE_FIELDS)


def resolve(rows: list[dict], *, user_id: int, key_id: int, username: str, prefix: str) -> EffectiveLimits:
    """Pick the applicable rows (as `values()` dicts) for this user and key."""
    own = next((r for r in rows if r["user_id"] == user_id), None)
    default = next((r for r in rows if r["is_default"]), None)
    key = next((r for r in rows if r["api_key_id"] == key_id), None)
    scopes = []
    user_row = own or default
    if user_row is not None:
        scopes.append(Scope("user", user_id, user_id, f"user {username}", _limit_set(user_row)))
    if key is not None:
        scopes.append(Scope("key", key_id, user_id, f"key {prefix}", _limit_set(key)))
    return EffectiveLimits(tuple(s for s in scopes if s.limits.any()))


def _limit_set(row: dict) -> LimitSet:
    return LimitSet(**{name: row[name] for name in Limits.LIMIT_FIELDS})


async def effective_limits(identity) -> EffectiveLimits:
    """Limits for a request made with `identity` (accounts.authentication.KeyIdentity)."""
    cache_key = (identity.user_id, identity.key_id)
    found = _cache.get(cache_key, _MISSING)
    if found is _MISSING:
        found = _cache[cache_key] = await _flight.run(cache_key, lambda: _load(identity))
    return found


async def _load(identity) -> EffectiveLimits:
    rows = [row async for row in _query(identity.user_id, identity.key_id)]
    return resolve(
        rows, user_id=identity.user_id, key_id=identity.key_id, username=identity.username, prefix=identity.prefix
    )


def effective_limits_sync(
    *, user_id: int, key_id: int | None = None, username: str = "", prefix: str = ""
) -> EffectiveLimits:
    """The same answer for sync code (admin, member page); not cached. key_id None: the user's only."""
    rows = list(_query(user_id, key_id if key_id is not None else -1))
    return resolve(rows, user_id=user_id, key_id=key_id if key_id is not None else -1, username=username, prefix=prefix)
