"""Single flight: a burst of concurrent misses runs one load; waiters leaving never break the others."""

from __future__ import annotations

import asyncio

from gateway_site.singleflight import SingleFlight


def test_concurrent_misses_share_one_load():
    calls = []

    async def load():
        calls.append(1)
        mine = len(calls)
        await asyncio.sleep(0.01)
        return mine

    async def burst():
        flight = SingleFlight()
        first = await asyncio.gather(*(flight.run("k", load) for _ in range(200)))
        again = await flight.run("k", load)  # the round is over: a later miss loads again
        other = await asyncio.gather(flight.run("a", load), flight.run("b", load))
        return first, again, other

    first, again, other = asyncio.run(burst())
    assert first == [1] * 200
    assert again == 2
    assert sorted(other) == [3, 4]  # different keys never share


def test_a_cancelled_waiter_leaves_the_load_to_the_others():
    async def scenario():
        flight = SingleFlight()
        gate = asyncio.Event()

        async def load():
            await gate.wait()
            return "value"

        leaving = asyncio.create_task(flight.run("k", load))
        staying = asyncio.create_task(flight.run("k", load))
        await asyncio.sleep(0)
        leaving.cancel()
        await asyncio.sleep(0)
        gate.set()
        return await staying, leaving.cancelled()

    assert asyncio.run(scenario()) == ("value", True)


def test_a_failed_load_fails_its_round_and_the_next_call_retries():
    attempts = []

    async def load():
        attempts.append(1)
        await asyncio.sleep(0)
        if len(attempts) == 1:
            raise RuntimeError("database away")
        return "back"

    async def scenario():
        flight = SingleFlight()
        failed = await asyncio.gather(*(flight.run("k", load) for _ in range(5)), return_exceptions=True)
        return failed, await flight.run("k", load)

    failed, later = asyncio.run(scenario())
    assert all(isinstance(err, RuntimeError) for err in failed) and len(failed) == 5
    assert later == "back" and len(attempts) == 2
