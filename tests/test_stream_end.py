"""How a stream's body ends when the server cancels it (its shutdown grace is over): the dialect's
in-band error frame comes last and the stream below is closed at once, whatever the cancellation
caught the stream doing. (The real-server version is tests/test_shutdown.py; these pin the races.)"""

from __future__ import annotations

import asyncio

import pytest

from proxy_app.core import context
from proxy_app.dialects.surface import keep_alive, stream_frames


class Encoder:
    def encode(self, event):
        return [event.encode()]

    def finish(self, usage):
        return [b"END"]

    def error(self, err):
        return b"ERROR:" + err.code.encode()


def _events(log: list[str], before_second=None):
    async def events():
        try:
            yield "first"
            if before_second is not None:
                before_second()
            yield "second"
            await asyncio.sleep(3600)
            yield "never"
        finally:
            log.append("closed")

    return events()


async def _consume(frames, out: list[bytes], log: list[str]) -> None:
    async for frame in frames:
        out.append(frame)
    log.append("body ended")  # the stream below must be closed by now, not later by the GC


def _serve(body_of, *, client_left: bool = False):
    """Run `body_of(events)` as a view's body would be run, in a request context whose departure
    says who cancelled it; returns (task, frames sent, stream-below log)."""
    out: list[bytes] = []
    log: list[str] = []
    holder: dict = {}
    departure = context.Departure(client_left=client_left)
    token = context.departure.set(departure)
    try:
        task = asyncio.get_running_loop().create_task(
            _consume(body_of(_events(log, lambda: holder["task"].cancel())), out, log)
        )
    finally:
        context.departure.reset(token)
    holder["task"] = task
    return task, out, log


@pytest.mark.asyncio
@pytest.mark.parametrize("pinged", [False, True], ids=["plain", "with_pings"])
async def test_server_cancel_as_the_next_frame_is_ready_still_ends_in_band(pinged):
    """The cancellation lands just as the next frame is produced (the frame is ready before the
    consumer resumes): that frame is sent, then the in-band error, and the stream below is closed.
    With pings this is the race that ended a CI run's Anthropic stream without its error event."""

    def body(events):
        frames = stream_frames(events, Encoder())
        return keep_alive(frames, b"PING", 60) if pinged else frames

    task, out, log = _serve(body)
    await asyncio.wait_for(task, 5)  # the body ends cleanly: the cancellation went no further
    assert out[-1] == b"ERROR:server_shutdown", out
    assert b"END" not in out
    assert log == ["closed", "body ended"]


@pytest.mark.asyncio
@pytest.mark.parametrize("pinged", [False, True], ids=["plain", "with_pings"])
async def test_client_leaving_cuts_the_body_and_closes_the_stream(pinged):
    def body(events):
        frames = stream_frames(events, Encoder())
        return keep_alive(frames, b"PING", 60) if pinged else frames

    task, out, log = _serve(body, client_left=True)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert not any(frame.startswith(b"ERROR") for frame in out), out
    assert log == ["closed"]


@pytest.mark.asyncio
async def test_server_cancel_while_waiting_upstream_ends_in_band():
    """The common case: the cancellation lands while the stream waits for the upstream."""
    out: list[bytes] = []
    log: list[str] = []
    token = context.departure.set(context.Departure())
    try:
        frames = keep_alive(stream_frames(_events(log), Encoder()), b"PING", 60)
        task = asyncio.get_running_loop().create_task(_consume(frames, out, log))
    finally:
        context.departure.reset(token)
    while len(out) < 2:
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.wait_for(task, 5)
    assert out == [b"first", b"second", b"ERROR:server_shutdown"]
    assert log == ["closed", "body ended"]
