"""The gateway as operators run it: `python -m gateway_site.serve` in its own process(es), configured by
environment only."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s" * 50


def gateway_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "DATABASE_URL", "DJANGO_"))}
    defaults = {"DATABASE_URL": f"sqlite:///{tmp_path / 'gw.sqlite3'}", "DJANGO_SECRET_KEY": SECRET}
    env.update(GATEWAY_VAR_DIR=str(tmp_path), **{**defaults, **extra})
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


class Gateway:
    """The documented launcher; `server`/`workers` as its --server/--workers flags."""

    def __init__(
        self, env: dict[str, str], server: str = "uvicorn", workers: int = 1, log=None, port: int | None = None
    ) -> None:
        """`log`: a file for the server's output instead of a pipe (a pipe nobody reads while the
        test runs fills up and blocks the server's next write)."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway_site.serve",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "--server",
                server,
                "--workers",
                str(workers),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE if log is None else log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{self.url}/health", timeout=20)
                return
            except httpx.TransportError:
                assert self.proc.poll() is None, self.proc.stdout.read() if log is None else Path(log.name).read_text()
                assert time.monotonic() < deadline, "the gateway did not start"
                time.sleep(0.1)

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        return out


@pytest.fixture
def migrated(tmp_path):
    def _env(**extra: str) -> dict[str, str]:
        env = gateway_env(tmp_path, **extra)
        result = manage(env, "migrate", "--noinput")
        assert result.returncode == 0, result.stderr
        return env

    return _env


@pytest.mark.parametrize("server_name", ["uvicorn", "daphne", "granian"])
def test_starts_without_gemini_key_and_flushes_usage_on_shutdown(migrated, tmp_path, server_name):
    env = migrated(GATEWAY_USAGE_FLUSH_SECONDS="60")  # only the shutdown flush can write the rows
    key = manage(env, "issue_token", "dora", "--create-user").stdout.strip().splitlines()[-1]
    server = Gateway(env, server=server_name)
    try:
        health = httpx.get(f"{server.url}/health")
        assert health.status_code == 200 and health.json()["upstream_configured"] is False
        assert httpx.get(f"{server.url}/admin/login/").status_code == 200
        httpx.get(f"{server.url}/v1beta/models?pageSize=5&key={key}")  # a Gemini-style key in the URL
        for _ in range(5):
            resp = httpx.post(
                f"{server.url}/v1/chat/completions",
                headers={"authorization": f"Bearer {key}"},
                json={"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert resp.status_code == 503
            assert "GEMINI_API_KEY" in resp.json()["error"]["message"]
    finally:
        log = server.stop()
    assert key.split("_", 1)[1] not in log
    if server_name == "daphne":  # the only server whose access log cannot be switched off: masked
        assert "/v1beta/models?pageSize=5&key=[redacted]" in log
    else:  # no server access log at all; the gateway's own JSON line names the key by prefix only
        assert "pageSize=5" not in log
    with sqlite3.connect(tmp_path / "gw.sqlite3") as db:
        rows = db.execute("SELECT status, error_code FROM proxy_app_usagerecord").fetchall()
    assert rows == [(503, "upstream_not_configured")] * 5


def test_health_is_503_when_the_database_is_down(tmp_path):
    env = gateway_env(tmp_path, DATABASE_URL="postgres://postgres@127.0.0.1:1/nowhere")
    server = Gateway(env)
    try:
        resp = httpx.get(f"{server.url}/health", timeout=20)
        assert resp.status_code == 503 and resp.json()["status"] == "unhealthy"
    finally:
        server.stop()


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("DJANGO_DEBUG", "maybe", "DJANGO_DEBUG='maybe' is not a boolean"),
        ("DJANGO_SECRET_KEY", "short", "DJANGO_SECRET_KEY must be at least 32 characters"),
        ("GEMINI_BASE_URL", "generativelanguage.googleapis.com", "GEMINI_BASE_URL="),
        ("GATEWAY_MAX_BODY_BYTES", "lots", "GATEWAY_MAX_BODY_BYTES='lots' is not an integer"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL='localhost:6379' must start with redis://"),
        ("GATEWAY_IMAGE_FETCH_ALLOWED_NETWORKS", "10.0.0.0/33", "GATEWAY_IMAGE_FETCH_ALLOWED_NETWORKS"),
        ("DATABASE_URL", "mysqlx://what", "DATABASE_URL is not a valid database URL"),
    ],
)
def test_bad_configuration_fails_at_start(tmp_path, name, value, message):
    result = manage(gateway_env(tmp_path, **{name: value}), "check")
    assert result.returncode != 0
    assert message in result.stderr


DIRECT_COMMANDS = {  # each server the README mentions, run on the app directly with its access log on
    "daphne": ["-m", "daphne", "-b", "127.0.0.1", "-p", "{port}", "gateway_site.asgi:application"],
    "uvicorn": ["-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}", "gateway_site.asgi:application"],
    "granian": [
        "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", "{port}", "--access-log",
        "--access-log-fmt", '%(addr)s "%(method)s %(path)s?%(query_string)s" %(status)d',
        "gateway_site.asgi:application",
    ],
}  # fmt: skip


@pytest.mark.parametrize("server_name", sorted(DIRECT_COMMANDS))
def test_no_server_logs_a_key_sent_in_the_url(migrated, server_name):
    env = migrated()
    key = manage(env, "issue_token", "erin", "--create-user").stdout.strip().splitlines()[-1]
    port = free_port()
    argv = [sys.executable, *(a.replace("{port}", str(port)) for a in DIRECT_COMMANDS[server_name])]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/health", timeout=20)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        plain = httpx.get(f"{url}/v1beta/models?pageSize=5&key={key}")
        encoded = httpx.get(f"{url}/v1beta/models?pageSize=6&%6Bey={key}")  # Django decodes it to `key`
        assert plain.status_code == encoded.status_code == 200  # both authenticated: both are real keys
    finally:
        proc.send_signal(signal.SIGTERM)
        log, _ = proc.communicate(timeout=30)
    assert "pageSize=5" in log and "pageSize=6" in log, log[-3000:]  # the access log is on and has the URLs
    assert key.split("_", 1)[1] not in log
    assert "key=[redacted]" in log and "%6Bey=[redacted]" in log
