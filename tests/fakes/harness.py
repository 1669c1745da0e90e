"""Two ways tests reach a fake upstream as a server rather than through `fake.handler`.

- `served("tests.fakes.gemini", "--api-key", "k")` starts ``python -m tests.fakes.gemini --port N
  --api-key k`` in a child process on a free port, waits until it listens and yields its base URL;
  on exit it stops the server and checks that its start-up line named that URL.
- `asgi_exchange(fake.asgi, scope, body)` drives the fake's ASGI app directly with one request and
  returns the messages it sent.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]


@contextmanager
def served(module: str, *args: str, banner: str = "") -> Iterator[str]:
    """The fake `module` serving on 127.0.0.1; `banner` is what its start-up line adds to the URL."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--port", str(port), *args],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_port(port, process, module)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        assert url + banner in process.stdout.read().decode()
        process.stdout.close()
        process.stderr.close()


async def asgi_exchange(app, scope: dict, body: bytes) -> list[dict]:
    """Send one request (`body` in a single message) to an ASGI app whose client never leaves."""
    request = [{"type": "http.request", "body": body, "more_body": False}]
    sent = []

    async def receive():
        if request:
            return request.pop()
        await asyncio.sleep(3600)  # the client never leaves

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    return sent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, module: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{module} did not listen on {port}")
