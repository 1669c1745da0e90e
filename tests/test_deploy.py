"""deploy/nginx-gateway.conf, run for real: Debian's nginx in front of two gateway processes on a
fresh PostgreSQL database and Redis. Through nginx: SDK requests streamed and not (no buffering),
static files served by nginx, a quota held exactly across both processes, the WebSocket chat, and
one process stopped with SIGTERM mid-load with every answered request's usage row kept.

Skipped, with the reason printed, when nginx, PostgreSQL or Redis is missing (scripts/test.sh
installs Debian's nginx when it runs as root with apt-get)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timezone
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.test_concurrency import PG_URL, postgres_unavailable_reason
from tests.test_counters import TEST_REDIS_URL, redis_unavailable_reason
from tests.test_server import ROOT, Gateway, gateway_env, manage

SITE_CONF = ROOT / "deploy" / "nginx-gateway.conf"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
MODEL = "gemini-2.5-flash"
PROMPT = "one two three four five six seven eight nine ten eleven twelve"
RPM = 10


def _skip(reason: str) -> None:
    print(f"SKIP: {reason}")
    pytest.skip(reason)


def render_site(port: int, upstreams: list[int], static: Path, logs: Path) -> str:
    """The shipped site file with this test's ports and paths; each rewritten line must exist."""
    text = SITE_CONF.read_text()
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=0;\n" for p in upstreams)
    for old, new in [
        ("    server 127.0.0.1:8001 max_fails=0;\n    server 127.0.0.1:8002 max_fails=0;\n", servers),
        ("listen 80;", f"listen 127.0.0.1:{port};"),
        ("/srv/llm-gateway/var/static/", f"{static}/"),
        ("/var/log/nginx/llm-gateway.access.log", str(logs / "access.log")),
    ]:
        assert old in text, f"{SITE_CONF} no longer has {old!r}: update this test's rewrite"
        text = text.replace(old, new)
    return text


class Nginx:
    """nginx in the foreground with its own prefix, config and logs in `root` (no daemon)."""

    def __init__(self, root: Path, upstreams: list[int], static: Path) -> None:
        self.root, self.port = root, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        for sub in ("logs", "temp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "gateway.conf").write_text(render_site(self.port, upstreams, static, root / "logs"))
        temp = root / "temp"
        (root / "nginx.conf").write_text(
            ("user root;\n" if os.geteuid() == 0 else "")  # workers read the test's private tmp dir
            + f"daemon off;\nworker_processes 1;\npid {root}/nginx.pid;\nerror_log {root}/logs/error.log warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n  include /etc/nginx/mime.types;\n"
            + "".join(
                f"  {kind}_temp_path {temp}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            )
            + f"  include {root}/gateway.conf;\n}}\n"
        )
        check = subprocess.run(
            [NGINX, "-t", "-p", str(root), "-c", str(root / "nginx.conf")], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen([NGINX, "-p", str(root), "-c", str(root / "nginx.conf")], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.proc.poll() is None, self.proc.stderr.read()
            assert time.monotonic() < deadline, "nginx did not answer /health"
            time.sleep(0.1)

    def workers(self) -> set[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return {int(pid) for pid in children}

    def access_log(self) -> str:
        return (self.root / "logs" / "access.log").read_text()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGQUIT)  # graceful stop
        self.proc.wait(15)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """One stack for the module (the SIGTERM test, which stops the gateways, runs last)."""
    tmp_path = tmp_path_factory.mktemp("deploy")
    if NGINX is None:
        _skip("nginx is not installed (Debian: apt-get install nginx; scripts/test.sh does it as root)")
    for reason in (postgres_unavailable_reason(), redis_unavailable_reason()):
        if reason:
            _skip(reason)
    import psycopg

    name = f"gateway_deploy_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin_url = PG_URL.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db_url = f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    fake_port = free_port()
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.gemini", "--port", str(fake_port), "--chunk-delay", "0.05"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started: list = []
    try:
        env = gateway_env(
            tmp_path,
            DATABASE_URL=db_url,
            REDIS_URL=TEST_REDIS_URL,
            GATEWAY_QUOTA_REDIS_PREFIX=f"gwdeploy-{name}",
            GATEWAY_TRUSTED_PROXIES="127.0.0.1",  # as in deploy/gateway.env: only nginx's X-Forwarded-For counts
            GEMINI_BASE_URL=f"http://127.0.0.1:{fake_port}",
            GEMINI_API_KEY="test-upstream-key",
            GATEWAY_SHUTDOWN_GRACE_SECONDS="20",
            GATEWAY_ACCESS_LOG_STDOUT="false",
            GATEWAY_QUOTA_REDIS_TIMEOUT="5",  # a small shared box: this test is about the bound, not latency
        )
        for step in (("migrate", "--noinput"), ("collectstatic", "--noinput")):
            result = manage(env, *step)
            assert result.returncode == 0, result.stderr
        key = manage(env, "issue_token", "team", "--create-user").stdout.strip().splitlines()[-1]
        logs = [(tmp_path / f"gateway{i}.log").open("w") for i in range(2)]
        gateways = [Gateway(env, log=log) for log in logs]
        started.extend(gateways)
        proxy = Nginx(tmp_path / "nginx", [g.port for g in gateways], tmp_path / "static")
        started.append(proxy)
        yield {"env": env, "key": key, "db": db_url, "gateways": gateways, "nginx": proxy}
    finally:
        for part in reversed(started):
            if isinstance(part, Nginx):
                part.stop()
            elif part.proc.poll() is None:
                part.proc.send_signal(signal.SIGTERM)
                part.proc.wait(40)
        fake.terminate()
        fake.wait(10)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


LOG_LINE = re.compile(r'"[A-Z]+ \S+" (?P<status>\d{3}) .* up=(?P<upstream>.*) ups=.* rid=(?P<rid>\S*)$')


def log_fields(line: str) -> tuple[int, str, str]:
    """(status, upstream that answered, request id) of a line in deploy/nginx-gateway.conf's format.
    A request nginx passed on to the next process lists both ("A, B"): the last one answered."""
    match = LOG_LINE.search(line)
    assert match, f"not the llm_gateway log format: {line!r}"
    return int(match["status"]), match["upstream"].split(", ")[-1], match["rid"]


def usage_rows(db_url: str) -> list[tuple[str, int]]:
    import psycopg

    with psycopg.connect(db_url.replace("postgres://", "postgresql://", 1)) as conn:
        return conn.execute("SELECT request_id, status FROM proxy_app_usagerecord").fetchall()


def test_sdks_stream_through_nginx_unbuffered_and_static_files_come_from_nginx(stack):
    import anthropic
    import openai

    url, key = stack["nginx"].url, stack["key"]
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": PROMPT}])
    assert reply.choices[0].message.content == f"Hello from fake Gemini: {PROMPT}"
    arrivals, text = [], []
    for chunk in client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": PROMPT}], stream=True
    ):
        arrivals.append(time.monotonic())
        text.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
    assert "".join(text) == f"Hello from fake Gemini: {PROMPT}"
    # 16 words 50 ms apart upstream: unbuffered, they arrive spread out, not in one lump at the end.
    assert arrivals[-1] - arrivals[1] > 0.4, f"the stream arrived in {arrivals[-1] - arrivals[1]:.2f} s: buffered?"

    claude = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)
    message = claude.messages.create(model=MODEL, max_tokens=200, messages=[{"role": "user", "content": PROMPT}])
    assert message.content[0].text == f"Hello from fake Gemini: {PROMPT}"
    with claude.messages.stream(model=MODEL, max_tokens=200, messages=[{"role": "user", "content": "hi"}]) as stream:
        assert "".join(stream.text_stream) == "Hello from fake Gemini: hi"

    css = httpx.get(f"{url}/static/admin/css/base.css")
    assert css.status_code == 200 and "body" in css.text
    assert "x-request-id" not in css.headers  # nginx's alias answered, not the app (which adds one)
    assert httpx.get(f"{url}/openapi.json").json()["openapi"].startswith("3.1")
    assert httpx.get(f"{url}/metrics").status_code == 403  # scraped per process, never through nginx
    assert httpx.get(f"{stack['gateways'][0].url}/metrics").status_code == 200
    log = stack["nginx"].access_log()
    assert "key=" not in log and key not in log
    for gateway in stack["gateways"]:  # nginx spread the requests over both processes
        assert f"127.0.0.1:{gateway.port}" in log


def _clear_of_minute_end() -> None:
    """rpm counts per clock minute: start a burst well inside one."""
    second = datetime.now(UTC).second
    if second > 45:
        time.sleep(61 - second)


def test_rpm_holds_exactly_across_both_processes(stack):
    env = stack["env"]
    key = manage(env, "issue_token", "crowd", "--create-user").stdout.strip().splitlines()[-1]
    assert manage(env, "set_limits", "--user", "crowd", "--rpm", str(RPM)).returncode == 0
    _clear_of_minute_end()

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=40)) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"{stack['nginx'].url}/v1/chat/completions",
                        headers={"authorization": f"Bearer {key}"},
                        json={"model": MODEL, "messages": [{"role": "user", "content": f"n{i}"}]},
                    )
                    for i in range(3 * RPM)
                )
            )

    before = len(stack["nginx"].access_log().splitlines())
    statuses = sorted(r.status_code for r in asyncio.run(burst()))
    assert statuses == [200] * RPM + [429] * (2 * RPM), statuses
    burst = [log_fields(line) for line in stack["nginx"].access_log().splitlines()[before:]]
    for gateway in stack["gateways"]:  # both processes answered part of the burst: the count is shared
        served = [status for status, upstream, _rid in burst if upstream == f"127.0.0.1:{gateway.port}"]
        assert len(served) >= RPM, (gateway.port, burst)


def test_websocket_chat_through_nginx(stack):
    from websockets.asyncio.client import connect

    async def talk() -> dict:
        ws_url = stack["nginx"].url.replace("http://", "ws://") + "/ws/chat/"
        async with connect(ws_url, additional_headers={"Authorization": f"Bearer {stack['key']}"}) as ws:

            async def until(kind: str) -> tuple[list[dict], dict]:
                seen = []
                while True:
                    event = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    seen.append(event)
                    if event["type"] == kind:
                        return seen, event

            await until("ready")
            await ws.send(json.dumps({"type": "start", "model": MODEL}))
            await until("started")
            await ws.send(json.dumps({"type": "message", "text": "one two three four five"}))
            events, done = await until("done")
            assert len([e for e in events if e["type"] == "delta"]) > 3  # token by token through the proxy
            return done

    assert asyncio.run(talk())["text"] == "Hello from fake Gemini: one two three four five"


def test_nginx_reload_mid_stream_keeps_the_stream(stack):
    """`nginx -s reload` (new config, new workers; the old ones finish what they serve)."""
    proxy = stack["nginx"]
    body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "stream": True}
    headers = {"authorization": f"Bearer {stack['key']}"}
    lines = []
    workers = proxy.workers()
    with httpx.stream("POST", f"{proxy.url}/v1/chat/completions", json=body, headers=headers, timeout=30) as resp:
        for line in resp.iter_lines():
            if line.startswith("data:"):
                lines.append(line)
                if len(lines) == 2:
                    reload = [NGINX, "-p", str(proxy.root), "-c", str(proxy.root / "nginx.conf"), "-s", "reload"]
                    assert subprocess.run(reload, capture_output=True).returncode == 0
    assert lines[-1] == "data: [DONE]" and len(lines) > 10
    assert httpx.get(f"{proxy.url}/health").status_code == 200  # the new workers answer
    deadline = time.monotonic() + 10
    while workers & proxy.workers():  # the old worker leaves once its stream is done
        assert time.monotonic() < deadline, "the reload left the old nginx worker running"
        time.sleep(0.1)


def test_sigterm_to_one_process_mid_load_loses_no_usage_row(stack):
    """Two in three requests stream (not every other one: nginx's round robin would give one
    process all the streams); one process gets SIGTERM while they run. Every request that got an
    answer from a gateway has exactly one usage row (matched by its x-request-id), and nginx sent
    new requests to the other process (no request failed)."""
    url, key, victim = stack["nginx"].url, stack["key"], stack["gateways"][0]
    count = 60

    async def one(client: httpx.AsyncClient, i: int, started: asyncio.Event) -> tuple[int, str, bool, float]:
        await asyncio.sleep(i * 0.03)  # spread over ~2 s, so the SIGTERM lands mid-load
        rid = f"deploy-{i}-{uuid.uuid4().hex[:8]}"
        body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "stream": i % 3 != 2}
        headers = {"authorization": f"Bearer {key}", "x-request-id": rid}
        async with client.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers) as resp:
            text = (await resp.aread()).decode()
            started.set()
            complete = "[DONE]" in text if body["stream"] else PROMPT in text
            return resp.status_code, resp.headers.get("x-request-id", ""), complete, time.monotonic()

    async def load() -> list[tuple[int, str, bool, float]]:
        started = asyncio.Event()
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=count)) as client:
            tasks = [asyncio.create_task(one(client, i, started)) for i in range(count)]
            await asyncio.wait_for(started.wait(), 30)
            await asyncio.sleep(0.3)
            victim.proc.send_signal(signal.SIGTERM)
            signalled.append(time.monotonic())
            return await asyncio.gather(*tasks)

    signalled: list[float] = []

    results = asyncio.run(load())
    # uvicorn re-raises the SIGTERM once its graceful shutdown is done: -15 is a clean exit.
    assert victim.proc.wait(40) in (0, -signal.SIGTERM)
    stack["gateways"][1].proc.send_signal(signal.SIGTERM)  # the survivor flushes its rows too
    assert stack["gateways"][1].proc.wait(40) in (0, -signal.SIGTERM)

    failed = [r for r in results if r[0] != 200 or not r[2]]
    log = stack["nginx"].access_log() + (stack["nginx"].root / "logs" / "error.log").read_text()
    assert not failed, f"{len(failed)} of {count} requests failed or were cut: {failed[:5]}\n{log[-3000:]}"
    rows: dict[str, int] = {}
    for rid, _status in usage_rows(stack["db"]):
        rows[rid] = rows.get(rid, 0) + 1
    answered = [rid for _status, rid, _complete, _ended in results]
    assert all(answered), "every answer came from a gateway (x-request-id echoed)"
    missing = [rid for rid in answered if rows.get(rid) != 1]
    assert not missing, f"{len(missing)} answered requests without exactly one usage row: {missing[:5]}"
    # The signal did land mid-load: the victim still had requests open (they finished in its grace
    # period), and requests sent after it went to the survivor.
    lines = stack["nginx"].access_log().splitlines()
    by_rid = {rid: upstream for _status, upstream, rid in map(log_fields, lines) if rid.startswith("deploy-")}
    on_victim = [r for r in results if by_rid[r[1]] == f"127.0.0.1:{victim.port}"]
    assert any(ended > signalled[0] for *_, ended in on_victim), "no request was open on the victim at SIGTERM"
    assert len(on_victim) < count, "the survivor took none of the load"
    passed_on = [line for line in lines if "rid=deploy-" in line and ", " in line.split("up=", 1)[1]]
    print(f"{len(on_victim)} of {count} answered by the stopped process, {len(passed_on)} passed on by nginx")
