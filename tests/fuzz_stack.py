"""The stack the fuzzer and the fault tests drive: a served fake Gemini, then the gateway as operators run it
(`python -m gateway_site.serve` in its own process, SQLite in a temporary folder), and a member's key.

`Stack(tmp_path, **env)` starts both; `stack.rows()` reads the usage rows the gateway wrote (after
waiting for its background writer), `stack.log()` what the gateway printed, `stack.stop()` ends both.
The fake runs as its own process too (tests/fakes/gemini.py under uvicorn), so nothing of the
gateway's process is shared with the test.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port
from tests.test_server import ROOT, gateway_env, manage
from tests.test_server import Gateway as ServedGateway

UPSTREAM_KEY = "test-upstream-key"


def start_fake_gemini(*args: str) -> tuple[subprocess.Popen, str]:
    """A served fake Gemini (its own process) and its base URL, once it answers."""
    port = free_port()
    argv = [sys.executable, "-m", "tests.fakes.gemini", "--port", str(port), "--server", "uvicorn", *args]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"{url}/v1beta/models", headers={"x-goog-api-key": UPSTREAM_KEY}, timeout=1)
            return proc, url
        except httpx.TransportError:
            assert proc.poll() is None, "the fake Gemini exited"
            assert time.monotonic() < deadline, "the fake Gemini did not start"
            time.sleep(0.1)


class Gateway(ServedGateway):
    """The documented launcher on a free port; its output goes to a file (a pipe nobody reads
    would fill up and stall the server under thousands of requests)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115  (closed in stop)
        super().__init__(env, log=self._log)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class Stack:
    def __init__(self, tmp_path: Path, *, fake_args: tuple[str, ...] = (), upstream_url: str = "", **extra: str):
        self.tmp_path = tmp_path
        self.fake = None
        if not upstream_url:
            self.fake, upstream_url = start_fake_gemini(*fake_args)
        self.upstream_url = upstream_url
        self.db_path = tmp_path / "gw.sqlite3"
        settings = {
            "GEMINI_BASE_URL": upstream_url,
            "GEMINI_API_KEY": UPSTREAM_KEY,
            "GATEWAY_ACCESS_LOG_STDOUT": "false",
            "GATEWAY_USAGE_FLUSH_SECONDS": "0.05",
            **extra,
        }
        self.env = gateway_env(tmp_path, **settings)
        if "REDIS_URL" not in extra:
            self.env.pop("REDIS_URL", None)
        result = manage(self.env, "migrate", "--noinput")
        assert result.returncode == 0, result.stderr
        self.key = manage(self.env, "issue_token", "fuzz", "--create-user").stdout.strip().splitlines()[-1]
        self.gateway = Gateway(self.env, tmp_path / "gateway.log")
        self.url = self.gateway.url

    def rows(self, columns: str = "request_id, status, error_code", settle: float = 0.5) -> list[tuple]:
        """Usage rows, once the count stops growing for `settle` seconds (the writer batches)."""
        count, stable_since = -1, time.monotonic()
        while True:
            rows = self._query(f"SELECT {columns} FROM proxy_app_usagerecord ORDER BY id")
            if len(rows) != count:
                count, stable_since = len(rows), time.monotonic()
            elif time.monotonic() - stable_since >= settle:
                return rows
            time.sleep(0.05)

    def _query(self, sql: str) -> list[tuple]:
        with sqlite3.connect(self.db_path, timeout=30) as db:
            return db.execute(sql).fetchall()

    def log(self) -> str:
        return self.gateway.log()

    def stop(self) -> None:
        self.gateway.stop()
        if self.fake is not None:
            self.fake.terminate()
            self.fake.wait(10)


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.isdigit() else default


def fuzz_seed() -> int | None:
    """The fuzzers' hypothesis seed: fixed (the same cases on every `make test`), FUZZ_SEED if given,
    None (fresh) with FUZZ_RANDOM=1 (`make fuzz`)."""
    if "FUZZ_SEED" in os.environ:
        return env_int("FUZZ_SEED", 0)
    return None if os.environ.get("FUZZ_RANDOM") else 20261203


def seeded(test):
    """`test` under fuzz_seed() (hypothesis's own random seed when None)."""
    from hypothesis import seed

    chosen = fuzz_seed()
    return test if chosen is None else seed(chosen)(test)
