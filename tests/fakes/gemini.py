"""A faithful fake of Google's Gemini REST API (generativelanguage v1beta) for tests and demos.

One request-handling core (`FakeGemini.respond`: status, headers, async iterator of body bytes)
served two ways:

- in process: ``httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))``;
- as a real server: ``fake.asgi`` (ASGI3), e.g. ``python -m tests.fakes.gemini --port 8001``
  which runs it under daphne. ``POST /_fake/script`` (JSON: kind, on, kwargs), ``POST
  /_fake/reset`` and ``GET /_fake/requests`` script and inspect a served fake over HTTP.
The adapters, recording, script queue and control endpoints are tests/fakes/server.py's `FakeServer`.

Paths are served under ``/v1beta/`` and ``/v1/`` alike (google-genai 3.x defaults to ``v1``).
Unscripted, generate calls answer deterministically (see `default_generation`); `fake.script()`
queues one-shot behaviours (errors, tool calls, broken streams...). Every request received is
recorded in `fake.requests` as a dict: method, path, query, headers (lower-cased), body (bytes),
json (parsed or None), model, action, completed (body fully sent). Wire facts:
docs/reference/gemini.md.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

from tests.fakes.gemini_replies import (
    SCRIPT_KINDS,
    Generation,
    contents_chars,
    default_generation,
    embed_text,
    embedding_values,
    response_json,
    scripted_generation,
    stream_events,
    tokens,
)
from tests.fakes.gemini_rules import (
    ACTION_METHOD,
    NO_KEY,
    GoogleError,
    bad_request,
    bearer_rejected,
    default_models,
    key_invalid,
    model_not_found,
    normalise,
    reject_unknown,
    scripted_error,
    validate_generate,
)
from tests.fakes.server import FakeServer, Reply, env_settings, parse_args, reply_body, serve

DEFAULT_API_KEY = "test-upstream-key"
JSON_TYPE = "application/json; charset=UTF-8"
SSE_TYPE = "text/event-stream"
# Which script queue an URL action consumes from.
OPERATIONS = {
    "generateContent": "generate",
    "streamGenerateContent": "generate",
    "countTokens": "count",
    "embedContent": "embed",
    "batchEmbedContents": "embed",
}
_ERROR_KW = ("status", "message", "status_name", "details", "retry_delay")


def _dump(value: Any, indent: int | None = None) -> bytes:
    # Google's SSE lines use `": "` after keys and bare `,`; plain bodies are 2-space indented.
    return json.dumps(value, indent=indent, separators=(",", ": "), ensure_ascii=False).encode()


class FakeGemini(FakeServer):
    """In-memory Gemini API. See the module docstring and `script` for the knobs."""

    SCRIPT_KINDS = SCRIPT_KINDS
    SCRIPT_TARGETS = {"generate", "count", "embed", "models", "any"}
    ROUTE_FIELD = "action"
    ERROR = GoogleError
    JSON_TYPE = JSON_TYPE

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        chunk_delay: float = 0.0,
        words_per_chunk: int = 1,
        embedding_dims: int = 8,
        pretty_arrays: bool = True,
        models: list[dict] | None = None,
        keep_requests: int | None = None,
    ) -> None:
        super().__init__(chunk_delay=chunk_delay, keep_requests=keep_requests)
        self.api_key = api_key
        self.words_per_chunk = words_per_chunk  # stream granularity of default/plain text
        self.embedding_dims = embedding_dims  # vector size when outputDimensionality is absent
        self.pretty_arrays = pretty_arrays  # JSON-array stream elements indented like Google's
        self.models = default_models() if models is None else models

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
        return super().script(kind, on=on, **kw)

    # ----------------------------------------------------------------- routing

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
        record["model"] = model_id = name[len("models/") :]
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
            raise bad_request('Invalid JSON payload received. Unknown name "": Root element must be a message.')
        if action in ("generateContent", "streamGenerateContent"):
            return await self._generate(record, raw, model_id)
        await self._take_script(OPERATIONS[action], model_id)
        if action == "countTokens":
            return self._json_reply(self._count_tokens(raw))
        return self._json_reply(self._embed(raw, model_id, action))

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
        script = await self._pop_script(operation)
        if script is not None and script["kind"] == "error":
            raise scripted_error(
                model=model_id or "gemini-2.5-flash", **{k: v for k, v in script["kw"].items() if k in _ERROR_KW}
            )
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
                return Reply(
                    200,
                    _headers(JSON_TYPE, len(payload)),
                    reply_body([payload[: len(payload) // 2]], broken=kw.get("error", "read")),
                )
            return Reply(200, _headers(JSON_TYPE, len(payload)), reply_body([payload]))
        return self._stream(gen, model, response_id, record["query"].get("alt") == "sse", kind, kw, between, error)

    def _stream(
        self,
        gen: Generation,
        model: str,
        response_id: str,
        sse: bool,
        kind: str | None,
        kw: dict,
        between: float,
        error: GoogleError,
    ) -> Reply:
        events = stream_events(gen, model, response_id, self.words_per_chunk)
        if kind in ("break_midstream", "error_midstream"):
            events = events[: kw.get("after", 1)]
        if kind == "error_midstream":
            events.append(error.body())
        frames = [self._frame(event, sse, first=number == 0) for number, event in enumerate(events)]
        broken = kw.get("error", "read") if kind == "break_midstream" else None
        if not sse and not broken:
            frames[-1] += b"]"
        return Reply(200, _headers(SSE_TYPE if sse else JSON_TYPE), reply_body(frames, between, broken))

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
            raise bad_request("* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch")
        for number, item in enumerate(items):
            if item.get("model") != f"models/{model_id}":
                raise bad_request(
                    f"* BatchEmbedContentsRequest.requests[{number}].model: model "
                    f"must be models/{model_id}, the model named in the URL"
                )
        return {"embeddings": [{"values": self._vector(item)} for item in items]}

    def _vector(self, request: dict) -> list[float]:
        return embedding_values(embed_text(request), int(request.get("outputDimensionality") or self.embedding_dims))

    async def _list_models(self, record: dict) -> Reply:
        await self._take_script("models")
        query = record["query"]
        size = int(query.get("pageSize") or 50)
        size = min(size if size > 0 else 50, 1000)
        start = _page_offset(query.get("pageToken"))
        payload: dict[str, Any] = {"models": self.models[start : start + size]}
        if start + size < len(self.models):
            payload["nextPageToken"] = base64.urlsafe_b64encode(f"models:{start + size}".encode()).decode()
        return self._json_reply(payload)

    async def _get_model(self, record: dict, model_id: str, version: str) -> Reply:
        await self._take_script("models")
        model = self._find_model(model_id)
        if model is None:
            raise model_not_found(model_id, "get", version)
        return self._json_reply(model)

    # ----------------------------------------------------------------- reply helpers

    def _error_reply(self, error: GoogleError, record: dict) -> Reply:
        """Errors before the first byte: plain JSON, list-wrapped for the array stream (§9.2)."""
        array = record["action"] == "streamGenerateContent" and record["query"].get("alt") != "sse"
        return self._google_error_reply(error, array)

    def _malformed_reply(self, error: Exception, record: dict) -> Reply:
        return self._google_error_reply(GoogleError(400), False)

    def _json_reply(self, payload: Any, status: int = 200) -> Reply:
        body = _dump(payload, indent=2)
        return Reply(status, _headers(JSON_TYPE, len(body)), reply_body([body]))

    @staticmethod
    def _google_error_reply(error: GoogleError, array: bool) -> Reply:
        body = error.body()
        payload = _dump([body] if array else body, indent=2)
        return Reply(error.code, _headers(JSON_TYPE, len(payload)), reply_body([payload]))


def _headers(content_type: str, length: int | None = None) -> list[tuple[str, str]]:
    headers = [("content-type", content_type)]
    if length is not None:
        headers.append(("content-length", str(length)))
    return headers


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
    api_key, chunk_delay = env_settings("FAKE_GEMINI", DEFAULT_API_KEY)
    fake = FakeGemini(
        api_key, chunk_delay=chunk_delay, keep_requests=1000
    )  # benchmarks send many requests to a served fake
    globals()["app"] = fake.asgi
    return fake.asgi


def main(argv: list[str] | None = None) -> None:
    args = parse_args(
        argv,
        module="tests.fakes.gemini",
        description="Serve the fake Gemini API (daphne or uvicorn).",
        port=8001,
        prefix="FAKE_GEMINI",
        default_key=DEFAULT_API_KEY,
    )
    print(f"Fake Gemini API on http://{args.host}:{args.port} (x-goog-api-key: {args.api_key})", flush=True)
    serve("tests.fakes.gemini:app", args.host, args.port, args.server)


if __name__ == "__main__":
    main()
