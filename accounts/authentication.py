"""Resolve an API key secret to its owner on the async request path, with a short cache.

Deliberately not a DRF authentication class: adrf runs those through Django's single
thread-sensitive worker, which caps throughput (libraries.md finding 2). A hit costs a dict
lookup; a miss costs one indexed query (the key's IP allow-list comes with the row, parsed once
per entry). Entries live `KEY_CACHE_SECONDS` (default 1 s), so a key revoked in any process
stops working within that time everywhere.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from datetime import datetime

from cachetools import TTLCache
from django.conf import settings
from django.utils import timezone

from accounts.keys import hash_secret, looks_like_key
from accounts.models import ApiKey
from gateway_site.client_ip import in_networks, parse_ip
from gateway_site.singleflight import SingleFlight


@dataclass(frozen=True)
class KeyIdentity:
    """What the request path needs to know about a key (a snapshot, safe to cache)."""

    key_id: int
    user_id: int
    username: str
    prefix: str
    allowed_models: tuple[str, ...]
    expires_at: datetime | None
    revoked: bool
    allowed_networks: tuple = ()  # ip_network objects, parsed once per cache entry; empty: any address

    def is_usable(self, now: datetime) -> bool:
        return not self.revoked and (self.expires_at is None or self.expires_at > now)

    def allows(self, model: str) -> bool:
        return not self.allowed_models or model in self.allowed_models

    def allows_address(self, client_ip: str) -> bool:
        """The client address (gateway_site.client_ip) may use this key. With an allow-list, an
        unknown address (a unix socket) is refused."""
        return not self.allowed_networks or in_networks(parse_ip(client_ip), self.allowed_networks)


class AuthFailure(Exception):
    """Missing, unknown, revoked or expired key. The message never contains the key."""


_cache: TTLCache = TTLCache(maxsize=10_000, ttl=settings.KEY_CACHE_SECONDS, timer=time.monotonic)
_MISSING = object()
_flight = SingleFlight()  # concurrent misses for one key run one query


def clear_cache() -> None:
    _cache.clear()


async def _load(secret_hash: str) -> KeyIdentity | None:
    row = await ApiKey.objects.select_related("user").filter(secret_hash=secret_hash).afirst()
    if row is None:
        return None
    return KeyIdentity(
        key_id=row.pk,
        user_id=row.user_id,
        username=row.user.get_username(),
        prefix=row.prefix,
        allowed_models=tuple(row.allowed_models or ()),
        expires_at=row.expires_at,
        revoked=row.revoked_at is not None or not row.user.is_active,
        allowed_networks=tuple(ipaddress.ip_network(n, strict=False) for n in row.allowed_ips or ()),
    )


async def authenticate_secret(secret: str) -> KeyIdentity:
    if not secret:
        raise AuthFailure("Missing API key. Send it as 'Authorization: Bearer <key>'.")
    if not looks_like_key(secret):
        raise AuthFailure("Incorrect API key provided.")
    digest = hash_secret(secret)
    identity = _cache.get(digest, _MISSING)
    if identity is _MISSING:
        identity = _cache[digest] = await _flight.run(digest, lambda: _load(digest))
    if identity is None:
        raise AuthFailure("Incorrect API key provided.")
    if identity.revoked:
        raise AuthFailure("This API key has been revoked.")
    if not identity.is_usable(timezone.now()):
        raise AuthFailure("This API key has expired.")
    return identity


def bearer_secret(authorization: str) -> str:
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""
