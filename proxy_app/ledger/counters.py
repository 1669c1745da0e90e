"""Quota counters: reserve several limits at once, all or nothing, and settle them afterwards.

One small surface, two backends with the same semantics:
- `MemoryCounters` (default): dicts in this process; right for a single gateway process.
  The event loop is single-threaded and the methods never await inside, so no locks.
- `RedisCounters` (when REDIS_URL is set): correct across processes. Each `reserve` is ONE
  Lua script call (one round trip) and each `settle` another. Exceptions: a cold day/month
  counter costs one more call after its seed query, and each process's first call per script
  also loads it (EVALSHA → NOSCRIPT → SCRIPT LOAD, handled by redis-py).

The caller (proxy_app.quota) decides what to count; here a counter is an opaque key and a
`Slot` says how to treat it:
- "count":  a window counter (RPM/TPM), created at 0 on first use with a TTL;
- "seeded": a period counter (day/month tokens, month micro-USD) that must exist before use.
  When it does not (a new period, a restart, a flushed Redis) `reserve` reserves nothing and
  answers `missing`; the caller computes the value from the usage table and calls again with
  `seeds`, which are written only if the key is still missing (SET NX: one seed per key and
  period, whichever process gets there first);
- "lease":  requests in flight, a sorted set of request leases scored by their expiry, pruned
  on every admission, so a crashed process's leases free themselves.

`reserve` checks `used + amount <= limit` for every slot and only then adds every amount, so a
refused request reserves nothing. A slot with a `rate` grows with the request's output: its amount
is `amount + ceil(output * rate / 1e6)`, and `reserve(want=, need=)` grants the largest output in
[need, want] that fits every such slot (one number for all of them, decided inside the same atomic
step), or refuses when even `need` does not fit; `Decision.output` is what was granted.
`settle` applies `Adjust`/`Release` operations (adjustments
never take a counter below 0 and, unless `create`, never bring a missing one back).
Clocks: `now` is passed in (UTC epoch seconds, injectable); key TTLs are only for cleanup
(Redis counts them in real seconds, the memory backend against `now`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from django.conf import settings

from proxy_app.ledger.counter_scripts import RESERVE_LUA, SETTLE_LUA

log = logging.getLogger(__name__)

Mode = Literal["count", "seeded", "lease"]


@dataclass(frozen=True)
class Slot:
    key: str
    mode: Mode
    limit: int
    amount: int  # reserved by this request (1 for requests and leases); with a rate, the fixed part
    ttl: int  # seconds; cleanup only
    rate: int = 0  # units per million output tokens on top of `amount` (0: a fixed amount)

    def at(self, output: int) -> int:
        """This slot's amount for `output` granted tokens (exact integers, as the Lua script)."""
        return self.amount + (-(-output * self.rate // MILLION) if self.rate else 0)


MILLION = 1_000_000


def resolved(slots: Sequence[Slot], output: int) -> tuple[Slot, ...]:
    """The slots with the amounts actually reserved for `output` granted tokens (rate 0)."""
    return tuple(replace(s, amount=s.at(output), rate=0) if s.rate else s for s in slots)


def grant(slots: Sequence[Slot], used: Sequence[int], want: int, need: int) -> tuple[int, int | None]:
    """(output granted, None) or (0, index of the slot that refuses): the largest output in
    [need, want] for which every slot fits its limit. Mirrored step for step in RESERVE_LUA."""
    output, tight = want, None
    for i, slot in enumerate(slots):
        if not slot.rate:
            continue
        room = slot.limit - used[i] - slot.amount
        if room < 0:
            return 0, i
        if slot.at(output) - slot.amount > room:
            output, tight = room * MILLION // slot.rate, i
    if output < need:
        return 0, tight
    for i, slot in enumerate(slots):
        if used[i] + slot.at(output) > slot.limit:
            return 0, i
    return output, None


@dataclass(frozen=True)
class Decision:
    admitted: bool
    used: tuple[int, ...] = ()  # per slot, before this request's amounts (when admitted)
    refused: int | None = None  # index of the first slot that would go over its limit
    refused_used: int = 0  # that slot's value when it refused
    output: int = 0  # output tokens granted (see Slot.rate), when admitted
    missing: tuple[int, ...] = ()  # seeded slots to seed first (nothing was reserved)


@dataclass(frozen=True)
class Adjust:
    key: str
    delta: int
    ttl: int
    create: bool = False  # False: skip when the key is missing (seeded counters are seeded, not made up)


@dataclass(frozen=True)
class Release:
    key: str
    member: str


class StoreUnavailable(Exception):
    """The shared counter store did not answer (quota.py applies QUOTA_REDIS_FAILURE)."""


class Counters(Protocol):
    async def reserve(
        self,
        slots: Sequence[Slot],
        *,
        member: str,
        now: float,
        lease_until: float,
        seeds: Mapping[int, int],
        want: int = 0,
        need: int = 0,
    ) -> Decision: ...

    async def settle(self, ops: Sequence[Adjust | Release], *, now: float) -> None: ...

    async def read(self, slots: Sequence[Slot], *, now: float) -> list[int | None]: ...

    async def clear(self) -> None: ...


def undo_ops(slots: Sequence[Slot], member: str) -> list[Adjust | Release]:
    """Operations that give back everything a successful `reserve` took."""
    return [Release(s.key, member) if s.mode == "lease" else Adjust(s.key, -s.amount, s.ttl) for s in slots]


# --- in process ---------------------------------------------------------------------------------


class MemoryCounters:
    """This process's counters. Mirrors the Redis scripts below step for step."""

    SWEEP_EVERY = 60.0  # seconds of `now` between sweeps of expired keys

    def __init__(self) -> None:
        self._values: dict[str, list] = {}  # key -> [value, expires_at]
        self._leases: dict[str, list] = {}  # key -> [{member: expires_at}, expires_at]
        self._next_sweep = -math.inf

    async def reserve(
        self,
        slots: Sequence[Slot],
        *,
        member: str,
        now: float,
        lease_until: float,
        seeds: Mapping[int, int],
        want: int = 0,
        need: int = 0,
    ) -> Decision:
        self._sweep(now)
        missing = []
        for i, slot in enumerate(slots):
            if slot.mode == "seeded":
                if seeds.get(i, -1) >= 0:
                    if self._value(slot.key, now) is None:  # SET NX
                        self._values[slot.key] = [seeds[i], now + slot.ttl]
                elif self._value(slot.key, now) is None:
                    missing.append(i)
        if missing:
            return Decision(False, missing=tuple(missing))
        used = [self._current(slot, now, prune=True) for slot in slots]
        output, refused = grant(slots, used, want, need)
        if refused is not None:
            return Decision(False, refused=refused, refused_used=used[refused])
        for slot in resolved(slots, output):
            if slot.mode == "lease":
                entry = self._leases.setdefault(slot.key, [{}, 0.0])
                entry[0][member] = lease_until
                entry[1] = now + slot.ttl
            else:
                if slot.mode == "count":
                    self._values.setdefault(slot.key, [0, now + slot.ttl])
                self._values[slot.key][0] += slot.amount
        return Decision(True, used=tuple(used), output=output)

    async def settle(self, ops: Sequence[Adjust | Release], *, now: float) -> None:
        for op in ops:
            if isinstance(op, Release):
                entry = self._leases.get(op.key)
                if entry is not None:
                    entry[0].pop(op.member, None)
                continue
            if op.create and self._value(op.key, now) is None:
                self._values[op.key] = [0, now + op.ttl]
            entry = self._values.get(op.key) if self._value(op.key, now) is not None else None
            if entry is not None:
                entry[0] = max(entry[0] + op.delta, 0)

    async def read(self, slots: Sequence[Slot], *, now: float) -> list[int | None]:
        return [self._current(s, now, prune=False) if s.mode != "seeded" else self._value(s.key, now) for s in slots]

    async def clear(self) -> None:
        self._values.clear()
        self._leases.clear()

    def _value(self, key: str, now: float) -> int | None:
        entry = self._values.get(key)
        if entry is None or entry[1] <= now:
            self._values.pop(key, None)
            return None
        return entry[0]

    def _current(self, slot: Slot, now: float, *, prune: bool) -> int:
        if slot.mode != "lease":
            return self._value(slot.key, now) or 0
        entry = self._leases.get(slot.key)
        if entry is None:
            return 0
        if prune:
            entry[0] = {m: until for m, until in entry[0].items() if until > now}
        return sum(1 for until in entry[0].values() if until > now)

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.SWEEP_EVERY
        for key in [k for k, (_, expires) in self._values.items() if expires <= now]:
            del self._values[key]
        for key in [k for k, (members, expires) in self._leases.items() if expires <= now or not members]:
            del self._leases[key]


# --- Redis --------------------------------------------------------------------------------------


class RedisCounters:
    """Counters in Redis, shared by every gateway process.

    A redis.asyncio client belongs to the event loop that created it (libraries.md row 3), so
    one is made lazily per running loop. Socket timeouts are small and explicit (redis-py 8
    defaults to 5 s): an unanswering store must turn into QUOTA_REDIS_FAILURE quickly. Only
    connection errors are retried, once; a timeout is ambiguous (the script may have run).
    Every key lives under `prefix:`; keys carry a `{u<user id>}` hash tag, so one request's
    keys share a cluster slot.
    """

    def __init__(self, url: str, *, prefix: str = "gwq", timeout: float = 0.5, max_connections: int = 50) -> None:
        self.url, self.prefix, self.timeout, self.max_connections = url, prefix, timeout, max_connections
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _client(self):
        loop = asyncio.get_running_loop()
        found = self._clients.get(loop)
        if found is None:
            from redis.asyncio import BlockingConnectionPool, Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
            from redis.exceptions import ConnectionError as RedisConnectionError

            # Blocking pool: a burst of requests waits (briefly) for a connection instead of
            # failing with "Too many connections" (the default pool's behaviour past its cap).
            pool = BlockingConnectionPool.from_url(
                self.url,
                max_connections=self.max_connections,
                timeout=max(self.timeout * 4, 1.0),
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
                decode_responses=True,
            )
            client = Redis.from_pool(pool)
            scripts = client.register_script(RESERVE_LUA), client.register_script(SETTLE_LUA)
            found = self._clients[loop] = (client, *scripts)
        return found

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    def redis(self):
        """This loop's redis.asyncio client, for other shared state under the same prefix
        (proxy_app.call.health: upstream cool-downs)."""
        return self._client()[0]

    async def reserve(
        self,
        slots: Sequence[Slot],
        *,
        member: str,
        now: float,
        lease_until: float,
        seeds: Mapping[int, int],
        want: int = 0,
        need: int = 0,
    ) -> Decision:
        _, script, _ = self._client()
        args: list = [repr(now), member, repr(lease_until), want, need]
        for i, s in enumerate(slots):
            args += [s.mode, s.limit, s.amount, max(s.ttl, 1), seeds.get(i, -1), s.rate]
        call = _background(self._call(script, [self._key(s.key) for s in slots], args))
        try:
            # Shielded: if the request is cancelled meanwhile, a reservation that did happen is
            # given back instead of staying counted until its window ends.
            reply = await asyncio.shield(call)
        except asyncio.CancelledError:
            call.add_done_callback(lambda done: self._undo_if_admitted(done, slots, member, now))
            raise
        return _decision(reply)

    def _undo_if_admitted(self, done: asyncio.Future, slots: Sequence[Slot], member: str, now: float) -> None:
        if not done.cancelled() and done.exception() is None:
            decision = _decision(done.result())
            if decision.admitted:
                _background(self._settle_logged(undo_ops(resolved(slots, decision.output), member), now))

    async def _settle_logged(self, ops, now: float) -> None:
        try:
            await self.settle(ops, now=now)
        except StoreUnavailable as exc:
            log.warning("could not give back a cancelled reservation: %s", exc)

    async def settle(self, ops: Sequence[Adjust | Release], *, now: float) -> None:
        if not ops:
            return
        _, _, script = self._client()
        args: list = []
        for op in ops:
            if isinstance(op, Release):
                args += ["release", op.member, 1]
            else:
                args += ["create" if op.create else "adjust", op.delta, max(op.ttl, 1)]
        # Shielded so a cancellation cannot cut the call in half: the script runs to its end.
        await asyncio.shield(_background(self._call(script, [self._key(op.key) for op in ops], args)))

    async def read(self, slots: Sequence[Slot], *, now: float) -> list[int | None]:
        client, _, _ = self._client()
        try:
            async with client.pipeline(transaction=False) as pipe:
                for s in slots:
                    if s.mode == "lease":
                        pipe.zcount(self._key(s.key), f"({now!r}", "+inf")
                    else:
                        pipe.get(self._key(s.key))
                values = await pipe.execute()
        except Exception as exc:  # redis errors, OSError, timeouts: all mean "store unavailable"
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        return [None if v is None and s.mode == "seeded" else int(v or 0) for s, v in zip(slots, values, strict=True)]

    async def clear(self) -> None:
        client, _, _ = self._client()
        keys = [key async for key in client.scan_iter(match=f"{self.prefix}:*", count=500)]
        if keys:
            await client.delete(*keys)

    async def aclose(self) -> None:
        """Close this loop's client (tests, shutdown)."""
        found = self._clients.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found[0].aclose()

    @staticmethod
    async def _call(script, keys: list[str], args: list):
        try:
            return await script(keys=keys, args=args)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # redis errors, OSError, timeouts: all mean "store unavailable"
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc


_tasks: set[asyncio.Task] = set()


def _background(coro) -> asyncio.Task:
    """A task kept referenced until done (the loop itself only keeps weak references)."""
    task = asyncio.ensure_future(coro)
    _tasks.add(task)
    task.add_done_callback(_forget)
    return task


async def settled(timeout: float = 5.0) -> None:
    """Wait until every counter call still running in the background (shielded reservations,
    give-backs of cancelled ones) has finished: at shutdown, and for tests that check the store."""
    deadline = asyncio.get_running_loop().time() + timeout
    while _tasks:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            return
        await asyncio.wait(set(_tasks), timeout=left)
        await asyncio.sleep(0)  # done-callbacks run now and may start a give-back


def _forget(task: asyncio.Task) -> None:
    _tasks.discard(task)
    if not task.cancelled():
        task.exception()  # marks it retrieved: whoever awaited it has seen it; nobody else will


def _decision(reply: list) -> Decision:
    if reply[0] == "ok":
        return Decision(True, used=tuple(int(v) for v in reply[1]), output=int(reply[2]))
    if reply[0] == "refused":
        return Decision(False, refused=int(reply[1]), refused_used=int(reply[2]))
    return Decision(False, missing=tuple(int(i) for i in reply[1]))


# --- which backend ------------------------------------------------------------------------------

_backend: Counters | None = None


def get_counters() -> Counters:
    """The process's counter backend: Redis when REDIS_URL is set, else in-process."""
    global _backend
    if _backend is None:
        url = getattr(settings, "REDIS_URL", "")
        if url:
            _backend = RedisCounters(
                url,
                prefix=getattr(settings, "QUOTA_REDIS_PREFIX", "gwq"),
                timeout=getattr(settings, "QUOTA_REDIS_TIMEOUT", 0.5),
                max_connections=getattr(settings, "QUOTA_REDIS_MAX_CONNECTIONS", 50),
            )
        else:
            _backend = MemoryCounters()
    return _backend


def set_counters(backend: Counters | None) -> None:
    """Use `backend` from now on (tests); None goes back to choosing from settings."""
    global _backend
    _backend = backend
