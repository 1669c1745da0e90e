"""SIGTERM with open streams, on a real server process: streams within the grace period finish,
streams beyond it are ended, and every one of them has its usage row before the process exits."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import free_port
from tests.test_server import ROOT, Gateway, manage, migrated  # noqa: F401  (fixture)

PROMPT = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
STREAMS = 100


@pytest.fixture
def slow_fake():
    """A served fake Gemini that waits `delay` seconds between the events of a stream."""
    procs = []

    def start(delay: float) -> str:
        port = free_port()
        argv = [sys.executable, "-m", "tests.fakes.gemini", "--port", str(port), "--chunk-delay", str(delay)]
        procs.append(subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/v1beta/models", headers={"x-goog-api-key": "test-upstream-key"}, timeout=1)
                return url
            except httpx.TransportError:
                assert time.monotonic() < deadline, "fake Gemini did not start"
                time.sleep(0.1)

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


MESSAGES = [{"role": "user", "content": PROMPT}]
DIALECTS = {  # path, body, key header, the data line that ends a complete stream
    "openai": ("/v1/chat/completions", {"messages": MESSAGES}, "authorization", "data: [DONE]"),
    "anthropic": ("/v1/messages", {"messages": MESSAGES, "max_tokens": 500}, "x-api-key", "event: message_stop"),
}


async def _streams(url: str, key: str, sigterm, dialect: str) -> list[tuple[bool, str]]:
    """(completed, last data line seen) for each stream; SIGTERM once all have started.
    A stream the server ends must end cleanly: its body completes (no read error, no timeout)."""
    path, extra, key_header, end = DIALECTS[dialect]
    body = {"model": "gemini-2.5-flash", "stream": True, **extra}
    headers = {key_header: f"Bearer {key}" if key_header == "authorization" else key}
    started = asyncio.Event()
    opened = 0

    async def one(client: httpx.AsyncClient) -> tuple[bool, str]:
        nonlocal opened
        lines: list[str] = []
        try:
            async with client.stream("POST", f"{url}{path}", json=body, headers=headers) as resp:
                assert resp.status_code == 200
                async for line in resp.aiter_lines():
                    if line.startswith("data:"):
                        if len(lines) == 0:
                            opened += 1
                            if opened == STREAMS:
                                started.set()
                        lines.append(line)
        except httpx.HTTPError as exc:  # cut, or left hanging: not a clean end
            return False, f"{type(exc).__name__} after {lines[-1] if lines else 'nothing'}"
        if lines and lines[-1] == end:
            return True, lines[-2]
        return False, lines[-1] if lines else ""

    async with httpx.AsyncClient(timeout=20, limits=httpx.Limits(max_connections=STREAMS + 10)) as client:
        tasks = [asyncio.create_task(one(client)) for _ in range(STREAMS)]
        await asyncio.wait_for(started.wait(), 30)
        sigterm()
        return await asyncio.gather(*tasks)


def _rows(path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT status, error_code, streamed, completion_tokens FROM proxy_app_usagerecord"
        ).fetchall()


@pytest.mark.parametrize(
    ("delay", "grace", "finish", "dialect"),
    [(0.1, 20, True, "openai"), (0.4, 1, False, "openai"), (0.4, 1, False, "anthropic")],
    ids=["streams_finish_within_the_grace", "streams_outlive_the_grace", "anthropic_streams_outlive_the_grace"],
)
def test_sigterm_with_open_streams_records_every_row(migrated, tmp_path, slow_fake, delay, grace, finish, dialect):
    env = migrated(
        GEMINI_BASE_URL=slow_fake(delay),
        GEMINI_API_KEY="test-upstream-key",
        GATEWAY_SHUTDOWN_GRACE_SECONDS=str(grace),
        GATEWAY_USAGE_FLUSH_SECONDS="60",  # only the shutdown flush writes: it must write them all
        GATEWAY_ACCESS_LOG_STDOUT="false",
    )
    key = manage(env, "issue_token", "sam", "--create-user").stdout.strip().splitlines()[-1]
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        server = Gateway(env, log=log)
    signalled = []

    def sigterm() -> None:
        server.proc.send_signal(signal.SIGTERM)
        signalled.append(time.monotonic())

    results = asyncio.run(_streams(server.url, key, sigterm, dialect))
    server.proc.wait(timeout=60)
    took = time.monotonic() - signalled[0]
    out = log_path.read_text()
    assert "Traceback" not in out, out[-4000:]
    rows = _rows(tmp_path / "gw.sqlite3")
    assert len(rows) == STREAMS, (len(rows), results[:3], out[-6000:].splitlines()[-60:])
    if finish:  # 20 events 0.1 s apart: all finish well inside the 20 s grace, billed in full
        assert all(done for done, _ in results), [r for r in results if not r[0]][:3]
        assert {(status, streamed) for status, _, streamed, _ in rows} == {(200, 1)}
        assert all(tokens > 0 for *_, tokens in rows)
    else:  # 8 s streams, 1 s grace: each is ended with an in-band error, and its row says so
        assert not any(done for done, _ in results)
        # Told in-band why, and the body ended cleanly (no read error, no timeout waiting for more).
        unclean = [last for _, last in results if not (last.startswith("data: ") and "shutting down" in last)]
        assert not unclean, unclean[:3]
        # Grace, then the cancelled streams' cleanup and the flush (the lifespan gives them 3 s at most).
        assert took < grace + 4, (took, out[-3000:])
        assert {(status, code) for status, code, _, _ in rows} == {(503, "server_shutdown")}
        assert all(tokens > 0 for *_, tokens in rows)  # what was streamed is billed
