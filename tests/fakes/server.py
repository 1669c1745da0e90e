"""The plumbing every fake upstream shares (tests/fakes/gemini.py, tests/fakes/openai_compat.py).

A fake subclasses `FakeServer` and supplies the API itself: `_route` (one recorded request ->
`Reply`), its error replies and its JSON replies. This module serves that core two ways:

- in process: ``httpx.MockTransport(fake.handler)``, streamed bodies kept incremental;
- as a real server: ``fake.asgi`` (ASGI3), run under daphne by `serve` (``python -m
  tests.fakes.<name> --port N``). ``POST /_fake/script`` (JSON: kind, on, kwargs),
  ``POST /_fake/reset`` and ``GET /_fake/requests`` script and inspect a served fake over HTTP.

It also holds what the replies are made of: `Reply`, `reply_body` (a body, optionally slowed down or
broken part way with `StreamBroken`), request recording and the one-shot script queue.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Self
from urllib.parse import parse_qsl

import httpx


class StreamBroken(Exception):
    """Raised inside a reply body: the connection drops before the body is complete."""

    def __init__(self, error: str = "read") -> None:
        super().__init__("peer closed connection without sending complete message body")
        self.error = error


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: AsyncIterator[bytes]


async def reply_body(frames: list[bytes], between: float = 0.0, broken: str | None = None) -> AsyncIterator[bytes]:
    """The frames as a reply body, `between` seconds apart; `broken` drops the connection after them."""
    for number, frame in enumerate(frames):
        if number and between:
            await asyncio.sleep(between)
        yield frame
    if broken:
        raise StreamBroken(broken)


def maybe_json(body: bytes) -> Any:
    try:
        return json.loads(body) if body.strip() else None
    except ValueError:
        return None


class RawReply(Exception):
    """Carries a `raw` script out of the routing code: the reply bypasses everything."""

    def __init__(self, kw: dict, between: float, content_type: str) -> None:
        super().__init__("raw reply")
        self.kw, self.between, self.content_type = kw, between, content_type

    def reply(self) -> Reply:
        body = self.kw.get("body", b"")
        frames = body if isinstance(body, list) and all(isinstance(b, (str, bytes)) for b in body) else [body]
        frames = [
            f.encode()
            if isinstance(f, str)
            else f
            if isinstance(f, bytes)
            else json.dumps(f, indent=2, ensure_ascii=False).encode()
            for f in frames
        ]
        content_type = self.kw.get("content_type") or self.content_type
        headers = [("content-type", content_type), *dict(self.kw.get("headers") or {}).items()]
        return Reply(self.kw.get("status", 200), headers, reply_body(frames, self.between))


class FakeServer:
    """Request recording, the script queue, the adapters and the /_fake/ control endpoints.

    Subclasses set the class attributes and implement `_route`, `_error_reply`, `_malformed_reply`
    and `_json_reply`; they override `script` only to give `on` its default and list their kinds.
    """

    SCRIPT_KINDS: ClassVar[set[str]]
    SCRIPT_TARGETS: ClassVar[set[str]]
    ROUTE_FIELD: ClassVar[str]  # the record key naming what was called ("action", "endpoint")
    ERROR: ClassVar[type[Exception]]  # the fake API's own error reply, raised anywhere in _route
    JSON_TYPE: ClassVar[str]  # the default content type of `raw` scripts

    def __init__(self, *, chunk_delay: float, keep_requests: int | None) -> None:
        self.chunk_delay = chunk_delay  # seconds between streamed events
        self.keep_requests = keep_requests  # record only the latest N (long-running servers)
        self.requests: list[dict] = []
        self.scripts: list[dict] = []

    # ----------------------------------------------------------------- test-facing helpers

    def script(self, kind: str, *, on: str, **kw: Any) -> Self:
        """Queue a one-shot behaviour for the next call to `on` (one of SCRIPT_TARGETS, or "any")."""
        if kind not in self.SCRIPT_KINDS:
            raise ValueError(f"unknown script kind {kind!r}; choose from {sorted(self.SCRIPT_KINDS)}")
        if on not in self.SCRIPT_TARGETS:
            raise ValueError(f"unknown script target {on!r}; choose from {sorted(self.SCRIPT_TARGETS)}")
        self.scripts.append({"kind": kind, "on": on, "kw": kw})
        return self

    def reset(self) -> None:
        self.requests.clear()
        self.scripts.clear()

    @property
    def last_request(self) -> dict:
        return self.requests[-1]

    def requests_to(self, name: str) -> list[dict]:
        """Recorded requests for one action / endpoint (the fake's ROUTE_FIELD)."""
        return [r for r in self.requests if r[self.ROUTE_FIELD] == name]

    # ----------------------------------------------------------------- adapters

    async def handler(self, request: httpx.Request) -> httpx.Response:
        """`httpx.MockTransport(fake.handler)`: streamed bodies stay incremental."""
        reply = await self.respond(
            request.method, request.url.path, dict(request.url.params), dict(request.headers), await request.aread()
        )
        return httpx.Response(reply.status, headers=reply.headers, stream=_HttpxStream(reply.body))

    async def asgi(self, scope: dict, receive: Callable, send: Callable) -> None:
        """ASGI3 app; a broken stream raises out of it so the server drops the connection."""
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body, more = body + message.get("body", b""), message.get("more_body", False)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        reply = await self.respond(scope["method"], scope["path"], query, headers, body)
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers],
            }
        )
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            async for chunk in reply.body:
                if gone.done():  # the client left: stop generating, like the real API would
                    await reply.body.aclose()  # type: ignore[attr-defined]
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gone.cancel()

    # ----------------------------------------------------------------- the core

    async def respond(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> Reply:
        """Handle one HTTP request; records it first, then routes it."""
        if path.startswith("/_fake/"):
            return self._control(method.upper(), path, body)
        record: dict[str, Any] = {
            "method": method.upper(),
            "path": path,
            "query": dict(query),
            "headers": {k.lower(): v for k, v in headers.items()},
            "body": body,
            "json": maybe_json(body),
            "model": None,
            self.ROUTE_FIELD: None,
            "completed": False,
        }
        self.requests.append(record)
        if self.keep_requests is not None and len(self.requests) > self.keep_requests:
            del self.requests[0]
        try:
            reply = await self._route(record)
        except self.ERROR as error:
            reply = self._error_reply(error, record)
        except RawReply as raw:
            reply = raw.reply()
        except (TypeError, ValueError, AttributeError, KeyError) as error:
            # A body of the wrong shape: the real API answers 400, it does not crash.
            record["fake_error"] = repr(error)
            reply = self._malformed_reply(error, record)
        reply.body = _track(record, reply.body)
        return reply

    async def _pop_script(self, target: str) -> dict | None:
        """Take the first script for this target (or "any"); apply its delay; raise a `raw` one."""
        script = next((s for s in self.scripts if s["on"] in (target, "any")), None)
        if script is None:
            return None
        self.scripts.remove(script)
        kw = script["kw"]
        await asyncio.sleep(kw.get("delay", 0))
        if script["kind"] == "raw":
            raise RawReply(kw, kw.get("between", self.chunk_delay), self.JSON_TYPE)
        return script

    def _control(self, method: str, path: str, body: bytes) -> Reply:
        """Test-only endpoints so a served fake can be scripted and inspected over HTTP."""
        if method == "POST" and path == "/_fake/script":
            kw = dict(maybe_json(body) or {})
            try:
                self.script(kw.pop("kind", ""), **kw)
            except (TypeError, ValueError) as error:
                return self._json_reply({"error": str(error)}, 400)
            return self._json_reply({"queued": len(self.scripts)})
        if method == "POST" and path == "/_fake/reset":
            self.reset()
            return self._json_reply({})
        if method == "GET" and path == "/_fake/requests":
            return self._json_reply([{k: v for k, v in r.items() if k != "body"} for r in self.requests])
        return self._json_reply({"error": "unknown control endpoint"}, 404)

    # ----------------------------------------------------------------- what a fake supplies

    async def _route(self, record: dict) -> Reply:
        raise NotImplementedError

    def _error_reply(self, error: Exception, record: dict) -> Reply:
        raise NotImplementedError

    def _malformed_reply(self, error: Exception, record: dict) -> Reply:
        raise NotImplementedError

    def _json_reply(self, payload: Any, status: int = 200) -> Reply:
        raise NotImplementedError


class _HttpxStream(httpx.AsyncByteStream):
    """Feeds the reply to httpx chunk by chunk; a broken stream becomes an httpx error."""

    def __init__(self, body: AsyncIterator[bytes]) -> None:
        self._body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._body:
                yield chunk
        except StreamBroken as broken:
            kind = httpx.RemoteProtocolError if broken.error == "protocol" else httpx.ReadError
            raise kind(str(broken)) from None

    async def aclose(self) -> None:
        await self._body.aclose()  # type: ignore[attr-defined]


async def _disconnected(receive: Callable) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _track(record: dict, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for chunk in body:
        yield chunk
    record["completed"] = True


# --------------------------------------------------------------------------- standalone server


def env_settings(prefix: str, default_key: str) -> tuple[str, float]:
    """(API key, chunk delay) from <prefix>_API_KEY / <prefix>_CHUNK_DELAY, which `parse_args` sets."""
    return os.environ.get(f"{prefix}_API_KEY", default_key), float(os.environ.get(f"{prefix}_CHUNK_DELAY", "0"))


def parse_args(
    argv: list[str] | None,
    *,
    module: str,
    description: str,
    port: int,
    prefix: str,
    default_key: str,
    key_help: str | None = None,
) -> argparse.Namespace:
    """--port / --host / --api-key / --chunk-delay, exported as env vars for the `app` factory."""
    key, delay = env_settings(prefix, default_key)
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--api-key", default=key, help=key_help)
    parser.add_argument("--chunk-delay", type=float, default=delay)
    parser.add_argument(
        "--server",
        choices=("daphne", "uvicorn"),
        default="daphne",
        help="uvicorn (httptools, uvloop) costs less CPU: the benchmark's baseline uses it",
    )
    args = parser.parse_args(argv)
    os.environ[f"{prefix}_API_KEY"] = args.api_key
    os.environ[f"{prefix}_CHUNK_DELAY"] = str(args.chunk_delay)
    return args


def serve(app: str, host: str, port: int, server: str = "daphne") -> None:
    """Run `app` ("module:attribute") under daphne (or uvicorn) until interrupted."""
    if server == "uvicorn":  # closes the socket itself when the app fails mid-body
        import uvicorn

        uvicorn.run(
            app,
            host=host,
            port=port,
            loop="uvloop",
            http="httptools",
            access_log=False,
            log_level="warning",
            lifespan="off",
            interface="asgi3",
        )
        return
    from daphne.cli import CommandLineInterface  # imported late: it installs a Twisted reactor

    _drop_connection_on_broken_stream()
    CommandLineInterface().run(["-b", host, "-p", str(port), app])


def _drop_connection_on_broken_stream() -> None:
    """Make daphne drop the connection when the app fails after the response started.

    ASGI has no "abort" message; servers such as uvicorn close the socket when the app raises
    mid-body. Daphne instead tries to send a 500 page, which fails once headers are out, and the
    client then waits forever. Only this standalone runner patches it (daphne notices the failed
    app within its 1 s reaping tick).
    """
    from daphne.http_protocol import WebRequest

    send_500 = WebRequest.handle_exception

    def handle_exception(request: Any, exception: BaseException) -> None:
        if not request._response_started:
            return send_500(request, exception)
        if getattr(exception, "error", None) == "protocol":
            request.transport.loseConnection()  # clean close: an incomplete chunked body
        else:
            request.transport.abortConnection()  # reset: the client's read fails

    WebRequest.handle_exception = handle_exception
