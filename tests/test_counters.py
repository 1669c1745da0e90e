"""The counter backends (proxy_app/ledger/counters.py), each test on both: in-process and real Redis.

Redis tests use TEST_REDIS_URL (default redis://127.0.0.1:6379/15), a key prefix of their own
that is deleted after each test, and skip with the reason printed when no Redis answers.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid

import pytest

from proxy_app.ledger import counters
from proxy_app.ledger.counters import Adjust, MemoryCounters, RedisCounters, Release, Slot, StoreUnavailable

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
NOW = 1_773_489_630.0  # 2026-03-14 12:00:30 UTC


def redis_unavailable_reason(url: str = TEST_REDIS_URL) -> str | None:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        client.ping()
        client.close()
    except Exception as exc:  # any failure means "no Redis to test against"
        return f"no Redis answers at {url} ({type(exc).__name__}: {exc}); set TEST_REDIS_URL"
    return None


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=["memory", "redis"])
async def backend(request):
    """A fresh counter backend, installed as the process's backend for the test."""
    if request.param == "memory":
        made = MemoryCounters()
    else:
        reason = redis_unavailable_reason()
        if reason:
            print(f"SKIP: {reason}")
            pytest.skip(reason)
        made = RedisCounters(TEST_REDIS_URL, prefix=f"gwtest-{uuid.uuid4().hex[:12]}")
    counters.set_counters(made)
    yield made
    await made.clear()
    if isinstance(made, RedisCounters):
        await made.aclose()
    counters.set_counters(None)


def slot(key: str, mode: str = "count", limit: int = 10, amount: int = 1, ttl: int = 120) -> Slot:
    return Slot(key, mode, limit, amount, ttl)


async def reserve(backend, slots, *, member="r1", now=NOW, lease_until=NOW + 600, seeds=None):
    return await backend.reserve(slots, member=member, now=now, lease_until=lease_until, seeds=seeds or {})


async def test_reserves_up_to_the_limit_then_refuses_without_reserving(backend):
    slots = [slot("a", limit=3), slot("b", limit=100, amount=10)]
    for expected_used in range(3):
        decision = await reserve(backend, slots)
        assert decision.admitted and decision.used == (expected_used, expected_used * 10)
    refused = await reserve(backend, slots)
    assert (refused.admitted, refused.refused, refused.refused_used) == (False, 0, 3)
    # All or nothing: "b" was not touched by the refused request.
    assert await backend.read(slots, now=NOW) == [3, 30]


async def test_refusal_names_the_first_slot_over_its_limit(backend):
    slots = [slot("a", limit=100, amount=60), slot("b", limit=50, amount=60)]
    decision = await reserve(backend, slots)
    assert (decision.admitted, decision.refused, decision.refused_used) == (False, 1, 0)
    assert await backend.read(slots, now=NOW) == [0, 0]


async def test_seeded_counters_must_be_seeded_before_use_and_only_once(backend):
    slots = [slot("rpm"), slot("day", mode="seeded", limit=1000, amount=100, ttl=3600)]
    cold = await reserve(backend, slots)
    assert cold.missing == (1,) and not cold.admitted
    assert await backend.read(slots, now=NOW) == [0, None]  # nothing reserved, not even the rpm
    seeded = await reserve(backend, slots, seeds={1: 850})
    assert seeded.admitted and seeded.used == (0, 850)
    # A second seed (another process that also saw the key missing) does not overwrite it.
    again = await reserve(backend, slots, seeds={1: 0})
    assert (again.admitted, again.refused, again.refused_used) == (False, 1, 950)


async def test_leases_count_in_flight_requests_and_expire(backend):
    lease = [slot("inflight", mode="lease", limit=2, ttl=900)]
    assert (await reserve(backend, lease, member="r1")).admitted
    assert (await reserve(backend, lease, member="r2", lease_until=NOW + 5)).admitted
    refused = await reserve(backend, lease, member="r3")
    assert (refused.admitted, refused.refused_used) == (False, 2)
    await backend.settle([Release("inflight", "r1")], now=NOW)
    assert (await reserve(backend, lease, member="r3")).admitted
    # r2's lease runs out (a crashed process never settles): its slot frees itself.
    later = await reserve(backend, lease, member="r4", now=NOW + 6, lease_until=NOW + 600)
    assert later.admitted and later.used == (1,)


async def test_settle_adjusts_and_never_resurrects_or_goes_negative(backend):
    slots = [slot("tpm", limit=1000, amount=300), slot("day", mode="seeded", limit=5000, amount=300, ttl=3600)]
    await reserve(backend, slots, seeds={1: 0})
    await backend.settle([Adjust("tpm", -200, 120), Adjust("day", +50, 3600)], now=NOW)
    assert await backend.read(slots, now=NOW) == [100, 350]
    await backend.settle([Adjust("tpm", -500, 120)], now=NOW)
    assert await backend.read(slots, now=NOW) == [0, 350]  # clamped at 0
    # A missing seeded counter is left for seeding; a missing window counter may be created.
    cold = [slot("tpm2"), slot("day2", mode="seeded")]
    await backend.settle([Adjust("day2", 40, 3600), Adjust("tpm2", 40, 120, create=True)], now=NOW)
    assert await backend.read(cold, now=NOW) == [40, None]


async def test_cancelled_reservation_is_given_back(backend):
    slots = [slot("a", limit=5), slot("inflight", mode="lease", limit=5, ttl=900)]
    task = asyncio.create_task(reserve(backend, slots, member="gone"))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    # Memory never awaits inside, so the task finished before the cancel; Redis was cut off
    # while its script ran, and must give everything back in the background.
    assert task.cancelled() == isinstance(backend, RedisCounters)
    expected = [0, 0] if task.cancelled() else [1, 1]
    await counters.settled()
    assert await backend.read(slots, now=NOW) == expected


async def test_clear_removes_only_this_backends_keys(backend):
    await reserve(backend, [slot("a")])
    await backend.clear()
    assert await backend.read([slot("a")], now=NOW) == [0]


async def test_unreachable_redis_raises_store_unavailable_quickly():
    store = RedisCounters(f"redis://127.0.0.1:{closed_port()}/0", prefix="gwtest-down", timeout=0.5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(StoreUnavailable):
        await reserve(store, [slot("a")])
    with pytest.raises(StoreUnavailable):
        await store.settle([Adjust("a", 1, 60)], now=NOW)
    assert loop.time() - started < 3
    await store.aclose()


async def test_redis_admission_and_settlement_are_one_round_trip_each():
    reason = redis_unavailable_reason()
    if reason:
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    store = RedisCounters(TEST_REDIS_URL, prefix=f"gwtest-{uuid.uuid4().hex[:12]}")
    slots = [
        slot("rpm"),
        slot("tpm", amount=5),
        slot("day", mode="seeded", limit=100, amount=5, ttl=60),
        slot("inflight", mode="lease", ttl=60),
    ]
    await reserve(store, slots, seeds={2: 0})  # warm up: scripts loaded, keys seeded
    await store.settle([Release("inflight", "r1")], now=NOW)
    client = store._client()[0]
    calls = []
    original = client.execute_command

    async def counting(*args, **kwargs):
        calls.append(args[0])
        return await original(*args, **kwargs)

    client.execute_command = counting
    try:
        assert (await reserve(store, slots, member="r2")).admitted
        await store.settle([Adjust("tpm", -1, 120), Adjust("day", -1, 60), Release("inflight", "r2")], now=NOW)
    finally:
        client.execute_command = original
        await store.clear()
        await store.aclose()
    assert calls == ["EVALSHA", "EVALSHA"]


def test_get_counters_follows_settings(settings):
    counters.set_counters(None)
    settings.REDIS_URL = ""
    assert isinstance(counters.get_counters(), MemoryCounters)
    counters.set_counters(None)
    settings.REDIS_URL = "redis://127.0.0.1:6379/15"
    settings.QUOTA_REDIS_PREFIX = "gwtest-settings"
    chosen = counters.get_counters()
    assert isinstance(chosen, RedisCounters) and chosen.prefix == "gwtest-settings"
    counters.set_counters(None)
