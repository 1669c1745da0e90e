"""A faithful fake of the OpenAI API (chat completions, embeddings, models) for tests and demos.

Built like tests/fakes/gemini.py: one request-handling core (`FakeOpenAI.respond`: status,
headers, async iterator of body bytes) served two ways:

- in process: ``httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))`` (also as the
  ``http_client`` of ``openai.AsyncOpenAI(base_url="http://fake/v1", ...)``);
- as a real server: ``python -m tests.fakes.openai_compat --port 8002`` runs ``fake.asgi`` under
  daphne. ``POST /_fake/script`` (JSON: kind, on, kwargs), ``POST /_fake/reset`` and
  ``GET /_fake/requests`` script and inspect a served fake over HTTP.

Wire facts: docs/reference/openai.md §4–§9. Streams follow the §5 canonical sequence (role
chunk, content chunks, tool-call chunks, an empty-delta finish chunk, the usage chunk only when
``stream_options.include_usage`` is true, ``data: [DONE]``). Unscripted replies are deterministic
(see `default_generation`); `fake.script()` queues one-shot behaviours, including the quirks of
other OpenAI-compatible servers (openai.md §11). Every request is recorded in `fake.requests`:
method, path, query, headers (lower-cased), body (bytes), json (parsed or None), model, endpoint
("chat", "embeddings", "models", "model"), completed (body fully sent). The replies are made in
openai_compat_replies.py, the checks and errors in openai_compat_rules.py, the plumbing (adapters,
recording, script queue, control endpoints) in server.py.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from tests.fakes.gemini_replies import tokens
from tests.fakes.openai_compat_replies import (
    FLAGS,
    SCRIPT_KINDS,
    default_generation,
    encode_vector,
    response_json,
    scripted_generation,
    sse_frame,
    stream_chunks,
    unit_vector,
)
from tests.fakes.openai_compat_rules import (
    BAD_JSON,
    EMBEDDING_DIMS,
    NO_KEY,
    SNAPSHOTS,
    OpenAIError,
    bad_request,
    check_chat,
    default_models,
    embedding_inputs,
)
from tests.fakes.server import FakeServer, Reply, env_settings, parse_args, reply_body, serve

DEFAULT_API_KEY = "test-openai-key"
JSON_TYPE = "application/json"
SSE_TYPE = "text/event-stream; charset=utf-8"
_ERROR_KW = ("status", "message", "type", "code", "param", "headers", "retry_after")


class FakeOpenAI(FakeServer):
    """In-memory OpenAI API. See the module docstring and `script` for the knobs."""

    SCRIPT_KINDS = SCRIPT_KINDS
    SCRIPT_TARGETS = {"chat", "embeddings", "models", "any"}
    ROUTE_FIELD = "endpoint"
    ERROR = OpenAIError
    JSON_TYPE = JSON_TYPE

    def __init__(
        self,
        api_key: str | None = DEFAULT_API_KEY,
        *,
        chunk_delay: float = 0.0,
        words_per_chunk: int = 1,
        embedding_dims: int | None = None,
        strict: bool = False,
        models: list[dict] | None = None,
        keep_requests: int | None = None,
    ) -> None:
        super().__init__(chunk_delay=chunk_delay, keep_requests=keep_requests)
        self.api_key = api_key  # None: no key needed (like a local Ollama / vLLM)
        self.words_per_chunk = words_per_chunk  # stream granularity of text
        self.embedding_dims = embedding_dims  # vector size override (tests keep vectors short)
        self.strict = strict  # 400 on unknown chat parameters, like api.openai.com
        self.models = default_models() if models is None else models

    # ----------------------------------------------------------------- test-facing helpers

    def script(self, kind: str, *, on: str = "chat", **kw: Any) -> FakeOpenAI:
        """Queue a one-shot behaviour for the next `on` call: chat, embeddings, models or any (FIFO).

        Every kind takes ``delay`` (seconds before the status line) and ``between`` (seconds
        between streamed chunks); content kinds also take the quirk flags ``no_usage``,
        ``finish_on_content`` and ``no_role`` (True), and text=/chunks= to fix the answer.

        - ``text``: text="...", or chunks=[...] (exact stream split); finish_reason="stop"
        - ``tool_calls``: calls=[(name, args) | (name, args, id) | {"name", "args", "id"}] (args a
          dict or a raw string, e.g. invalid JSON), text=None, fragments=3 (argument pieces per
          call in a stream; 1 = whole), finish_reason="tool_calls"
        - ``reasoning``: reasoning="...", text=None, field="reasoning_content" | "reasoning",
          reasoning_tokens=None (DeepSeek-style visible reasoning deltas first)
        - ``no_usage``: the server ignores stream_options: no usage chunk, no usage in replies
        - ``finish_on_content``: finish_reason rides on the last content chunk; no empty-delta chunk
        - ``no_role``: no role chunk first
        - ``error``: status=500, message=None, type=None, code=None, param=None, headers=None,
          retry_after=None (429 adds retry-after "20", retry-after-ms and x-ratelimit-* headers)
        - ``break_midstream``: after=1 chunks, error="read" | "protocol" (httpx error raised)
        - ``error_midstream``: after=1 chunks, then an in-band error event (error kwargs as above)
        - ``slow``: delay=, between= (default reply, or text=/chunks=)
        - ``raw``: status=200, body=bytes|str|dict|list-of-frames, content_type=None, headers={}
        """
        return super().script(kind, on=on, **kw)

    # ----------------------------------------------------------------- routing

    async def _route(self, record: dict) -> Reply:
        self._authenticate(record["headers"])
        method, path = record["method"], record["path"]
        if method == "POST" and path == "/v1/chat/completions":
            record["endpoint"] = "chat"
            return await self._chat(record, self._body(record))
        if method == "POST" and path == "/v1/embeddings":
            record["endpoint"] = "embeddings"
            return await self._embeddings(record, self._body(record))
        if method == "GET" and path == "/v1/models":
            record["endpoint"] = "models"
            await self._take_script("models")
            return self._json_reply({"object": "list", "data": self.models})
        if method == "GET" and path.startswith("/v1/models/"):
            record["endpoint"] = "model"
            record["model"] = model_id = path[len("/v1/models/") :]
            await self._take_script("models")
            model = self._find_model(model_id)
            if model is None:
                raise OpenAIError(
                    404, f"The model '{model_id}' does not exist", "invalid_request_error", "model_not_found", "model"
                )
            return self._json_reply(model)
        raise bad_request(f"Invalid URL ({method} {path})", status=404)

    def _authenticate(self, headers: dict[str, str]) -> None:
        if self.api_key is None:
            return
        scheme, _, key = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise OpenAIError(401, NO_KEY, "invalid_request_error", None)
        if key.strip() != self.api_key:
            shown = key[:3] + "*" * max(len(key) - 7, 0) + key[-4:] if len(key) > 8 else "****"
            raise OpenAIError(
                401,
                f"Incorrect API key provided: {shown}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                "invalid_api_key",
            )

    @staticmethod
    def _body(record: dict) -> dict:
        raw = record["json"]
        if not isinstance(raw, dict):
            raise bad_request(BAD_JSON)
        model = raw.get("model")
        if not model:
            raise bad_request("you must provide a model parameter")
        record["model"] = model
        return raw

    def _find_model(self, model_id: str) -> dict | None:
        return next((m for m in self.models if m["id"] == model_id), None)

    def _model_for(self, model_id: Any, embeddings: bool) -> dict:
        model = self._find_model(model_id)
        if model is None:
            raise OpenAIError(
                404,
                f"The model `{model_id}` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            )
        if model["id"].startswith("text-embedding") != embeddings:
            if embeddings:
                raise bad_request(f"This model does not support embeddings: {model_id}", "model")
            raise bad_request(
                "This is not a chat model and thus not supported in the v1/chat/completions endpoint. "
                "Did you mean to use v1/completions?",
                "model",
                status=404,
            )
        return model

    async def _take_script(self, target: str) -> dict | None:
        """Pop the first script for this endpoint; apply its delay; raise error/raw kinds."""
        script = await self._pop_script(target)
        if script is not None and script["kind"] == "error":
            raise OpenAIError(**{"status": 500, **{k: v for k, v in script["kw"].items() if k in _ERROR_KW}})
        return script

    # ----------------------------------------------------------------- operations

    async def _chat(self, record: dict, raw: dict) -> Reply:
        model = self._model_for(raw["model"], embeddings=False)
        check_chat(raw, model, self.strict)
        script = await self._take_script("chat")
        kind, kw = (script["kind"], script["kw"]) if script else (None, {})
        gen = scripted_generation(kind, kw, raw) if kind else default_generation(raw)
        flags = {flag: bool(kw.get(flag) or kind == flag) for flag in FLAGS}
        name = SNAPSHOTS.get(model["id"], model["id"])
        completion_id, created = "chatcmpl-" + secrets.token_urlsafe(21).replace("-", "x")[:29], int(time.time())
        between = kw.get("between", self.chunk_delay)
        error = OpenAIError(**{"status": 500, **{k: v for k, v in kw.items() if k in _ERROR_KW}})
        if not raw.get("stream"):
            if kind == "error_midstream":
                raise error
            payload = _dump(response_json(gen, name, completion_id, created, usage=not flags["no_usage"]))
            if kind == "break_midstream":
                return Reply(
                    200,
                    _headers(JSON_TYPE, len(payload)),
                    reply_body([payload[: len(payload) // 2]], broken=kw.get("error", "read")),
                )
            return Reply(200, _headers(JSON_TYPE, len(payload)), reply_body([payload]))
        include_usage = bool((raw.get("stream_options") or {}).get("include_usage"))
        chunks = stream_chunks(
            gen, name, completion_id, created, include_usage, self.words_per_chunk, int(kw.get("fragments", 3)), flags
        )
        frames = [sse_frame(c) for c in chunks]
        broken = None
        if kind in ("break_midstream", "error_midstream"):
            frames = frames[: kw.get("after", 1)]
            if kind == "error_midstream":
                frames.append(sse_frame(error.body()))
            else:
                broken = kw.get("error", "read")
        else:
            frames.append(sse_frame("[DONE]"))
        return Reply(200, _headers(SSE_TYPE), reply_body(frames, between, broken))

    async def _embeddings(self, record: dict, raw: dict) -> Reply:
        model = self._model_for(raw["model"], embeddings=True)
        texts = embedding_inputs(raw)
        encoding = raw.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise bad_request(
                f"Invalid value: '{encoding}'. Supported values are: 'float' and 'base64'.",
                "encoding_format",
                "invalid_value",
            )
        dims = raw.get("dimensions")
        if dims is not None and model["id"] == "text-embedding-ada-002":
            raise bad_request("This model does not support specifying dimensions.")
        if dims is not None and not (isinstance(dims, int) and 1 <= dims <= EMBEDDING_DIMS[model["id"]]):
            raise bad_request(
                f"Invalid value for 'dimensions' = {dims}. Must be between 1 and {EMBEDDING_DIMS[model['id']]}.",
                "dimensions",
            )
        script = await self._take_script("embeddings")
        size = dims or self.embedding_dims or EMBEDDING_DIMS[model["id"]]
        data = [
            {"object": "embedding", "index": i, "embedding": encode_vector(unit_vector(t, size), encoding)}
            for i, t in enumerate(texts)
        ]
        prompt = sum(tokens(len(t)) for t in texts)
        payload: dict[str, Any] = {"object": "list", "data": data, "model": model["id"]}
        kind = script["kind"] if script else None
        if kind != "no_usage" and not (script and script["kw"].get("no_usage")):
            payload["usage"] = {"prompt_tokens": prompt, "total_tokens": prompt}
        return self._json_reply(payload)

    # ----------------------------------------------------------------- reply helpers

    def _error_reply(self, error: OpenAIError, record: dict) -> Reply:
        body = _dump(error.body())
        return Reply(error.status, _headers(JSON_TYPE, len(body), error.headers), reply_body([body]))

    def _malformed_reply(self, error: Exception, record: dict) -> Reply:
        return self._error_reply(bad_request(f"Invalid request: {error}"), record)

    def _json_reply(self, payload: Any, status: int = 200) -> Reply:
        body = _dump(payload)
        return Reply(status, _headers(JSON_TYPE, len(body)), reply_body([body]))


# --------------------------------------------------------------------------- helpers


def _dump(value: Any) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False).encode()


def _headers(content_type: str, length: int | None = None, extra: dict | None = None) -> list[tuple[str, str]]:
    headers = [("content-type", content_type), ("x-request-id", "req_" + secrets.token_hex(16))]
    if length is not None:
        headers.append(("content-length", str(length)))
    return headers + list((extra or {}).items())


# --------------------------------------------------------------------------- standalone server


def __getattr__(name: str) -> Any:
    """`tests.fakes.openai_compat:app` for daphne, configured by FAKE_OPENAI_* env vars on first use."""
    if name != "app":
        raise AttributeError(name)
    api_key, chunk_delay = env_settings("FAKE_OPENAI", DEFAULT_API_KEY)
    fake = FakeOpenAI(api_key or None, chunk_delay=chunk_delay, keep_requests=1000)
    globals()["app"] = fake.asgi
    return fake.asgi


def main(argv: list[str] | None = None) -> None:
    args = parse_args(
        argv,
        module="tests.fakes.openai_compat",
        description="Serve the fake OpenAI API (daphne or uvicorn).",
        port=8002,
        prefix="FAKE_OPENAI",
        default_key=DEFAULT_API_KEY,
        key_help='Bearer key to require; "" accepts any request (like a local server)',
    )
    print(f"Fake OpenAI API on http://{args.host}:{args.port}/v1 (Bearer {args.api_key or '<none>'})", flush=True)
    serve("tests.fakes.openai_compat:app", args.host, args.port, args.server)


if __name__ == "__main__":
    main()
