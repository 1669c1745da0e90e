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


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants (a server's worker processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        found.append(current := todo.pop())
        todo += children.get(current, [])
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its descendants, from /proc (0.0 where unavailable)."""
    total = 0
    for member in tree(pid):
        if fields := _stat(member):
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) summed over a process and its descendants, in MB."""
    total = 0
    for member in tree(pid):
        try:
            line = next(x for x in Path(f"/proc/{member}/status").read_text().splitlines() if x.startswith("VmHWM"))
            total += int(line.split()[1])
        except (OSError, StopIteration):
            pass
    return total / 1024


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
    slow_port: int = field(default_factory=free_port)  # a second fake, SLOW_DELAY between events
    fake_server: str = "uvicorn"  # what serves the fakes: the cheaper server keeps the baseline off the ceiling

    @property
    def fake_url(self) -> str:
        return f"http://{HOST}:{self.fake_port}"

    @property
    def slow_url(self) -> str:
        return f"http://{HOST}:{self.slow_port}"

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
            **getattr(self, "gateway_env", {}),
        }

    def __post_init__(self) -> None:
        self._secret = secrets.token_hex(25)  # 50 characters, the same for every command
        self.extra_env.setdefault("BENCH_SLOW_KEY", UPSTREAM_KEY)  # the slow upstream's key, by env name

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.procs.items() if proc.poll() is None}

    def manage(self, *args: str) -> str:
        """Run `manage.py ARGS` with the gateway's environment; return its stdout."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120
        )
        if done.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    def start(self, timeout: float = 30.0, limits: tuple[str, ...] = ()) -> None:
        self.start_fake(timeout)
        self.start_gateway(timeout, limits)

    def start_fake(self, timeout: float = 30.0, slow_delay: float | None = None) -> None:
        """The fake upstream; with `slow_delay`, a second one that waits that long between events."""
        for name, port, delay in (("fake", self.fake_port, self.chunk_delay), ("slow", self.slow_port, slow_delay)):
            if delay is None:
                continue
            self._spawn(
                name,
                [
                    sys.executable,
                    "-m",
                    "tests.fakes.gemini",
                    "--host",
                    HOST,
                    "--port",
                    str(port),
                    "--api-key",
                    UPSTREAM_KEY,
                    "--chunk-delay",
                    str(delay),
                    "--server",
                    self.fake_server,
                ],
            )
            self._wait_ready(name, f"http://{HOST}:{port}/v1beta/models", {"x-goog-api-key": UPSTREAM_KEY}, timeout)

    def start_gateway(
        self,
        timeout: float = 30.0,
        limits: tuple[str, ...] = (),
        server: str = "uvicorn",
        workers: int = 1,
        env: dict[str, str] | None = None,
    ) -> None:
        """A gateway on this stack's database; `limits` are set_limits flags for the bench user.
        With a slow fake running, the alias `slow` maps to it (an upstream of its own)."""
        self.manage("migrate", "--noinput")
        if not self.api_key:
            self.api_key = self.manage("issue_token", "bench", "--create-user").strip().splitlines()[-1]
            if "slow" in self.procs:
                self.manage(
                    "add_upstream",
                    "slow",
                    "--kind",
                    "gemini",
                    "--base-url",
                    self.slow_url,
                    "--api-key-env",
                    "BENCH_SLOW_KEY",
                )
                self.manage("map_model", "slow", "gemini-2.5-flash", "--upstream", "slow")
        self.manage("set_limits", "--user", "bench", *(limits or ("--clear",)))
        self.gateway_env = env or {}
        self._spawn(
            "gateway",
            [
                sys.executable,
                "-m",
                "gateway_site.serve",
                "-b",
                HOST,
                "-p",
                str(self.gateway_port),
                "--server",
                server,
                "--workers",
                str(workers),
            ],
        )
        self._wait_ready("gateway", f"{self.gateway_url}/health", {}, timeout)

    def start_peer(self, name: str, command: str, timeout: float = 30.0) -> str:
        """A peer gateway from a shell command with {port} and {upstream} placeholders; its URL."""
        port = free_port()
        self._spawn(name, ["sh", "-c", command.format(port=port, upstream=self.fake_url, slow_upstream=self.slow_url)])
        url = f"http://{HOST}:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                httpx.get(url, timeout=2)
                return url
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"peer {name} did not answer at {url}")

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
        for name in list(self.procs):
            self.stop(name)

    def usage_totals(self) -> dict:
        return json.loads(self.manage("usage_report", "--json").strip().splitlines()[-1])["totals"]

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115  (closed below, once the child has it)
        # A session of their own: Ctrl-C reaches only us, and we stop them in order, gracefully.
        self.procs[name] = subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
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
