"""The WebSocket chat (ws/chat/): in process with Channels' WebsocketCommunicator, then with a real
WebSocket client (`websockets`) against real daphne processes and a served fake Gemini."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time

import httpx
import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from gateway_site.asgi import application
from proxy_app.models import ChatSession
from tests.conftest import free_port
from tests.test_server import ROOT, Gateway, gateway_env, manage

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "gemini-2.5-flash"


@pytest.fixture(autouse=True)
def _written_before_teardown(drain_usage):
    """Errors are recorded too: write every queued usage row while this test's users still exist."""


def headers(key: str | None = None, **more: str) -> list[tuple[bytes, bytes]]:
    out = [(b"authorization", f"Bearer {key}".encode())] if key else []
    return out + [(k.encode(), v.encode()) for k, v in more.items()]


async def connected(*hdrs) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(application, "/ws/chat/", headers=list(hdrs))
    ok, _ = await comm.connect()
    assert ok
    return comm


async def until(comm: WebsocketCommunicator, kind: str, timeout: float = 10) -> tuple[list[dict], dict]:
    """Events up to and including the first of `kind`."""
    seen = []
    while True:
        event = await comm.receive_json_from(timeout=timeout)
        seen.append(event)
        if event["type"] == kind:
            return seen, event


async def chat(comm: WebsocketCommunicator, model: str = MODEL, **start) -> str:
    await comm.send_json_to({"type": "start", "model": model, **start})
    _, started = await until(comm, "started")
    return started["chat_id"]


async def rows_after_flush(usage_rows):
    return await sync_to_async(usage_rows)()


def contents_text(body: dict) -> list[tuple[str, str]]:
    return [(c["role"], "".join(p["text"] for p in c["parts"])) for c in body["contents"]]


async def wait_for(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (result := await sync_to_async(check)()):
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)
    return result


# ------------------------------------------------------------------------------ in process


async def test_header_auth_start_and_streamed_answer(api_key, fake_gemini, usage_rows):
    fake_gemini.chunk_delay = 0.05
    fake_gemini.script("text", chunks=["Sac", "ra", "mento."])
    comm = await connected(*headers(api_key))
    assert await comm.receive_json_from() == {"type": "ready", "user": "alice", "auth": "header"}
    chat_id = await chat(comm, system_instruction="Be brief.", generation_config={"temperature": 0.5})
    await comm.send_json_to({"type": "message", "text": "Capital of California?"})
    events, done = await until(comm, "done")
    assert [e["type"] for e in events] == ["delta", "delta", "delta", "done"]
    assert [e["text"] for e in events[:3]] == ["Sac", "ra", "mento."]
    assert done["chat_id"] == chat_id and done["text"] == "Sacramento." and done["usage"]["completion_tokens"] > 0
    sent = fake_gemini.requests_to("streamGenerateContent")[-1]["json"]
    assert sent["systemInstruction"] == {"parts": [{"text": "Be brief."}]} and sent["generationConfig"] == {
        "temperature": 0.5
    }
    await comm.disconnect()
    (row,) = await rows_after_flush(usage_rows)
    assert (row.dialect, row.endpoint, row.status, row.streamed, row.client_disconnected) == (
        "sessions",
        "ws.message",
        200,
        True,
        False,
    )


async def test_first_message_auth_and_resume_sends_history(api_key, fake_gemini):
    comm = await connected()
    await comm.send_json_to({"type": "auth", "key": api_key})
    assert await comm.receive_json_from() == {"type": "ready", "user": "alice", "auth": "message"}
    chat_id = await chat(comm)
    await comm.send_json_to({"type": "message", "text": "first"})
    await until(comm, "done")
    await comm.disconnect()

    again = await connected()
    await again.send_json_to({"type": "auth", "key": api_key})
    await until(again, "ready")
    await again.send_json_to({"type": "resume", "chat_id": chat_id})
    _, resumed = await until(again, "resumed")
    assert resumed["history"] == [
        {"role": "user", "text": "first"},
        {"role": "model", "text": "Hello from fake Gemini: first"},
    ]
    await again.send_json_to({"type": "message", "text": "second"})
    _, done = await until(again, "done")
    assert done["text"] == "Hello from fake Gemini: second"
    assert contents_text(fake_gemini.requests_to("streamGenerateContent")[-1]["json"]) == [
        ("user", "first"),
        ("model", "Hello from fake Gemini: first"),
        ("user", "second"),
    ]
    await again.send_json_to({"type": "end"})
    assert (await until(again, "ended"))[1] == {"type": "ended", "chat_id": chat_id}
    await again.send_json_to({"type": "resume", "chat_id": chat_id})
    _, error = await until(again, "error")
    assert error["code"] == "chat_not_found"
    await again.disconnect()


@pytest.mark.parametrize("first", [{"type": "auth", "key": "gw-wrong"}, {"type": "start", "model": MODEL}])
async def test_bad_or_missing_auth_closes_with_4401(user, first):
    comm = await connected()
    await comm.send_json_to(first)
    error = await comm.receive_json_from()
    assert error["type"] == "error" and error["code"] == "invalid_api_key"
    assert await comm.receive_output() == {"type": "websocket.close", "code": 4401}


async def test_bad_header_key_closes_with_4401(user):
    comm = await connected(*headers("gw-not-a-key"))
    assert (await comm.receive_json_from())["code"] == "invalid_api_key"
    assert (await comm.receive_output())["code"] == 4401


async def test_a_key_revoked_while_connected_stops_working(api_key, user, fake_gemini):
    from accounts import authentication
    from accounts.services import revoke_key

    comm = await connected(*headers(api_key))
    await until(comm, "ready")
    await chat(comm)
    await sync_to_async(revoke_key)("laptop")
    authentication.clear_cache()  # else within GATEWAY_KEY_CACHE_SECONDS
    await comm.send_json_to({"type": "message", "text": "still there?"})
    error = await comm.receive_json_from()
    assert error == {"type": "error", "code": "invalid_api_key", "message": "This API key has been revoked."}
    assert (await comm.receive_output())["code"] == 4401
    assert fake_gemini.requests_to("streamGenerateContent") == []


async def test_a_socket_that_never_authenticates_is_closed(user, monkeypatch):
    from proxy_app.dialects.sessions import websocket as consumers

    monkeypatch.setattr(consumers, "AUTH_TIMEOUT_SECONDS", 0.2)
    comm = await connected()
    error = await comm.receive_json_from(timeout=2)
    assert error["code"] == "invalid_api_key" and "No authentication" in error["message"]
    assert (await comm.receive_output())["code"] == 4401


async def test_protocol_errors_keep_the_socket_open(api_key, fake_gemini, user, django_user_model):
    comm = await connected(*headers(api_key))
    await until(comm, "ready")
    await comm.send_to(text_data="{not json")
    assert (await comm.receive_json_from())["code"] == "invalid_json"
    await comm.send_json_to({"type": "dance"})
    assert (await comm.receive_json_from())["code"] == "unknown_type"
    await comm.send_json_to({"type": "message", "text": "hi"})
    assert (await comm.receive_json_from())["code"] == "no_chat"
    await comm.send_json_to({"type": "start", "model": "no-such-model"})
    assert (await comm.receive_json_from())["code"] == "model_not_found"
    await comm.send_json_to({"type": "cancel"})
    assert (await comm.receive_json_from())["code"] == "nothing_to_cancel"
    bob = await sync_to_async(django_user_model.objects.create_user)(username="bob")
    foreign = await sync_to_async(ChatSession.objects.create)(user=bob, model=MODEL)
    await comm.send_json_to({"type": "resume", "chat_id": foreign.public_id})
    assert (await comm.receive_json_from())["code"] == "chat_not_found"
    await chat(comm)
    fake_gemini.script("slow", delay=0.5)
    await comm.send_json_to({"type": "message", "text": "one"})
    await comm.send_json_to({"type": "message", "text": "two"})
    busy = await comm.receive_json_from()
    assert busy["type"] == "error" and busy["code"] == "chat_busy"
    _, done = await until(comm, "done")
    assert done["text"] == "Hello from fake Gemini: one"
    await comm.disconnect()


async def test_cancel_mid_answer_ends_upstream_records_usage_and_keeps_partial(api_key, fake_gemini, usage_rows):
    fake_gemini.chunk_delay = 0.2
    fake_gemini.script("text", chunks=[f"w{i} " for i in range(30)])
    comm = await connected(*headers(api_key))
    await until(comm, "ready")
    chat_id = await chat(comm)
    await comm.send_json_to({"type": "message", "text": "a long one"})
    first = await comm.receive_json_from(timeout=5)
    assert first == {"type": "delta", "text": "w0 "}
    await comm.send_json_to({"type": "cancel"})
    events, cancelled = await until(comm, "cancelled")
    assert cancelled == {"type": "cancelled", "chat_id": chat_id}
    assert all(e["type"] == "delta" for e in events[:-1])
    streamed = "w0 " + "".join(e["text"] for e in events[:-1])
    assert fake_gemini.requests_to("streamGenerateContent")[-1]["completed"] is False  # upstream call ended

    (row,) = await rows_after_flush(usage_rows)
    assert (row.status, row.client_disconnected, row.error_code, row.streamed) == (
        499,
        True,
        "client_disconnected",
        True,
    )
    assert row.completion_tokens > 0 and row.prompt_tokens > 0
    saved = await sync_to_async(ChatSession.objects.get)(public_id=chat_id)
    assert saved.history == [
        {"role": "user", "text": "a long one"},
        {"role": "model", "text": streamed, "partial": True},
    ]
    assert saved.lock_token == ""

    await comm.send_json_to({"type": "message", "text": "next"})  # the session goes on, partial answer in context
    await until(comm, "done")
    assert contents_text(fake_gemini.requests_to("streamGenerateContent")[-1]["json"])[1] == ("model", streamed)
    await comm.disconnect()


async def test_dropped_socket_ends_upstream_and_records_usage(api_key, fake_gemini, usage_rows):
    fake_gemini.chunk_delay = 0.2
    fake_gemini.script("text", chunks=[f"w{i} " for i in range(30)])
    comm = await connected(*headers(api_key))
    await until(comm, "ready")
    chat_id = await chat(comm)
    await comm.send_json_to({"type": "message", "text": "go on"})
    assert (await comm.receive_json_from(timeout=5))["type"] == "delta"
    await comm.disconnect(timeout=5)
    (row,) = await rows_after_flush(usage_rows)
    assert (row.status, row.client_disconnected, row.endpoint) == (499, True, "ws.message")
    saved = await sync_to_async(ChatSession.objects.get)(public_id=chat_id)
    assert saved.history[1]["partial"] is True and saved.lock_token == ""
    assert fake_gemini.requests_to("streamGenerateContent")[-1]["completed"] is False


async def test_cancel_before_the_first_token_keeps_nothing(api_key, fake_gemini, usage_rows):
    fake_gemini.script("slow", delay=2.0)
    comm = await connected(*headers(api_key))
    await until(comm, "ready")
    chat_id = await chat(comm)
    await comm.send_json_to({"type": "message", "text": "hello?"})
    await asyncio.sleep(0.3)
    await comm.send_json_to({"type": "cancel"})
    await until(comm, "cancelled")
    (row,) = await rows_after_flush(usage_rows)
    assert (row.status, row.client_disconnected) == (499, True)
    saved = await sync_to_async(ChatSession.objects.get)(public_id=chat_id)
    assert saved.history == [] and saved.lock_token == ""
    await comm.disconnect()


def _login_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def test_session_cookie_auth_for_the_page_same_origin_only(user, fake_gemini, usage_rows):
    cookie = await sync_to_async(_login_cookie)(user)
    comm = await connected(*headers(cookie=f"sessionid={cookie}", host="gw.test:8000", origin="http://gw.test:8000"))
    assert await comm.receive_json_from() == {"type": "ready", "user": "alice", "auth": "session"}
    await chat(comm)
    await comm.send_json_to({"type": "message", "text": "from the page"})
    await until(comm, "done")
    await comm.disconnect()
    (row,) = await rows_after_flush(usage_rows)
    owner = await sync_to_async(lambda: (row.api_key.name, row.user_id))()
    assert owner == ("web-chat", user.pk)  # usage under the member's web key

    foreign = await connected(*headers(cookie=f"sessionid={cookie}", host="gw.test:8000", origin="http://evil.test"))
    assert await foreign.receive_nothing(timeout=0.3)  # the cookie is ignored: it must authenticate itself
    await foreign.send_json_to({"type": "start", "model": MODEL})
    assert (await foreign.receive_json_from())["code"] == "invalid_api_key"


async def test_revoked_web_key_shuts_the_page_out(user, issue):
    from accounts.services import revoke_key
    from proxy_app.chat import sessions

    identity = await sessions.web_identity(user)
    await sync_to_async(revoke_key)(identity.prefix)
    cookie = await sync_to_async(_login_cookie)(user)
    comm = await connected(*headers(cookie=f"sessionid={cookie}"))
    error = await comm.receive_json_from()
    assert error["code"] == "invalid_api_key" and "web-chat" in error["message"]
    assert (await comm.receive_output())["code"] == 4401


# ------------------------------------------------------------------------------ real daphne


class FakeGeminiServer:
    def __init__(self, chunk_delay: float = 0.05) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.gemini", "--port", str(self.port), "--chunk-delay", str(chunk_delay)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{self.url}/_fake/requests", timeout=5)
                return
            except httpx.TransportError:
                assert self.proc.poll() is None, self.proc.stdout.read()
                assert time.monotonic() < deadline, "fake Gemini did not start"
                time.sleep(0.1)

    def script(self, kind: str, **kw) -> None:
        httpx.post(f"{self.url}/_fake/script", json={"kind": kind, **kw}).raise_for_status()

    def generate_requests(self) -> list[dict]:
        return [
            r
            for r in httpx.get(f"{self.url}/_fake/requests").json()
            if r["action"] == "streamGenerateContent" or r["action"] == "generateContent"
        ]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=20)


@pytest.fixture
def served(tmp_path):
    """A migrated SQLite gateway environment pointed at a served fake Gemini, and a member key."""
    fake = FakeGeminiServer()
    env = gateway_env(
        tmp_path, GEMINI_API_KEY="test-upstream-key", GEMINI_BASE_URL=fake.url, GATEWAY_USAGE_FLUSH_SECONDS="0.1"
    )
    assert manage(env, "migrate", "--noinput").returncode == 0
    key = manage(env, "issue_token", "dora", "--create-user").stdout.strip().splitlines()[-1]
    yield env, key, fake, tmp_path / "gw.sqlite3"
    fake.stop()


def ws_url(server: Gateway) -> str:
    return f"ws://127.0.0.1:{server.port}/ws/chat/"


def db_rows(path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


async def _recv_until(ws, kind: str) -> tuple[list[dict], dict]:
    seen = []
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), 10))
        seen.append(event)
        if event["type"] == kind:
            return seen, event


def test_real_client_against_daphne_stream_cancel_drop_restart_and_two_processes(served):
    from websockets.asyncio.client import connect

    env, key, fake, db = served
    auth = {"Authorization": f"Bearer {key}"}

    async def stream_then_cancel(server) -> str:
        async with connect(ws_url(server), additional_headers=auth) as ws:
            assert (await _recv_until(ws, "ready"))[1]["auth"] == "header"
            await ws.send(json.dumps({"type": "start", "model": MODEL}))
            chat_id = (await _recv_until(ws, "started"))[1]["chat_id"]
            await ws.send(json.dumps({"type": "message", "text": "one two three four five"}))
            events, done = await _recv_until(ws, "done")
            assert len([e for e in events if e["type"] == "delta"]) > 3  # token by token
            assert done["text"] == "Hello from fake Gemini: one two three four five"
            await asyncio.to_thread(fake.script, "text", chunks=[f"c{i} " for i in range(40)], between=0.2)
            await ws.send(json.dumps({"type": "message", "text": "long"}))
            assert json.loads(await ws.recv())["type"] == "delta"
            await ws.send(json.dumps({"type": "cancel"}))
            await _recv_until(ws, "cancelled")
            return chat_id

    async def drop(server, chat_id: str) -> None:
        ws = await connect(ws_url(server))
        await ws.send(json.dumps({"type": "auth", "key": key}))
        await _recv_until(ws, "ready")
        await ws.send(json.dumps({"type": "resume", "chat_id": chat_id}))
        await _recv_until(ws, "resumed")
        await asyncio.to_thread(fake.script, "text", chunks=[f"d{i} " for i in range(40)], between=0.2)
        await ws.send(json.dumps({"type": "message", "text": "dropped"}))
        assert json.loads(await ws.recv())["type"] == "delta"
        ws.transport.abort()  # no close handshake: the socket just goes away

    def wait_rows(count: int) -> list[tuple]:
        deadline = time.monotonic() + 15
        while (
            len(
                rows := db_rows(
                    db, "SELECT status, client_disconnected, endpoint FROM proxy_app_usagerecord ORDER BY id"
                )
            )
            < count
        ):
            assert time.monotonic() < deadline, rows
            time.sleep(0.1)
        return rows

    first, second = Gateway(env), Gateway(env)
    try:
        chat_id = asyncio.run(stream_then_cancel(first))
        asyncio.run(drop(second, chat_id))  # another process serves the same session
        rows = wait_rows(3)
        assert rows == [(200, 0, "ws.message"), (499, 1, "ws.message"), (499, 1, "ws.message")]
        deadline = time.monotonic() + 10
        while db_rows(db, "SELECT lock_token FROM proxy_app_chatsession") != [("",)]:  # partial answer saved
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # The second process's answer used the history the first process stored.
        reply = httpx.post(
            f"{second.url}/send_message", headers=auth, json={"chat_id": chat_id, "message": "more", "user_id": "dora"}
        )
        assert reply.status_code == 200, reply.text
    finally:
        first.stop()
        log = second.stop()
    assert key.split("_", 1)[1] not in log

    restarted = Gateway(env)  # a restart: nothing but the database carries the session
    try:
        reply = httpx.post(
            f"{restarted.url}/send_message", headers=auth, json={"chat_id": chat_id, "message": "after restart"}
        )
        assert reply.status_code == 200 and reply.json()["response"] == "Hello from fake Gemini: after restart"
    finally:
        restarted.stop()
    contents = fake.generate_requests()[-1]["json"]["contents"]
    said = [(c["role"], "".join(p["text"] for p in c["parts"])) for c in contents]
    assert said[0] == ("user", "one two three four five")
    assert [text for role, text in said if role == "user"] == [
        "one two three four five",
        "long",
        "dropped",
        "more",
        "after restart",
    ]
    assert all(text.startswith(("c0", "d0")) for role, text in said[3:6:2])  # partial answers kept
    assert wait_rows(5)[-2:] == [(200, 0, "send_message"), (200, 0, "send_message")]


def test_daphne_refuses_ws_without_a_key_and_keeps_keys_out_of_logs(served):
    from websockets.asyncio.client import connect

    env, key, fake, db = served

    async def talk(server):
        async with connect(ws_url(server)) as ws:
            await ws.send(json.dumps({"type": "message", "text": "hi"}))
            error = json.loads(await ws.recv())
            assert error["code"] == "invalid_api_key"
            await ws.wait_closed()
            assert ws.close_code == 4401

    server = Gateway(env)
    try:
        asyncio.run(talk(server))
    finally:
        server.stop()
