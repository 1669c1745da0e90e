"""Anthropic dialect: `event: ping` frames while a stream is silent, and a clean close either way."""

from __future__ import annotations

import asyncio

from proxy_app.dialects.anthropic.surface import PING, with_pings


async def slow_frames(log: list[str], pause: float):
    try:
        yield b"first"
        await asyncio.sleep(pause)
        yield b"second"
    finally:
        log.append("closed")


async def test_pings_fill_silences_and_frames_keep_their_order():
    log: list[str] = []
    frames = [f async for f in with_pings(slow_frames(log, 0.25), every=0.1)]
    assert frames[0] == b"first" and frames[-1] == b"second"
    assert 1 <= frames.count(PING) <= 3 and set(frames[1:-1]) == {PING}
    assert log == ["closed"]
    assert PING == b'event: ping\ndata: {"type":"ping"}\n\n'


async def test_no_pings_when_frames_keep_coming():
    log: list[str] = []
    assert [f async for f in with_pings(slow_frames(log, 0), every=0.1)] == [b"first", b"second"]


async def test_closing_early_closes_the_source_even_while_a_frame_is_awaited():
    log: list[str] = []
    stream = with_pings(slow_frames(log, 10), every=0.05)
    assert await anext(stream) == b"first"
    assert await anext(stream) == PING  # the source is now waiting inside its sleep
    await stream.aclose()
    assert log == ["closed"]


async def test_cancelling_the_consumer_cancels_the_source():
    log: list[str] = []

    async def consume():
        async for _ in with_pings(slow_frames(log, 10), every=5):
            pass

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert log == ["closed"]
