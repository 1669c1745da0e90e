"""Start, probe and stop the two servers under test: the fake Gemini upstream and the gateway."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM_KEY = "test-upstream-key"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process, from /proc (0.0 where unavailable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Stack:
    """The fake upstream and the gateway, in their own temp dir, ports and SQLite database."""

    workdir: Path
    chunk_delay: float = 0.0
    fake_port: int = field(default_factory=free_port)
    gateway_port: int = field(default_factory=free_port)
    api_key: str = ""
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. REDIS_URL for the gateway

    @property
    def fake_url(self) -> str:
        return f"http://{HOST}:{self.fake_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://{HOST}:{self.gateway_port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "GEMINI_BASE_URL": self.fake_url,
            "GEMINI_API_KEY": UPSTREAM_KEY,
            "DATABASE_URL": f"sqlite:///{self.workdir / 'bench.sqlite3'}",
            "GATEWAY_VAR_DIR": str(self.workdir),
            "DJANGO_SECRET_KEY": self._secret,
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }

    def __post_init__(self) -> None:
        self._secret = secrets.token_hex(25)  # 50 characters, the same for every command

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.procs.items() if proc.poll() is None}

    def manage(self, *args: str) -> str:
        """Run `manage.py ARGS` with the gateway's environment; return its stdout."""
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    def start(self, timeout: float = 30.0, limits: tuple[str, ...] = ()) -> None:
        self.start_fake(timeout)
        self.start_gateway(timeout, limits)

    def start_fake(self, timeout: float = 30.0) -> None:
        self._spawn("fake", [sys.executable, "-m", "tests.fakes.gemini", "--host", HOST,
                             "--port", str(self.fake_port), "--api-key", UPSTREAM_KEY,
                             "--chunk-delay", str(self.chunk_delay)])
        self._wait_ready("fake", f"{self.fake_url}/v1beta/models", {"x-goog-api-key": UPSTREAM_KEY}, timeout)

    def start_gateway(self, timeout: float = 30.0, limits: tuple[str, ...] = ()) -> None:
        """A gateway on this stack's database; `limits` are set_limits flags for the bench user."""
        self.manage("migrate", "--noinput")
        if not self.api_key:
            self.api_key = self.manage("issue_token", "bench", "--create-user").strip().splitlines()[-1]
        self.manage("set_limits", "--user", "bench", *(limits or ("--clear",)))
        self._spawn("gateway", [sys.executable, "-m", "gateway_site.serve", "-b", HOST, "-p",
                                str(self.gateway_port), "gateway_site.asgi:application"])
        self._wait_ready("gateway", f"{self.gateway_url}/health", {}, timeout)

    def stop(self, name: str, grace: float = 15.0) -> int | None:
        """SIGTERM, wait (the gateway flushes usage rows at exit), SIGKILL as a last resort."""
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def stop_all(self) -> None:
        for name in ("gateway", "fake"):
            self.stop(name)

    def usage_totals(self) -> dict:
        return json.loads(self.manage("usage_report", "--json").strip().splitlines()[-1])["totals"]

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.workdir / f"{name}.log", "wb")
        # A session of their own: Ctrl-C reaches only us, and we stop them in order, gracefully.
        self.procs[name] = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def _wait_ready(self, name: str, url: str, headers: dict, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                break
            try:
                if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{name} did not become ready at {url} within {timeout:.0f}s:\n{tail}")
