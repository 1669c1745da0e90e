"""The hot path's edges: a non-stream client that leaves, the cap on open upstream calls, and the
launcher's worker rule. (Speed itself is measured in bench/, never asserted here.)"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import httpx
import openai
import pytest

from proxy_app.upstreams import http as upstream_http
from tests.test_api_limits import backend, limits, wait_until  # noqa: F401  (fixture)
from tests.test_server import ROOT, gateway_env

CHAT = [{"role": "user", "content": "hello"}]


def test_non_stream_disconnect_records_usage_and_frees_the_slot(
    backend,
    gateway_url,
    api_key,
    fake_gemini,
    openai_client,
    usage_rows,  # noqa: F811
):
    limits("--token", "laptop", "--max-parallel", "1")
    fake_gemini.script("slow", delay=1.5)  # the upstream takes its time; the client gives up first
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{gateway_url}/v1/chat/completions",
            headers={"authorization": f"Bearer {api_key}"},
            json={"model": "gemini-2.5-flash", "messages": CHAT},
            timeout=0.4,
        )

    def recorded() -> bool:
        return any(r.status == 499 for r in usage_rows())

    wait_until(recorded)
    (row,) = usage_rows()
    assert row.client_disconnected and not row.streamed and row.error_code == "client_disconnected"
    assert row.prompt_tokens > 0 and row.token_source == "estimated"  # the upstream was asked: billed
    # The in-flight slot came back: the next request is admitted, not refused with "in flight".
    answer = openai_client.chat.completions.create(model="gemini-2.5-flash", messages=CHAT)
    assert answer.choices[0].message.content


@pytest.fixture
def one_upstream_slot(settings):
    settings.UPSTREAM_MAX_CONNECTIONS = 1
    upstream_http.reset_clients()  # new clients, built with the new cap
    yield
    settings.UPSTREAM_MAX_CONNECTIONS = 4000
    upstream_http.reset_clients()


def test_full_upstream_pool_is_a_clear_503_in_each_dialect(
    gateway_url, api_key, fake_gemini, openai_client, one_upstream_slot, usage_rows
):
    import ollama

    fake_gemini.chunk_delay = 0.2
    fake_gemini.script("text", chunks=[f"w{i} " for i in range(15)])
    holding, release = threading.Event(), threading.Event()

    def hold_the_only_slot():
        with httpx.stream(
            "POST",
            f"{gateway_url}/v1/chat/completions",
            headers={"authorization": f"Bearer {api_key}"},
            json={"model": "gemini-2.5-flash", "messages": CHAT, "stream": True},
            timeout=20,
        ) as resp:
            for line in resp.iter_lines():
                if "w1" in line:
                    holding.set()
                    release.wait(10)
                    break

    worker = threading.Thread(target=hold_the_only_slot)
    worker.start()
    try:
        assert holding.wait(10)
        with pytest.raises(openai.APIStatusError) as info:
            openai_client.chat.completions.create(model="gemini-2.5-flash", messages=CHAT)
        assert info.value.status_code == 503 and info.value.code == "upstream_capacity"
        assert info.value.response.headers["retry-after"] == "1"
        assert "GATEWAY_UPSTREAM_MAX_CONNECTIONS=1" in info.value.message
        client = ollama.Client(host=gateway_url, headers={"authorization": f"Bearer {api_key}"})
        with pytest.raises(ollama.ResponseError) as refused:
            client.chat(model="gemini-2.5-flash", messages=CHAT, stream=False)
        assert refused.value.status_code == 503 and "upstream calls" in refused.value.error
    finally:
        release.set()
        worker.join(10)

    def served() -> bool:
        try:
            return bool(openai_client.chat.completions.create(model="gemini-2.5-flash", messages=CHAT).choices)
        except openai.APIStatusError:
            return False

    wait_until(served)  # the slot came back when the stream ended
    assert {r.status for r in usage_rows()} >= {499, 503, 200}


def test_several_workers_need_redis(tmp_path):
    env = gateway_env(tmp_path)
    env.pop("REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "gateway_site.serve", "--workers", "2", "-p", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "--workers 2 needs REDIS_URL" in done.stderr and "rate limits, quotas" in done.stderr
    env["REDIS_URL"] = "redis://127.0.0.1:6379/15"
    done = subprocess.run(
        [sys.executable, "-m", "gateway_site.serve", "--workers", "2", "--server", "daphne", "-p", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "daphne serves one process per port" in done.stderr


async def test_upstream_cookies_are_never_kept_or_replayed(upstream_hosts):
    """The shared client serves every user: a Set-Cookie from one reply must not reach another call."""
    seen: list[str | None] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return httpx.Response(200, json={}, headers={"set-cookie": "session=alice-secret; Path=/"})

    upstream_hosts["cookies.test"] = handler
    client = upstream_http.get_client()
    await client.get("http://cookies.test/first")
    await client.get("http://cookies.test/second")
    assert seen == [None, None] and not client.cookies


@pytest.fixture(params=["aiohttp", "httpx"])
def network_transport(request, settings):
    """The real outbound transport (no MockTransport), as GATEWAY_UPSTREAM_TRANSPORT picks it."""
    settings.UPSTREAM_TRANSPORT = request.param
    upstream_http.set_transport(None)
    yield request.param
    upstream_http.set_transport(None)


async def _tcp_server(reply: bytes):
    """A real socket that answers `reply` to any request, then drops the connection."""
    import asyncio

    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_transport_failures_map_to_the_right_status(network_transport):
    """Refused port -> 503, stream cut mid-body -> 502, whole answer -> read; on both transports."""
    from proxy_app.core.errors import UpstreamError, UpstreamUnavailable
    from proxy_app.upstreams.base import upstream_failures
    from tests.conftest import free_port

    client = upstream_http.get_client()
    with pytest.raises(UpstreamUnavailable) as refused, upstream_failures("u"):
        await client.get(f"http://127.0.0.1:{free_port()}/")
    assert refused.value.status == 503

    cut, cut_url = await _tcp_server(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
    whole, whole_url = await _tcp_server(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
    try:
        with pytest.raises(UpstreamError) as broke, upstream_failures("u"):
            await client.get(cut_url)
        assert broke.value.status == 502 and "broke" in broke.value.message
        with upstream_failures("u"):
            assert (await client.get(whole_url)).text == "hello"
        assert upstream_http._clients and client._transport.open == 0  # every slot given back
    finally:
        cut.close()
        whole.close()
        await client.aclose()


def _raw_request(gateway_url: str, head: bytes, body_chunks=()) -> bytes:
    """Send `head` (and body chunks) on a plain socket; the response's first bytes, or b"" on timeout."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(gateway_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head)
        for chunk in body_chunks:
            sock.sendall(chunk)
        answer = b""
        try:
            while not _complete(answer):
                piece = sock.recv(4096)
                if not piece:
                    break
                answer += piece
        except TimeoutError:
            pass
        return answer


def _complete(answer: bytes) -> bool:
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    length = next(
        (line.split(b":")[1] for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")), b"0"
    )
    return len(body) >= int(length)


def test_a_declared_oversize_body_is_refused_before_any_of_it_arrives(gateway_url, api_key, settings):
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\n"
        f"Authorization: Bearer {api_key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {2 * 1024**3}\r\n\r\n"  # 2 GB promised, not one byte sent
    ).encode()
    assert _raw_request(gateway_url, head).startswith(b"HTTP/1.1 413")


def test_an_endless_chunked_body_is_refused_once_it_passes_the_limit(gateway_url, api_key, settings):
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\n"
        f"Authorization: Bearer {api_key}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    piece = b"x" * (1024 * 1024)
    chunks = [b"%x\r\n%s\r\n" % (len(piece), piece)] * (settings.MAX_BODY_BYTES // len(piece) + 2)
    assert _raw_request(gateway_url, head, chunks).startswith(b"HTTP/1.1 413")  # no final chunk ever sent


def test_a_body_that_stops_arriving_gets_408_in_the_dialect_shape(gateway_url, api_key, settings):
    settings.BODY_READ_TIMEOUT = 0.5
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\n"
        f"Authorization: Bearer {api_key}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    ).encode()
    answer = _raw_request(gateway_url, head, [b'{"model": "gemini'])  # 17 of 100 bytes, then nothing
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b'"request_timeout"' in answer  # OpenAI's error shape, with the code


def _nested(depth: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


def test_bodies_that_parse_but_cannot_be_sent_on_are_400_not_500(gateway_url, api_key, fake_gemini):
    """A body nested past what the JSON encoder takes (255 levels; the parser takes 1024) reaches the
    upstream call parsed; re-encoding it fails. That is the client's body: 400 in its dialect's shape."""
    params = _nested(300)
    tool = {"functionDeclarations": [{"name": "f", "description": "d", "parameters": params}]}
    native = httpx.post(
        f"{gateway_url}/v1beta/models/gemini-2.5-flash:generateContent",
        headers={"x-goog-api-key": api_key},
        content=(
            '{"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "tools": [' + json.dumps(tool) + "]}"
        ).encode(),
    )
    assert native.status_code == 400, native.text
    assert native.json()["error"]["status"] == "INVALID_ARGUMENT"
    openai_tool = {"type": "function", "function": {"name": "f", "description": "d", "parameters": params}}
    chat = httpx.post(
        f"{gateway_url}/v1/chat/completions",
        headers={"authorization": f"Bearer {api_key}"},
        content=json.dumps({"model": "gemini-2.5-flash", "messages": CHAT, "tools": [openai_tool]}).encode(),
    )
    assert chat.status_code == 400, chat.text
    assert chat.json()["error"]["type"] == "invalid_request_error"
