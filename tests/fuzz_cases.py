"""What the fuzzer sends and what it accepts back: every HTTP endpoint of every dialect with a valid
body to start from, hypothesis strategies that mutate body, headers and query string, and the
checks of an answer (status, the dialect's own error shape).

Mutations: wrong types, huge numbers (beyond 64 bits, 1e308, exponents past a double), deep
nesting, truncation, junk bytes, invalid UTF-8, bad base64, duplicated keys, odd content types,
NUL and unusual unicode, junk headers and query parameters, and the wrong method.

Which answers leave a usage row (proxy_app/dialects/surface.py `serve`, proxy_app/call/pipeline.py):
every answer of an endpoint view that refuses the request (any 4xx/5xx: no or bad key, bad body,
unknown model, quota, body limits) and every answer of a route that calls the upstream or counts
tokens (`Endpoint.proxied`), whatever its status. No row: a 405 (wrong method), an unknown path
(the dialect's fallback 404), the key-less probes (/api/version, /, /api/hello), and the successes
of routes that call no upstream (model lists, /api/show, session bookkeeping, stored responses,
Ollama's model loads and empty embedding inputs, which Ollama itself answers without a model run).
"""

# ruff: noqa: E501  (tables of request bodies and mutation choices read best one per line)
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from hypothesis import strategies as st

MODEL = "gemini-2.5-flash"
EMBED = "gemini-embedding-001"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 24).decode()
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
GEMINI_BODY = {
    "contents": [
        {"role": "user", "parts": [{"text": "hi"}, {"inlineData": {"mimeType": "image/png", "data": PNG}}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"t": 3}}}]},
    ],
    "systemInstruction": {"parts": [{"text": "be brief"}]},
    "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters": {"type": "OBJECT"}}]}],
    "generationConfig": {"maxOutputTokens": 16, "temperature": 0.5, "topK": 3, "candidateCount": 1},
    "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {chat_id} / {response_id} are filled in from the stack's own objects
    dialect: str  # whose error shape: openai, anthropic, gemini, ollama, sessions
    body: dict | None = None
    auth: str = "bearer"  # bearer | google | anthropic | none
    proxied: bool = False  # calls the upstream or counts tokens: every answer leaves a row
    routed: bool = True  # an endpoint view (not a key-less probe)
    query: dict = field(default_factory=dict)


def _ep(method, path, dialect, body=None, **kw) -> Endpoint:
    return Endpoint(method, path, dialect, body, **kw)


def _gemini(prefix: str) -> list[Endpoint]:
    base = f"/{prefix}/models"
    embed = {"content": {"parts": [{"text": "a"}]}, "outputDimensionality": 8, "taskType": "RETRIEVAL_QUERY"}
    batch = {"requests": [{"model": f"models/{EMBED}", **embed}]}
    kw = {"auth": "google", "proxied": True}
    return [
        _ep("POST", f"{base}/{MODEL}:generateContent", "gemini", GEMINI_BODY, **kw),
        _ep("POST", f"{base}/{MODEL}:streamGenerateContent", "gemini", GEMINI_BODY, query={"alt": "sse"}, **kw),
        _ep("POST", f"{base}/{MODEL}:streamGenerateContent", "gemini", GEMINI_BODY, **kw),
        _ep("POST", f"{base}/{MODEL}:countTokens", "gemini", {"contents": GEMINI_BODY["contents"]}, **kw),
        _ep("POST", f"{base}/{EMBED}:embedContent", "gemini", embed, **kw),
        _ep("POST", f"{base}/{EMBED}:batchEmbedContents", "gemini", batch, **kw),
        _ep("GET", base, "gemini", auth="google", query={"pageSize": "5"}),
        _ep("GET", f"{base}/{MODEL}", "gemini", auth="google"),
    ]


OPENAI_CHAT = {
    "model": MODEL,
    "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "3 C"},
    ],
    "tools": [TOOL],
    "max_tokens": 16,
    "temperature": 0.5,
    "n": 1,
    "stream": False,
    "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
}  # fmt: skip
ANTHROPIC = {
    "model": MODEL,
    "max_tokens": 16,
    "system": [{"type": "text", "text": "be brief"}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "3 C"}]},
    ],
    "tools": [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "stream": False,
}  # fmt: skip
RESPONSES = {
    "model": MODEL,
    "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "hi"}, {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"}]},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "3 C"},
    ],
    "instructions": "be brief",
    "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
    "max_output_tokens": 16,
    "store": False,
    "stream": False,
}  # fmt: skip
OLLAMA_CHAT = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "hi", "images": [PNG]}],
    "stream": False,
    "options": {"temperature": 0.5, "num_predict": 16, "top_k": 3, "seed": 1, "stop": ["x"]},
    "tools": [TOOL],
    "format": {"type": "object"},
    "think": False,
}

ENDPOINTS: list[Endpoint] = [
    _ep("POST", "/v1/chat/completions", "openai", OPENAI_CHAT, proxied=True),
    _ep("POST", "/v1/completions", "openai", {"model": MODEL, "prompt": ["hi"], "max_tokens": 8, "echo": False}, proxied=True),
    _ep("POST", "/v1/embeddings", "openai", {"model": EMBED, "input": ["a", "b"], "dimensions": 8, "encoding_format": "base64"}, proxied=True),
    _ep("GET", "/v1/models", "openai"),
    _ep("GET", f"/v1/models/{MODEL}", "openai"),
    _ep("POST", "/api/chat", "ollama", OLLAMA_CHAT, proxied=True),
    _ep("POST", "/api/generate", "ollama", {"model": MODEL, "prompt": "hi", "system": "x", "images": [PNG], "stream": False, "options": {"num_ctx": 64}}, proxied=True),
    _ep("POST", "/api/embed", "ollama", {"model": EMBED, "input": ["a"], "truncate": True, "dimensions": 8}, proxied=True),
    _ep("POST", "/api/embeddings", "ollama", {"model": EMBED, "prompt": "a"}, proxied=True),
    _ep("GET", "/api/tags", "ollama"),
    _ep("POST", "/api/show", "ollama", {"model": MODEL}),
    _ep("GET", "/api/version", "ollama", auth="none", routed=False),
    _ep("GET", "/", "ollama", auth="none", routed=False),
    *_gemini("v1beta"),
    *_gemini("v1"),
    _ep("POST", "/v1/messages", "anthropic", ANTHROPIC, auth="anthropic", proxied=True),
    _ep("POST", "/v1/messages/count_tokens", "anthropic", {k: v for k, v in ANTHROPIC.items() if k != "max_tokens"}, auth="anthropic", proxied=True),
    _ep("GET", "/v1/models", "anthropic", auth="anthropic"),
    _ep("POST", "/v1/responses", "openai", RESPONSES, proxied=True),
    _ep("POST", "/v1/responses/input_tokens", "openai", RESPONSES, proxied=True),
    _ep("GET", "/v1/responses/{response_id}", "openai"),
    _ep("GET", "/v1/responses/{response_id}/input_items", "openai", query={"limit": "5", "order": "asc"}),
    _ep("DELETE", "/v1/responses/{response_id}", "openai"),
    _ep("POST", "/start_chat", "sessions", {"model_name": MODEL, "system_instruction": "x", "generation_config": {"temperature": 0.5, "max_output_tokens": 16}}),
    _ep("POST", "/send_message", "sessions", {"chat_id": "{chat_id}", "message": "hi"}, proxied=True),
    _ep("POST", "/end_chat", "sessions", {"chat_id": "{chat_id}"}),
    _ep("POST", "/v1/sessions", "sessions", {"model": MODEL, "generation_config": {"top_k": 3}}),
    _ep("GET", "/v1/sessions", "sessions", query={"limit": "10"}),
    _ep("GET", "/v1/sessions/{chat_id}", "sessions"),
    _ep("POST", "/v1/sessions/{chat_id}/messages", "sessions", {"message": "hi", "stream": False}, proxied=True),
]  # fmt: skip


# --------------------------------------------------------------------------------------- values


HUGE_NUMBERS = [
    "18446744073709551616",  # 2**64
    "-9223372036854775809",  # -2**63 - 1
    "123456789012345678901234567890123456789",
    "1e308",
    "-1e308",
    "1e999",  # past a double: orjson refuses it
    "4.9e-324",
    "2147483648",
    "9007199254740993",
    "-0",
    "1.5",
    "NaN",
    "Infinity",
]
STRINGS = [
    "",
    "\x00",
    "a\x00b",
    "\u202e\u200b\ufeff",
    "\U0001f600" * 50,
    "\\",
    "%00%ff",
    "x" * 70_000,
    "models/../../etc",
    "gemini-2.5-flash\n",
    "data:image/png;base64,!!!not base64!!!",
    "null",
]
RAW_STRINGS = ['"\\ud800"', '"\\udfff\\ud800"', '"\\u0000"', '"\\uZZZZ"', '"\x01\x1f"']


def nested(depth: int, kind: str) -> str:
    """JSON text nested `depth` levels deep (past what any encoder takes when large)."""
    if kind == "list":
        return "[" * depth + "1" + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


@st.composite
def raw_value(draw) -> str:
    """One nasty JSON value, as text (so it can be one no encoder would produce)."""
    choice = draw(st.integers(0, 7))
    if choice == 0:
        return draw(st.sampled_from(HUGE_NUMBERS))
    if choice == 1:
        return json.dumps(draw(st.sampled_from(STRINGS)))
    if choice == 2:
        return draw(st.sampled_from(RAW_STRINGS))
    if choice == 3:
        return nested(
            draw(st.sampled_from([3, 100, 253, 254, 255, 256, 300, 1023, 1024, 1025, 5000])),
            draw(st.sampled_from(["list", "dict"])),
        )
    if choice == 4:
        return draw(st.sampled_from(["true", "false", "null", "[]", "{}", "[null]", '{"": null}', "0", "-1"]))
    if choice == 5:
        return str(draw(st.integers(-(2**70), 2**70)))
    if choice == 6:
        return json.dumps(draw(st.text(max_size=40)), ensure_ascii=draw(st.booleans()))
    return json.dumps(draw(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8), lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=8)))  # fmt: skip


# --------------------------------------------------------------------------------------- bodies


def paths_of(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside `value` (dict keys and list indexes)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths_of(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths_of(item, (*prefix, index))
    return found


PLACEHOLDER = "\x00RAW\x00"


def with_raw(body: Any, path: tuple, raw: str | None) -> str:
    """`body` as JSON text with the value at `path` replaced by the raw text `raw` (None: removed)."""
    copy = json.loads(json.dumps(body))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    if raw is None:
        del parent[path[-1]]
        return json.dumps(copy)
    parent[path[-1]] = PLACEHOLDER
    return json.dumps(copy).replace(json.dumps(PLACEHOLDER), raw, 1)


EXTRA_FIELDS = [
    "max_tokens", "n", "temperature", "top_p", "top_k", "seed", "stream", "stream_options", "dimensions",
    "outputDimensionality", "generationConfig", "generation_config", "tools", "tool_choice", "logprobs",
    "top_logprobs", "thinking", "reasoning", "reasoning_effort", "options", "format", "keep_alive", "input",
    "contents", "messages", "model", "previous_response_id", "cachedContent", "max_output_tokens", "stop",
    "metadata", "user", "logit_bias", "modalities", "prediction", "parallel_tool_calls", "text", "truncation",
]  # fmt: skip


@st.composite
def body_bytes(draw, endpoint: Endpoint, fill: dict) -> tuple[bytes, str]:
    """A mutated body for `endpoint` and a note saying what was done."""
    base = json.loads(json.dumps(endpoint.body or {}).replace("{chat_id}", fill.get("chat_id", "none")))
    text = json.dumps(base)
    kind = draw(st.sampled_from(["valid", "field", "field", "field", "drop", "extra", "truncate", "junk", "utf8",
                                 "duplicate", "wrap", "root", "base64", "stream"]))  # fmt: skip
    paths = paths_of(base)
    if kind == "field" and paths:
        path = draw(st.sampled_from(paths))
        raw = draw(raw_value())
        return with_raw(base, path, raw).encode(errors="surrogatepass"), f"field {path} = {raw[:60]}"
    if kind == "drop" and paths:
        path = draw(st.sampled_from(paths))
        return with_raw(base, path, None).encode(), f"drop {path}"
    if kind == "extra":
        name = draw(st.sampled_from(EXTRA_FIELDS))
        raw = draw(raw_value())
        base[name] = PLACEHOLDER
        return json.dumps(base).replace(json.dumps(PLACEHOLDER), raw, 1).encode(errors="surrogatepass"), f"extra {name} = {raw[:60]}"  # fmt: skip
    if kind == "truncate":
        cut = draw(st.integers(0, max(len(text) - 1, 0)))
        return text[:cut].encode(), f"truncated at {cut}"
    if kind == "junk":
        junk = draw(st.binary(min_size=1, max_size=64))
        at = draw(st.integers(0, len(text)))
        return text[:at].encode() + junk + text[at:].encode(), f"junk at {at}"
    if kind == "utf8":
        bad = draw(st.sampled_from([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\x00", b"\xe2\x82"]))
        at = draw(st.integers(0, len(text)))
        return text[:at].encode() + bad + text[at:].encode(), f"bytes {bad!r} at {at}"
    if kind == "duplicate" and base:
        name = draw(st.sampled_from(sorted(base)))
        raw = draw(raw_value())
        return ("{" + json.dumps(name) + ":" + raw + "," + text[1:]).encode(errors="surrogatepass"), f"duplicate {name}"
    if kind == "wrap" and paths:
        path = draw(st.sampled_from(paths))
        depth = draw(st.sampled_from([64, 200, 250, 253, 260, 600, 1100]))
        value = base
        for step in path:
            value = value[step]
        inner = json.dumps(value)
        wrapped = '{"x":' * depth + inner + "}" * depth if draw(st.booleans()) else "[" * depth + inner + "]" * depth
        return with_raw(base, path, wrapped).encode(), f"wrap {path} in {depth}"
    if kind == "root":
        raw = draw(raw_value())
        return raw.encode(errors="surrogatepass"), f"root {raw[:60]}"
    if kind == "base64":
        bad = draw(st.sampled_from(["!!!", "aGk", "====", "a" * 5, "data:image/png;base64,@@", "", "\u00e9t\u00e9"]))
        return text.replace(PNG, bad).encode(), f"base64 {bad!r}"
    if kind == "stream" and "stream" in base:
        base["stream"] = True
        return json.dumps(base).encode(), "stream true"
    return text.encode(), "valid"


ODD_MODELS = [
    "",
    "%00",
    "a" * 5000,
    "..",
    "models/x",
    "x:y:z",
    "gemini-2.5-flash:",
    "\x00",
    "\u202e",
    "tunedModels/x",
    "x/y/z",
    " ",
]
CONTENT_TYPES = [
    "application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz", "application/json; charset=latin-1", "image/png", "", "*/*",
    "application/json;;;", "application/xml", "text/event-stream",
]  # fmt: skip


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    note: str
    endpoint: Endpoint
    key_ok: bool


def credentials(endpoint: Endpoint, key: str, how: str, in_query: bool) -> tuple[dict, dict, bool]:
    """(headers, query, whether the right key was sent); a Google key goes in ?key= when `in_query`."""
    if how == "none" or endpoint.auth == "none":
        return {}, {}, False
    secret, good = (key, True) if how == "good" else (how, False)
    if endpoint.auth == "google":
        return ({}, {"key": secret}, good) if in_query else ({"x-goog-api-key": secret}, {}, good)
    if endpoint.auth == "anthropic":
        return {"x-api-key": secret, "anthropic-version": "2023-06-01"}, {}, good
    return {"authorization": f"Bearer {secret}"}, {}, good


@st.composite
def requests(draw, key: str, fill: dict) -> Request:
    endpoint = draw(st.sampled_from(ENDPOINTS))
    path = endpoint.path.format(**fill)
    body, note = draw(body_bytes(endpoint, fill)) if endpoint.body is not None else (b"", "no body")
    how = draw(st.sampled_from(["good"] * 24 + ["none", "gw-junk", "Bearer", "x" * 300]))
    headers, query, key_ok = credentials(endpoint, key, how, draw(st.integers(0, 3)) == 0)
    query = {**endpoint.query, **query}
    if draw(st.integers(0, 3)) == 0:
        headers["content-type"] = draw(st.sampled_from(CONTENT_TYPES))
        note += f"; content-type {headers['content-type']!r}"
    if draw(st.integers(0, 5)) == 0:
        name = draw(st.sampled_from(["accept", "content-encoding", "anthropic-version", "anthropic-beta", "x-goog-api-client", "accept-encoding", "x-stainless-retry-count"]))  # fmt: skip
        headers[name] = draw(st.sampled_from(["gzip", "*/*", "text/html", "br", "", "2099-01-01", "x" * 500, "application/x-ndjson"]))  # fmt: skip
        note += f"; header {name}"
    if draw(st.integers(0, 5)) == 0:
        name = draw(st.sampled_from(["alt", "key", "pageSize", "pageToken", "limit", "order", "after", "beta", "stream", "include_ended", "$alt"]))  # fmt: skip
        query[name] = draw(st.sampled_from(["sse", "json", "proto", "-1", "0", "99999999999999999999", "abc", "", "\u00e9", "%00", "true"]))  # fmt: skip
        note += f"; query {name}={query[name]!r}"
    if (MODEL in path or EMBED in path) and draw(st.integers(0, 9)) == 0:
        odd = draw(st.sampled_from(ODD_MODELS) | st.text(min_size=1, max_size=30))
        path = path.replace(MODEL, quote(odd, safe=":/")).replace(EMBED, quote(odd, safe=":/"))
        note += f"; model in path {odd!r}"
    method = endpoint.method
    if draw(st.integers(0, 19)) == 0:
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]))
        note += f"; method {method}"
    return Request(method, path, query, headers, body, note, endpoint, key_ok)


# --------------------------------------------------------------------------------------- answers


def error_shape_problem(dialect: str, status: int, body: Any) -> str:
    """'' when `body` is `dialect`'s own error shape for `status`, else what is wrong."""
    if dialect == "ollama":
        ok = isinstance(body, dict) and set(body) == {"error"} and isinstance(body["error"], str)
    elif dialect == "gemini":
        error = body.get("error") if isinstance(body, dict) else None
        ok = (
            isinstance(error, dict)
            and set(error) >= {"code", "message", "status"}
            and error["code"] == status
            and isinstance(error["status"], str)
        )
    elif dialect == "anthropic":
        error = body.get("error") if isinstance(body, dict) else None
        ok = isinstance(body, dict) and body.get("type") == "error" and isinstance(error, dict)
        ok = ok and isinstance(error.get("type"), str) and isinstance(error.get("message"), str)
    elif dialect == "openai":
        error = body.get("error") if isinstance(body, dict) else None
        ok = isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}
        ok = ok and isinstance(error["message"], str)
    else:  # sessions
        error = body.get("error") if isinstance(body, dict) else None
        ok = isinstance(error, dict) and set(error) == {"code", "message"} and isinstance(error["message"], str)
    return "" if ok else f"not the {dialect} error shape"


def answering_dialect(request: Request) -> str:
    """Whose shape the answer must have: GET /v1/models is shared (Google keys and Anthropic headers
    claim it), and a wrong method on a path still gets that path's owner's shape."""
    endpoint = request.endpoint
    path = unquote(request.path)
    if path == "/v1/models/":  # no id: the OpenAI surface's /v1/ catch-all answers
        return "openai"
    if path.startswith("/v1/models") and not re.fullmatch(r"/v1/models/.+:[a-zA-Z]+", path, re.DOTALL):
        if "x-goog-api-key" in request.headers or "key" in request.query:
            return "gemini"
        if "anthropic-version" in request.headers or "x-api-key" in request.headers:
            return "anthropic"
        return "openai"
    return endpoint.dialect
