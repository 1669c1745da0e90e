"""A faithful fake of Google's Gemini REST API (generativelanguage v1beta) for tests and demos.

One request-handling core (`FakeGemini.respond`: status, headers, async iterator of body bytes)
served two ways:

- in process: ``httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))``;
- as a real server: ``fake.asgi`` (ASGI3), e.g. ``python -m tests.fakes.gemini --port 8001``
  which runs it under daphne. ``POST /_fake/script`` (JSON: kind, on, kwargs), ``POST
  /_fake/reset`` and ``GET /_fake/requests`` script and inspect a served fake over HTTP.

Paths are served under ``/v1beta/`` and ``/v1/`` alike (google-genai 3.x defaults to ``v1``).
Unscripted, generate calls answer deterministically (see `default_generation`); `fake.script()`
queues one-shot behaviours (errors, tool calls, broken streams...). Every request received is
recorded in `fake.requests` as a dict: method, path, query, headers (lower-cased), body (bytes),
json (parsed or None), model, action, completed (body fully sent). Wire facts:
/work/shared/reference/gemini.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable
from urllib.parse import parse_qsl

import httpx

from tests.fakes.gemini_replies import (
    SCRIPT_KINDS, Generation, contents_chars, default_generation, embed_text, embedding_values,
    response_json, scripted_generation, stream_events, tokens,
)
from tests.fakes.gemini_rules import (
    ACTION_METHOD, NO_KEY, GoogleError, bad_request, bearer_rejected, default_models, key_invalid,
    model_not_found, normalise, reject_unknown, scripted_error, validate_generate,
)

DEFAULT_API_KEY = "test-upstream-key"
JSON_TYPE = "application/json; charset=UTF-8"
SSE_TYPE = "text/event-stream"
# Which script queue an URL action consumes from.
OPERATIONS = {
    "generateContent": "generate", "streamGenerateContent": "generate", "countTokens": "count",
    "embedContent": "embed", "batchEmbedContents": "embed",
}
SCRIPT_TARGETS = {"generate", "count", "embed", "models", "any"}
_ERROR_KW = ("status", "message", "status_name", "details", "retry_delay")


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


def _dump(value: Any, indent: int | None = None) -> bytes:
    # Google's SSE lines use `": "` after keys and bare `,`; plain bodies are 2-space indented.
    return json.dumps(value, indent=indent, separators=(",", ": "), ensure_ascii=False).encode()


async def _chunks(frames: list[bytes], between: float = 0.0,
                  broken: str | None = None) -> AsyncIterator[bytes]:
    for number, frame in enumerate(frames):
        if number and between:
            await asyncio.sleep(between)
        yield frame
    if broken:
        raise StreamBroken(broken)


class FakeGemini:
    """In-memory Gemini API. See the module docstring and `script` for the knobs."""

    def __init__(self, api_key: str = DEFAULT_API_KEY, *, chunk_delay: float = 0.0,
                 words_per_chunk: int = 1, embedding_dims: int = 8, pretty_arrays: bool = True,
                 models: list[dict] | None = None, keep_requests: int | None = None) -> None:
        self.api_key = api_key
        self.chunk_delay = chunk_delay          # seconds between streamed events
        self.words_per_chunk = words_per_chunk  # stream granularity of default/plain text
        self.embedding_dims = embedding_dims    # vector size when outputDimensionality is absent
        self.pretty_arrays = pretty_arrays      # JSON-array stream elements indented like Google's
        self.models = default_models() if models is None else models
        self.keep_requests = keep_requests      # record only the latest N (long-running servers)
        self.requests: list[dict] = []
        self.scripts: list[dict] = []

    # ----------------------------------------------------------------- test-facing helpers

    def script(self, kind: str, *, on: str = "generate", **kw: Any) -> FakeGemini:
        """Queue a one-shot behaviour for the next `on` call: generate (both generate actions),
        count, embed (both embed actions), models (list and get) or any. Scripts are FIFO.

        Every kind also takes ``delay`` (seconds before the status line) and ``between``
        (seconds between streamed events, default ``chunk_delay``). Kinds and their kwargs:

        - ``text``: text="...", or chunks=[...] (exact stream split); finish_reason="STOP"
        - ``tool_calls``: calls=[(name, args) | (name, args, id) | {"name", "args", "id"}],
          text=None (a text part before the calls), signature=None (auto: Gemini 3 signs the
          first call; a string forces that signature)
        - ``thinking``: thought="...", text=None, thoughts_tokens=None, signature=None
        - ``blocked``: reason="SAFETY" (no candidates, promptFeedback.blockReason)
        - ``finish``: reason="SAFETY", message=None (no content at all, e.g. MALFORMED_FUNCTION_CALL)
        - ``max_tokens_no_parts``: thoughts_tokens=None (MAX_TOKENS with an empty content)
        - ``logprobs``: top=2, text=None
        - ``error``: status=500, message=None, status_name=None, details=None, retry_delay=None
          (429 gets QuotaFailure/Help/RetryInfo "37s" by default; 503 "The model is overloaded...")
        - ``break_midstream``: after=1 events, error="read" | "protocol" (httpx error raised)
        - ``error_midstream``: after=1 events, then an in-band error (error kwargs as above, 503)
        - ``slow``: delay=, between= (default reply, or text=/chunks=)
        - ``raw``: status=200, body=bytes|str|dict|list-of-chunks, content_type=None, headers={}
        """
        if kind not in SCRIPT_KINDS:
            raise ValueError(f"unknown script kind {kind!r}; choose from {sorted(SCRIPT_KINDS)}")
        if on not in SCRIPT_TARGETS:
            raise ValueError(f"unknown script target {on!r}; choose from {sorted(SCRIPT_TARGETS)}")
        self.scripts.append({"kind": kind, "on": on, "kw": kw})
        return self

    def reset(self) -> None:
        self.requests.clear()
        self.scripts.clear()

    @property
    def last_request(self) -> dict:
        return self.requests[-1]

    def requests_to(self, action: str) -> list[dict]:
        """Recorded requests for one action: generateContent, countTokens, list, get, ..."""
        return [r for r in self.requests if r["action"] == action]

    # ----------------------------------------------------------------- adapters

    async def handler(self, request: httpx.Request) -> httpx.Response:
        """`httpx.MockTransport(fake.handler)`: streamed bodies stay incremental."""
        reply = await self.respond(request.method, request.url.path, dict(request.url.params),
                                   dict(request.headers), await request.aread())
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
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]})
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            async for chunk in reply.body:
                if gone.done():  # the client left: stop generating, like Google would
                    await reply.body.aclose()  # type: ignore[attr-defined]
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gone.cancel()

    # ----------------------------------------------------------------- the core

    async def respond(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
                      body: bytes) -> Reply:
        """Handle one HTTP request; records it first, then routes it."""
        if path.startswith("/_fake/"):
            return self._control(method.upper(), path, body)
        record: dict[str, Any] = {
            "method": method.upper(), "path": path, "query": dict(query),
            "headers": {k.lower(): v for k, v in headers.items()}, "body": body,
            "json": _maybe_json(body), "model": None, "action": None, "completed": False,
        }
        self.requests.append(record)
        if self.keep_requests is not None and len(self.requests) > self.keep_requests:
            del self.requests[0]
        try:
            reply = await self._route(record)
        except GoogleError as error:
            array = record["action"] == "streamGenerateContent" and query.get("alt") != "sse"
            reply = self._error_reply(error, array)
        except _RawReply as raw:
            reply = raw.reply()
        except (TypeError, ValueError, AttributeError, KeyError) as error:
            # A body of the wrong shape: Google answers 400, it does not crash.
            record["fake_error"] = repr(error)
            reply = self._error_reply(GoogleError(400), False)
        reply.body = self._track(record, reply.body)
        return reply

    async def _route(self, record: dict) -> Reply:
        version, _, rest = record["path"].lstrip("/").partition("/")
        if version not in ("v1beta", "v1") or not rest.startswith("models"):
            raise GoogleError(404, "Method not found.")
        self._authenticate(record["headers"], record["query"])
        name, colon, action = rest.rpartition(":") if ":" in rest else (rest, "", "")
        if name == "models" and not colon:
            record["action"] = "list"
            return await self._list_models(record)
        if not name.startswith("models/"):
            raise GoogleError(404, "Method not found.")
        record["model"] = model_id = name[len("models/"):]
        record["action"] = action or "get"
        if record["method"] == "GET" and not colon:
            return await self._get_model(record, model_id, version)
        if record["method"] != "POST" or action not in ACTION_METHOD:
            raise GoogleError(404, "Method not found.")
        model = self._find_model(model_id)
        if model is None or ACTION_METHOD[action] not in model["supportedGenerationMethods"]:
            raise model_not_found(model_id, action, version)
        raw = record["json"] if record["body"].strip() else {}
        if raw is None:
            raise bad_request("Invalid JSON payload received. Unexpected token.")
        if not isinstance(raw, dict):
            raise bad_request('Invalid JSON payload received. Unknown name "": '
                              "Root element must be a message.")
        if action in ("generateContent", "streamGenerateContent"):
            return await self._generate(record, raw, model_id)
        await self._take_script(OPERATIONS[action], model_id)
        if action == "countTokens":
            return _json_reply(self._count_tokens(raw))
        return _json_reply(self._embed(raw, model_id, action))

    def _authenticate(self, headers: dict[str, str], query: dict[str, str]) -> None:
        key = headers.get("x-goog-api-key") or query.get("key")
        if not key:
            raise bearer_rejected() if headers.get("authorization") else GoogleError(403, NO_KEY)
        if key != self.api_key:
            raise key_invalid()

    def _find_model(self, model_id: str) -> dict | None:
        return next((m for m in self.models if m["name"] == f"models/{model_id}"), None)

    async def _take_script(self, operation: str, model_id: str = "") -> dict | None:
        """Pop the first script for this operation; apply its delay; raise error/raw kinds."""
        script = next((s for s in self.scripts if s["on"] in (operation, "any")), None)
        if script is None:
            return None
        self.scripts.remove(script)
        kw = script["kw"]
        await asyncio.sleep(kw.get("delay", 0))
        if script["kind"] == "error":
            raise scripted_error(model=model_id or "gemini-2.5-flash",
                                 **{k: v for k, v in kw.items() if k in _ERROR_KW})
        if script["kind"] == "raw":
            raise _RawReply(kw, kw.get("between", self.chunk_delay))
        return script

    # ----------------------------------------------------------------- operations

    async def _generate(self, record: dict, raw: dict, model: str) -> Reply:
        request = normalise(raw)
        validate_generate(raw, request, model)
        script = await self._take_script("generate", model)
        kind, kw = (script["kind"], script["kw"]) if script else (None, {})
        gen = scripted_generation(kind, kw, request, model) if kind else default_generation(request, model)
        response_id = secrets.token_urlsafe(16)
        between = kw.get("between", self.chunk_delay)
        error = scripted_error(**{"status": 503, **{k: v for k, v in kw.items() if k in _ERROR_KW}})
        if record["action"] == "generateContent":
            if kind == "error_midstream":
                raise error
            payload = _dump(response_json(gen, model, response_id), indent=2)
            if kind == "break_midstream":
                return Reply(200, _headers(JSON_TYPE, len(payload)),
                             _chunks([payload[:len(payload) // 2]], broken=kw.get("error", "read")))
            return Reply(200, _headers(JSON_TYPE, len(payload)), _chunks([payload]))
        return self._stream(gen, model, response_id, record["query"].get("alt") == "sse",
                            kind, kw, between, error)

    def _stream(self, gen: Generation, model: str, response_id: str, sse: bool, kind: str | None,
                kw: dict, between: float, error: GoogleError) -> Reply:
        events = stream_events(gen, model, response_id, self.words_per_chunk)
        if kind in ("break_midstream", "error_midstream"):
            events = events[:kw.get("after", 1)]
        if kind == "error_midstream":
            events.append(error.body())
        frames = [self._frame(event, sse, first=number == 0) for number, event in enumerate(events)]
        broken = kw.get("error", "read") if kind == "break_midstream" else None
        if not sse and not broken:
            frames[-1] += b"]"
        return Reply(200, _headers(SSE_TYPE if sse else JSON_TYPE), _chunks(frames, between, broken))

    def _frame(self, event: dict, sse: bool, first: bool) -> bytes:
        if sse:  # a blank line after every event, the last one included (§9.1)
            return b"data: " + _dump(event) + b"\r\n\r\n"
        element = _dump(event, indent=2 if self.pretty_arrays else None)
        return (b"[" if first else b",\r\n") + element

    def _count_tokens(self, raw: dict) -> dict:
        reject_unknown(raw, {"contents", "generateContentRequest"})
        request = normalise(raw)
        inner = request.get("generateContentRequest") or {}
        contents = request.get("contents") or inner.get("contents") or []
        total = tokens(contents_chars(contents, inner.get("systemInstruction")))
        if not total:
            return {}
        return {"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]}

    def _embed(self, raw: dict, model_id: str, action: str) -> dict:
        request = normalise(raw)
        if action == "embedContent":
            reject_unknown(raw, {"model", "content", "taskType", "title", "outputDimensionality"})
            if not request.get("content"):
                raise bad_request("* EmbedContentRequest.content: content is not specified")
            return {"embedding": {"values": self._vector(request)}}
        reject_unknown(raw, {"model", "requests"})
        items = request.get("requests") or []
        if not items:
            raise bad_request("* BatchEmbedContentsRequest.requests: requests is not specified")
        if len(items) > 100:
            raise bad_request("* BatchEmbedContentsRequest.requests: at most 100 requests can be "
                              "in one batch")
        for number, item in enumerate(items):
            if item.get("model") != f"models/{model_id}":
                raise bad_request(f"* BatchEmbedContentsRequest.requests[{number}].model: model "
                                  f"must be models/{model_id}, the model named in the URL")
        return {"embeddings": [{"values": self._vector(item)} for item in items]}

    def _vector(self, request: dict) -> list[float]:
        return embedding_values(embed_text(request),
                                int(request.get("outputDimensionality") or self.embedding_dims))

    async def _list_models(self, record: dict) -> Reply:
        await self._take_script("models")
        query = record["query"]
        size = int(query.get("pageSize") or 50)
        size = min(size if size > 0 else 50, 1000)
        start = _page_offset(query.get("pageToken"))
        payload: dict[str, Any] = {"models": self.models[start:start + size]}
        if start + size < len(self.models):
            payload["nextPageToken"] = base64.urlsafe_b64encode(f"models:{start + size}".encode()).decode()
        return _json_reply(payload)

    async def _get_model(self, record: dict, model_id: str, version: str) -> Reply:
        await self._take_script("models")
        model = self._find_model(model_id)
        if model is None:
            raise model_not_found(model_id, "get", version)
        return _json_reply(model)

    def _control(self, method: str, path: str, body: bytes) -> Reply:
        """Test-only endpoints so a served fake can be scripted and inspected over HTTP."""
        if method == "POST" and path == "/_fake/script":
            kw = dict(_maybe_json(body) or {})
            try:
                self.script(kw.pop("kind", ""), **kw)
            except (TypeError, ValueError) as error:
                return _json_reply({"error": str(error)}, 400)
            return _json_reply({"queued": len(self.scripts)})
        if method == "POST" and path == "/_fake/reset":
            self.reset()
            return _json_reply({})
        if method == "GET" and path == "/_fake/requests":
            return _json_reply([{k: v for k, v in r.items() if k != "body"} for r in self.requests])
        return _json_reply({"error": "unknown control endpoint"}, 404)

    # ----------------------------------------------------------------- reply helpers

    def _error_reply(self, error: GoogleError, array: bool) -> Reply:
        """Errors before the first byte: plain JSON, list-wrapped for the array stream (§9.2)."""
        body = error.body()
        payload = _dump([body] if array else body, indent=2)
        return Reply(error.code, _headers(JSON_TYPE, len(payload)), _chunks([payload]))

    @staticmethod
    async def _track(record: dict, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in body:
            yield chunk
        record["completed"] = True


class _RawReply(Exception):
    """Carries a `raw` script out of the routing code: the reply bypasses everything."""

    def __init__(self, kw: dict, between: float) -> None:
        super().__init__("raw reply")
        self.kw, self.between = kw, between

    def reply(self) -> Reply:
        body = self.kw.get("body", b"")
        frames = body if isinstance(body, list) and all(isinstance(b, (str, bytes)) for b in body) else [body]
        frames = [f.encode() if isinstance(f, str) else f if isinstance(f, bytes) else _dump(f, 2)
                  for f in frames]
        content_type = self.kw.get("content_type") or JSON_TYPE
        headers = [("content-type", content_type), *dict(self.kw.get("headers") or {}).items()]
        return Reply(self.kw.get("status", 200), headers, _chunks(frames, self.between))


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


def _maybe_json(body: bytes) -> Any:
    try:
        return json.loads(body) if body.strip() else None
    except ValueError:
        return None


def _headers(content_type: str, length: int | None = None) -> list[tuple[str, str]]:
    headers = [("content-type", content_type)]
    if length is not None:
        headers.append(("content-length", str(length)))
    return headers


def _json_reply(payload: Any, status: int = 200) -> Reply:
    body = _dump(payload, indent=2)
    return Reply(status, _headers(JSON_TYPE, len(body)), _chunks([body]))


def _page_offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("models:"))
    except ValueError:
        raise bad_request("Invalid page token.") from None


# --------------------------------------------------------------------------- standalone server

def __getattr__(name: str) -> Any:
    """`tests.fakes.gemini:app` for daphne, configured by FAKE_GEMINI_* env vars on first use."""
    if name != "app":
        raise AttributeError(name)
    fake = FakeGemini(os.environ.get("FAKE_GEMINI_API_KEY", DEFAULT_API_KEY),
                      chunk_delay=float(os.environ.get("FAKE_GEMINI_CHUNK_DELAY", "0")),
                      keep_requests=1000)  # benchmarks send many requests to a served fake
    globals()["app"] = fake.asgi
    return fake.asgi


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.gemini",
                                     description="Serve the fake Gemini API under daphne.")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--api-key", default=os.environ.get("FAKE_GEMINI_API_KEY", DEFAULT_API_KEY))
    parser.add_argument("--chunk-delay", type=float,
                        default=float(os.environ.get("FAKE_GEMINI_CHUNK_DELAY", "0")))
    args = parser.parse_args(argv)
    os.environ["FAKE_GEMINI_API_KEY"] = args.api_key
    os.environ["FAKE_GEMINI_CHUNK_DELAY"] = str(args.chunk_delay)
    print(f"Fake Gemini API on http://{args.host}:{args.port} (x-goog-api-key: {args.api_key})",
          flush=True)
    from daphne.cli import CommandLineInterface  # imported late: it installs a Twisted reactor

    _drop_connection_on_broken_stream()
    CommandLineInterface().run(["-b", args.host, "-p", str(args.port), "tests.fakes.gemini:app"])


if __name__ == "__main__":
    main()
