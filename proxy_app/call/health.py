"""Upstream health shared by every gateway process: cool-downs, failures in a row, last error,
attempts per minute, and which upstream made a Gemini thought signature (conversation affinity).

The backend follows the counter backend (proxy_app.ledger.counters.get_counters()): Redis (same
prefix) when the counters live there, so every process skips a cooling member at once; else this
process's memory. Health is advisory: a store that does not answer is logged and the pool is used
as if everything were healthy (limits, not health, fail closed).

Keys (Redis): `<prefix>:pool:<upstream>:cool` (cool-down end, epoch seconds, expiring with it),
`:strikes` (failures in a row), `:last` (JSON of the last error), `:m<minute>` (hash n/e: attempts
and failed attempts that minute, kept two hours), `<prefix>:sig:<digest>` (upstream name).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import orjson
from django.conf import settings

from proxy_app.ledger.counters import RedisCounters, get_counters

log = logging.getLogger(__name__)
HOUR_MINUTES = 60
BUCKET_TTL = 2 * 3600
MEMORY_ORIGINS = 50_000  # signature digests kept in memory (oldest dropped first)


@dataclass(frozen=True)
class Snapshot:
    """What the pool needs before choosing: members cooling now, failures in a row, signature origin."""

    cooling: dict[str, float] = field(default_factory=dict)  # name -> cool-down end (epoch seconds)
    strikes: dict[str, int] = field(default_factory=dict)
    origin: str | None = None


@dataclass(frozen=True)
class UpstreamHealth:
    """One upstream's health for the admin."""

    name: str
    cool_until: float | None
    last_error: dict | None  # {"at", "status", "code", "message"}
    requests: int  # attempts over the last hour
    errors: int

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


def digest(signature: str) -> str:
    """A short key for a thought signature. Signatures are base64 bytes, and clients re-encode them
    (google-genai sends them back in the URL-safe alphabet): the key is of the bytes when they decode."""
    text = signature.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError:
        raw = signature.encode()
    return hashlib.blake2b(raw, digest_size=12).hexdigest()


def cooldown_seconds(strikes: int, hint: int | None) -> float:
    """The upstream's own wait when it named one, else exponential in failures in a row."""
    top = settings.POOL_COOLDOWN_MAX_SECONDS
    if hint is not None:
        return float(min(max(hint, 1), 24 * 3600))
    return min(settings.POOL_COOLDOWN_BASE_SECONDS * 2 ** max(strikes - 1, 0), top)


class MemoryHealth:
    def __init__(self) -> None:
        self.cool: dict[str, float] = {}
        self.strikes: dict[str, tuple[int, float]] = {}  # name -> (count, expires)
        self.last: dict[str, dict] = {}
        self.minutes: dict[str, dict[int, list[int]]] = {}
        self.origins: OrderedDict[str, tuple[str, float]] = OrderedDict()

    async def snapshot(self, names: list[str], sig: str | None, now: float) -> Snapshot:
        cooling = {n: self.cool[n] for n in names if self.cool.get(n, 0) > now}
        strikes = {n: s[0] for n in names if (s := self.strikes.get(n)) and s[1] > now}
        found = self.origins.get(sig) if sig else None
        return Snapshot(cooling, strikes, found[0] if found and found[1] > now else None)

    async def failed(self, name: str, hint: int | None, last: dict, now: float) -> float:
        count = self.strikes.get(name, (0, 0.0))
        strikes = (count[0] if count[1] > now else 0) + 1
        self.strikes[name] = (strikes, now + 4 * settings.POOL_COOLDOWN_MAX_SECONDS)
        until = now + cooldown_seconds(strikes, hint)
        self.cool[name], self.last[name] = until, last
        return until

    async def recovered(self, name: str) -> None:
        self.strikes.pop(name, None)

    def count(self, name: str, failed: bool, now: float) -> None:
        minutes = self.minutes.setdefault(name, {})
        bucket = minutes.setdefault(int(now // 60), [0, 0])
        bucket[0] += 1
        bucket[1] += int(failed)
        if len(minutes) > 2 * HOUR_MINUTES:
            for old in sorted(minutes)[: -2 * HOUR_MINUTES]:
                del minutes[old]

    async def remember(self, sig: str, name: str, now: float) -> None:
        self.origins[sig] = (name, now + settings.POOL_AFFINITY_SECONDS)
        self.origins.move_to_end(sig)
        while len(self.origins) > MEMORY_ORIGINS:
            self.origins.popitem(last=False)

    async def report(self, names: list[str], now: float) -> list[UpstreamHealth]:
        first = int(now // 60) - HOUR_MINUTES + 1
        out = []
        for name in names:
            buckets = [v for m, v in self.minutes.get(name, {}).items() if m >= first]
            cool = self.cool.get(name)
            out.append(
                UpstreamHealth(
                    name,
                    cool if cool and cool > now else None,
                    self.last.get(name),
                    sum(b[0] for b in buckets),
                    sum(b[1] for b in buckets),
                )
            )
        return out


class RedisHealth:
    def __init__(self, counters: RedisCounters) -> None:
        self.counters = counters
        self.pending: dict[tuple[str, int], list[int]] = {}  # attempt counts not yet sent (one flush a second)
        self.flushing: asyncio.TimerHandle | None = None

    def _key(self, name: str, what: str) -> str:
        return f"{self.counters.prefix}:pool:{name}:{what}"

    async def snapshot(self, names: list[str], sig: str | None, now: float) -> Snapshot:
        keys = [self._key(n, "cool") for n in names] + [self._key(n, "strikes") for n in names]
        if sig:
            keys.append(f"{self.counters.prefix}:sig:{sig}")
        values = await self.counters.redis().mget(keys)
        cool, strikes = values[: len(names)], values[len(names) : 2 * len(names)]
        cooling = {n: float(v) for n, v in zip(names, cool, strict=True) if v and float(v) > now}
        counts = {n: int(v) for n, v in zip(names, strikes, strict=True) if v}
        return Snapshot(cooling, counts, values[-1] if sig else None)

    async def failed(self, name: str, hint: int | None, last: dict, now: float) -> float:
        client = self.counters.redis()
        async with client.pipeline(transaction=False) as pipe:
            pipe.incr(self._key(name, "strikes"))
            pipe.expire(self._key(name, "strikes"), int(4 * settings.POOL_COOLDOWN_MAX_SECONDS))
            strikes, _ = await pipe.execute()
        seconds = cooldown_seconds(int(strikes), hint)
        until = now + seconds
        async with client.pipeline(transaction=False) as pipe:
            pipe.set(self._key(name, "cool"), repr(until), px=max(int(seconds * 1000), 1))
            pipe.set(self._key(name, "last"), orjson.dumps(last), ex=7 * 86400)
            await pipe.execute()
        return until

    async def recovered(self, name: str) -> None:
        await self.counters.redis().delete(self._key(name, "strikes"))

    def count(self, name: str, failed: bool, now: float) -> None:
        bucket = self.pending.setdefault((name, int(now // 60)), [0, 0])
        bucket[0] += 1
        bucket[1] += int(failed)
        if self.flushing is None:
            self.flushing = asyncio.get_running_loop().call_later(1.0, self._flush_soon)

    def _flush_soon(self) -> None:
        self.flushing = None
        pending, self.pending = self.pending, {}
        _background(self._flush(pending))

    async def _flush(self, pending: dict[tuple[str, int], list[int]]) -> None:
        async with self.counters.redis().pipeline(transaction=False) as pipe:
            for (name, minute), (attempts, errors) in pending.items():
                key = self._key(name, f"m{minute}")
                pipe.hincrby(key, "n", attempts)
                if errors:
                    pipe.hincrby(key, "e", errors)
                pipe.expire(key, BUCKET_TTL)
            await pipe.execute()

    async def remember(self, sig: str, name: str, now: float) -> None:
        await self.counters.redis().set(f"{self.counters.prefix}:sig:{sig}", name, ex=settings.POOL_AFFINITY_SECONDS)

    async def report(self, names: list[str], now: float) -> list[UpstreamHealth]:
        last_minute = int(now // 60)
        minutes = range(last_minute - HOUR_MINUTES + 1, last_minute + 1)
        async with self.counters.redis().pipeline(transaction=False) as pipe:
            for name in names:
                pipe.get(self._key(name, "cool"))
                pipe.get(self._key(name, "last"))
                for minute in minutes:
                    pipe.hmget(self._key(name, f"m{minute}"), "n", "e")
            values = await pipe.execute()
        out, step = [], 2 + len(minutes)
        for i, name in enumerate(names):
            cool, last, *buckets = values[i * step : (i + 1) * step]
            out.append(
                UpstreamHealth(
                    name,
                    float(cool) if cool and float(cool) > now else None,
                    orjson.loads(last) if last else None,
                    sum(int(n or 0) for n, _ in buckets),
                    sum(int(e or 0) for _, e in buckets),
                )
            )
        return out


# --- which backend, and the calls the pool makes (never raising) --------------------------------------

_memory = MemoryHealth()
_redis: dict[int, RedisHealth] = {}
_last_warning = -math.inf


def store() -> MemoryHealth | RedisHealth:
    counters = get_counters()
    if isinstance(counters, RedisCounters):
        found = _redis.get(id(counters))
        if found is None or found.counters is not counters:
            found = _redis[id(counters)] = RedisHealth(counters)
        return found
    return _memory


def reset() -> None:
    """Forget this process's health (tests)."""
    global _memory
    _memory = MemoryHealth()
    _redis.clear()


def _warn(exc: Exception) -> None:
    global _last_warning
    if time.monotonic() - _last_warning > 10:  # one line per 10 s, not one per request
        _last_warning = time.monotonic()
        log.warning("upstream health store unavailable, pools run as if healthy: %s: %s", type(exc).__name__, exc)


async def snapshot(names: list[str], sig: str | None, now: float) -> Snapshot:
    try:
        return await store().snapshot(names, sig, now)
    except Exception as exc:  # redis errors, OSError, timeouts: health is advisory
        _warn(exc)
        return Snapshot()


async def failed(name: str, hint: int | None, last: dict, now: float) -> float | None:
    try:
        return await store().failed(name, hint, last, now)
    except Exception as exc:
        _warn(exc)
        return None


async def recovered(name: str) -> None:
    try:
        await store().recovered(name)
    except Exception as exc:
        _warn(exc)


def count(name: str, failed: bool, now: float) -> None:
    store().count(name, failed, now)


def remember_soon(sig: str, name: str, now: float) -> None:
    """Note in the background that upstream `name` made thought signature `sig` (a digest)."""
    _background(_remember(sig, name, now))


async def _remember(sig: str, name: str, now: float) -> None:
    try:
        await store().remember(sig, name, now)
    except Exception as exc:
        _warn(exc)


async def report(names: list[str], now: float | None = None) -> list[UpstreamHealth]:
    return await store().report(names, time.time() if now is None else now)


_tasks: set[asyncio.Task] = set()


def _background(coro) -> None:
    task = asyncio.ensure_future(coro)
    _tasks.add(task)
    task.add_done_callback(_done)


def _done(task: asyncio.Task) -> None:
    _tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        _warn(task.exception())


async def settled(timeout: float = 5.0) -> None:
    """Send the attempt counts still waiting and wait for background health writes (tests, shutdown)."""
    store_now = store()
    if isinstance(store_now, RedisHealth) and store_now.flushing is not None:
        store_now.flushing.cancel()
        store_now._flush_soon()
    deadline = time.monotonic() + timeout
    while _tasks and time.monotonic() < deadline:
        await asyncio.wait(set(_tasks), timeout=max(deadline - time.monotonic(), 0.01))
