"""Upstream faults on real processes (issue 13, item 6, and the first-byte timeout of 2c): an upstream that
refuses connections, one that accepts and never answers, and one whose stream is slow but alive. Each:
the client's status and error shape in its own dialect, and the usage row.

Resets mid-stream, malformed JSON, an HTML error page and 429 with Retry-After are covered in process
by tests/test_api_errors.py (test_upstream_break_mid_stream_is_in_band_error, test_non_json_upstream_reply_is_502,
test_upstream_errors_map_to_statuses) and tests/test_upstream_refusals.py.
"""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from tests.conftest import free_port
from tests.fuzz_stack import Stack

pytestmark = pytest.mark.fuzz
CHAT = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]}
GEMINI = {"contents": [{"parts": [{"text": "hi"}]}]}


def calls(key: str) -> list[tuple[str, str, dict, dict]]:
    """(dialect, path, headers, body): one chat per dialect."""
    bearer = {"authorization": f"Bearer {key}"}
    return [
        ("openai", "/v1/chat/completions", bearer, CHAT),
        ("gemini", "/v1beta/models/gemini-2.5-flash:generateContent", {"x-goog-api-key": key}, GEMINI),
        ("anthropic", "/v1/messages", {"x-api-key": key}, {**CHAT, "max_tokens": 16}),
        ("ollama", "/api/chat", bearer, {**CHAT, "stream": False}),
    ]


def error_of(dialect: str, body: dict) -> tuple:
    """The error's (status word, code) as each dialect names them."""
    if dialect == "openai":
        return body["error"]["type"], body["error"]["code"]
    if dialect == "gemini":
        return body["error"]["status"], body["error"]["code"]
    if dialect == "anthropic":
        return body["type"], body["error"]["type"]
    return ("error", type(body["error"]).__name__)


class SilentUpstream:
    """Accepts connections, reads what arrives, never answers a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)  # kept open, never written to

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


@pytest.fixture(scope="module")
def silent_stack(tmp_path_factory):
    upstream = SilentUpstream()
    stack = Stack(
        tmp_path_factory.mktemp("silent"),
        upstream_url=upstream.url,
        GATEWAY_UPSTREAM_FIRST_BYTE_TIMEOUT="1.5",
        GATEWAY_UPSTREAM_READ_TIMEOUT="120",
    )
    yield stack
    stack.stop()
    upstream.close()


def test_upstream_that_never_answers_is_a_504_after_the_first_byte_timeout(silent_stack):
    expected = {
        "openai": ("server_error", "timeout"),
        "gemini": ("DEADLINE_EXCEEDED", 504),
        "anthropic": ("error", "timeout_error"),
        "ollama": ("error", "str"),
    }
    for dialect, path, headers, body in calls(silent_stack.key):
        started = time.monotonic()
        resp = httpx.post(
            f"{silent_stack.url}{path}", json=body, headers={**headers, "x-request-id": f"silent-{dialect}"}, timeout=30
        )  # noqa: E501
        took = time.monotonic() - started
        assert resp.status_code == 504, (dialect, resp.text)
        assert 1.4 <= took < 5, (dialect, took)  # the first-byte timeout (1.5 s), not the read timeout (120 s)
        assert error_of(dialect, resp.json()) == expected[dialect], resp.text
        assert "did not start its answer in time" in resp.text
    rows = {rid: (status, code) for rid, status, code in silent_stack.rows() if rid.startswith("silent-")}
    assert rows == {f"silent-{d}": (504, "timeout") for d in expected}


def test_upstream_that_never_answers_a_stream_is_a_504_too(silent_stack):
    resp = httpx.post(
        f"{silent_stack.url}/v1/chat/completions",
        json={**CHAT, "stream": True},
        headers={"authorization": f"Bearer {silent_stack.key}"},
        timeout=30,
    )
    assert resp.status_code == 504 and resp.json()["error"]["code"] == "timeout"


@pytest.fixture(scope="module")
def refused_stack(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("refused"), upstream_url=f"http://127.0.0.1:{free_port()}")
    yield stack
    stack.stop()


def test_upstream_that_refuses_connections_is_a_503_in_each_dialect(refused_stack):
    expected = {
        "openai": ("server_error", "service_unavailable"),
        "gemini": ("UNAVAILABLE", 503),
        "anthropic": ("error", "overloaded_error"),
        "ollama": ("error", "str"),
    }
    for dialect, path, headers, body in calls(refused_stack.key):
        resp = httpx.post(
            f"{refused_stack.url}{path}",
            json=body,
            headers={**headers, "x-request-id": f"refused-{dialect}"},
            timeout=30,
        )  # noqa: E501
        assert resp.status_code == 503, (dialect, resp.text)
        assert error_of(dialect, resp.json()) == expected[dialect], resp.text
        assert "could not connect to upstream" in resp.text
    rows = {rid: (status, code) for rid, status, code in refused_stack.rows() if rid.startswith("refused-")}
    assert rows == {f"refused-{d}": (503, "service_unavailable") for d in expected}


def test_slow_but_alive_stream_is_not_cut_by_the_first_byte_timeout(tmp_path):
    """Events 1.5 s apart, a first-byte timeout of 1 s: the answer started at once, so it streams on."""
    stack = Stack(
        tmp_path,
        fake_args=("--chunk-delay", "1.5"),
        GATEWAY_UPSTREAM_FIRST_BYTE_TIMEOUT="1",
        GATEWAY_UPSTREAM_READ_TIMEOUT="10",
    )
    try:
        started = time.monotonic()
        lines = []
        with httpx.stream(
            "POST",
            f"{stack.url}/v1/chat/completions",
            json={**CHAT, "stream": True},
            headers={"authorization": f"Bearer {stack.key}", "x-request-id": "slow-stream"},
            timeout=30,
        ) as resp:
            assert resp.status_code == 200
            lines = [line for line in resp.iter_lines() if line.startswith("data:")]
        assert lines[-1] == "data: [DONE]" and len(lines) >= 4, lines
        assert time.monotonic() - started > 3  # it really was slow: several gaps longer than 1 s
        assert stack.rows() == [("slow-stream", 200, "")]
    finally:
        stack.stop()
