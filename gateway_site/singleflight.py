"""Single flight: concurrent cache misses for one key share one load instead of each running it.

The request path keeps short-lived caches (keys, limits, routes, prices, log switches). When an
entry expires under a burst, every request in flight misses at once; without this, 1000 open
requests ran 1000 identical queries, one after another on the one ORM thread, and the burst
queued behind them. With it, the first miss starts the load and the others await its result.

    flight = SingleFlight()
    value = await flight.run(key, lambda: load(key))   # `load` returns an awaitable

The shared load runs in its own task, shielded: one waiter's cancellation (a client that went
away) never cancels the load the others wait for. A load that fails fails every waiter of that
round, and the next call starts afresh. A task belongs to its event loop, so a caller on another
loop (tests run many) starts its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

T = TypeVar("T")


class SingleFlight:
    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Task] = {}

    async def run(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        task = self._running.get(key)
        if task is None or task.get_loop() is not loop:
            task = self._running[key] = loop.create_task(_awaited(load))
            task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(task)

    def _forget(self, key: Hashable, done: asyncio.Task) -> None:
        if self._running.get(key) is done:
            del self._running[key]
        if not done.cancelled():
            done.exception()  # retrieved: a failure every waiter saw is not "never retrieved"


async def _awaited(load: Callable[[], Awaitable[T]]) -> T:
    return await load()
