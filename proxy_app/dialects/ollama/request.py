"""Ollama client dialect, inbound half: /api/* request JSON -> hub requests.

Ollama clients (ollama-python, Open WebUI, editors) talk to the gateway as if it were an Ollama
server. Pure functions, no Django and no I/O. Field policy (map / ignore / 400) follows
docs/reference/mapping.md §5.4, §9, §10; wire shapes follow ollama.md §2–§6. Every malformed
value raises errors.InvalidRequest naming the field, never a bare TypeError/KeyError.

Two kinds of request are answered without calling the upstream, and the caller checks for them
before parsing: model loads (`is_load_request` -> `parse_load_request` -> `build_load_response`)
and empty embeddings (`EmbedRequest.inputs == []` -> `build_empty_embed_response` /
`build_legacy_embeddings_response`).
The outbound half (responses, NDJSON frames, tags/show, errors) is response.py, re-exported here.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

import orjson

from proxy_app.core import hub
from proxy_app.dialects.ollama.response import (
    MEDIA_TYPE,
    ROOT_TEXT,
    VERSION,
    ChatStreamEncoder,
    GenerateStreamEncoder,
    Timings,
    build_chat_response,
    build_embed_response,
    build_empty_embed_response,
    build_error,
    build_generate_response,
    build_legacy_embeddings_response,
    build_load_response,
    build_show,
    build_tags,
    build_version,
)
from proxy_app.dialects.validate import (
    EMBED_DIMENSIONS,
    as_bool,
    as_function_name,
    as_int,
    as_list,
    as_number,
    as_object,
    as_string,
    checked_depth,
    fail,
    one_of,
    optional,
    request_body,
)

__all__ = [  # the dialect's whole public surface, inbound and outbound
    "parse_body",
    "parse_chat_request",
    "parse_generate_request",
    "is_load_request",
    "parse_load_request",
    "LoadRequest",
    "parse_embed_request",
    "parse_legacy_embeddings_request",
    "parse_show_request",
    "build_chat_response",
    "build_generate_response",
    "build_load_response",
    "build_embed_response",
    "build_empty_embed_response",
    "build_legacy_embeddings_response",
    "build_tags",
    "build_show",
    "build_version",
    "build_error",
    "ChatStreamEncoder",
    "GenerateStreamEncoder",
    "Timings",
    "MEDIA_TYPE",
    "ROOT_TEXT",
    "VERSION",
]

ROLES = ("system", "user", "assistant", "tool")
# Ollama `think` levels -> hub reasoning_effort (mapping.md §5.4); "max" is the hub's top level.
THINK_LEVELS = {"low": "low", "medium": "medium", "high": "high", "max": "xhigh"}
INT32_MAX = 2**31 - 1  # Gemini's seed is an int32
# Prefix of ids the gateway invents; the Gemini codec strips these when replaying (mapping.md §6.3).
# Ollama images carry no MIME type: sniff the magic bytes (mapping.md §9.1, §14.15).
_MAGIC = ((b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"))
# Go durations that mean zero ("0s", "0m0s", "0.0h"): keep_alive 0 unloads the model.
_ZERO_DURATION = re.compile(r"[+-]?(?:0+(?:\.0*)?(?:ns|us|µs|μs|ms|s|m|h))+")


# --- request body and fields every endpoint shares ---------------------------------------------


def _option_int(value: Any, param: str) -> int:
    """Ollama reads integer options from any JSON number and truncates (api/types.go FromMap)."""
    return as_int(int(as_number(value, param)), param)  # 1e30 truncates to an integer past 64 bits


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None or model == "":
        fail("model", "model is required")  # Ollama's own wording
    return as_string(model, "model")


def _text(text: str) -> hub.Part:
    return hub.Part("text", text=text)


def parse_body(raw: bytes) -> object:
    """Raw request bytes -> JSON value, whatever the Content-Type (curl -d sends a form type)."""
    data = bytes(raw or b"").removeprefix(b"\xef\xbb\xbf")  # a UTF-8 BOM from Windows editors
    if not data.strip():
        fail(None, "missing request body")
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        fail(None, f"request body is not valid JSON: {exc}")
    return checked_depth(data, body)


# --- images (mapping.md §9.1) ------------------------------------------------------------------


def _sniff_mime(raw: bytes) -> str:
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in _MAGIC if raw.startswith(magic)), "")


def _image(value: Any, param: str) -> hub.Part:
    data = as_string(value, param)
    if data[:5].lower() == "data:":  # not Ollama's shape, but unambiguous; some UIs send data URLs
        data = data.partition(",")[2]
    data = "".join(data.split())  # MIME-style base64 wraps lines
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        fail(param, f"'{param}' is not valid base64")
    if not raw:
        fail(param, f"'{param}' must not be empty")
    mime = _sniff_mime(raw)
    if not mime:
        fail(param, f"'{param}' is not a supported image: expected PNG, JPEG, GIF or WEBP data")
    return hub.Part("media", mime_type=mime, data=data)


def _images(value: Any, param: str) -> list[hub.Part]:
    if value is None:
        return []
    return [_image(item, f"{param}[{k}]") for k, item in enumerate(as_list(value, param))]


# --- tool calls and their results (mapping.md §9.1, §14.5) ------------------------------------------


def _arguments(value: Any, param: str) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return value
    if isinstance(value, str):  # OpenAI's string form; Ollama itself sends objects
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
    fail(param, "invalid tool call arguments: expected a JSON object")


def _tool_call(value: Any, param: str) -> hub.ToolCall:
    raw = as_object(value, param)
    function = as_object(raw.get("function"), f"{param}.function")
    return hub.ToolCall(
        id=optional(raw, "id", as_string, at=param) or hub.synthetic_call_id(),
        name=as_string(function.get("name"), f"{param}.function.name", nonempty=True),
        arguments=_arguments(function.get("arguments"), f"{param}.function.arguments"),
    )


class _CallLedger:
    """Assistant tool calls seen so far and which of them still wait for a result.

    Ollama history often has no ids, so a tool message answers, in this order: the call with its
    `tool_call_id`; else the earliest unanswered call named `tool_name` (latest assistant turn
    first, then older turns); else the next unanswered call of the latest assistant turn.
    """

    def __init__(self) -> None:
        self._every: list[hub.ToolCall] = []
        self._turn: list[hub.ToolCall] = []  # calls of the latest assistant turn that made any
        self._open: list[hub.ToolCall] = []  # unanswered, oldest first

    def add_turn(self, calls: list[hub.ToolCall]) -> None:
        if calls:
            self._every += calls
            self._turn = list(calls)
            self._open += calls

    def answer(self, call_id: str | None, name: str | None) -> hub.ToolCall | None:
        call = self._find(call_id, name)
        if call is not None:
            self._open = [c for c in self._open if c is not call]
        return call

    def _find(self, call_id: str | None, name: str | None) -> hub.ToolCall | None:
        waiting = [c for c in self._open if any(c is t for t in self._turn)]
        if call_id:
            found = next((c for c in [*waiting, *reversed(self._every)] if c.id == call_id), None)
            if found is not None:
                return found
        if name:
            found = next((c for c in [*waiting, *self._open] if c.name == name), None)
            if found is not None:
                return found
        return waiting[0] if waiting else None


def _tool_result(raw: dict[str, Any], param: str, ledger: _CallLedger) -> hub.Message:
    call_id = optional(raw, "tool_call_id", as_string, at=param)
    name = optional(raw, "tool_name", as_string, at=param) or optional(raw, "name", as_string, at=param)
    call = ledger.answer(call_id, name)
    if call is None:
        fail(param, f"'{param}' is a tool result, but no earlier assistant tool call is left for it to answer")
    return hub.Message("tool", [_text(_content(raw, param))], tool_call_id=call.id, name=call.name)


# --- messages (mapping.md §9.1) ------------------------------------------------------------------


def _content(raw: dict[str, Any], param: str) -> str:
    return optional(raw, "content", as_string, at=param) or ""


def _message(raw: dict[str, Any], param: str, ledger: _CallLedger) -> hub.Message | None:
    role = one_of(raw.get("role"), f"{param}.role", ROLES)
    content = _content(raw, param)
    images = _images(raw.get("images"), f"{param}.images")
    if images and role != "user":
        fail(f"{param}.images", "images are only supported on user messages")
    if role == "user":
        return hub.Message("user", ([_text(content)] if content or not images else []) + images)
    if role == "system":
        return hub.Message("system", [_text(content)])
    if role == "tool":
        return _tool_result(raw, param, ledger)
    # assistant: `thinking` from earlier turns is dropped (mapping.md §9.1)
    raw_calls = optional(raw, "tool_calls", as_list, at=param) or []
    calls = [_tool_call(c, f"{param}.tool_calls[{k}]") for k, c in enumerate(raw_calls)]
    ledger.add_turn(calls)
    if not content and not calls:
        return None  # nothing to send; Gemini rejects empty turns
    return hub.Message("assistant", [_text(content)] if content else [], tool_calls=calls)


def _messages(value: Any) -> list[hub.Message]:
    items = as_list(value, "messages")
    if not items:
        fail("messages", "'messages' must not be empty (an empty list only loads the model)")
    ledger = _CallLedger()
    out = []
    for i, raw in enumerate(items):
        message = _message(as_object(raw, f"messages[{i}]"), f"messages[{i}]", ledger)
        if message is not None:
            out.append(message)
    return out


# --- generation settings shared by /api/chat and /api/generate --------------------------------------


def _tools(value: Any, param: str) -> list[hub.Tool]:
    tools: list[hub.Tool] = []
    for i, raw in enumerate(as_list(value, param)):
        p = f"{param}[{i}]"
        kind = as_object(raw, p).get("type")
        if kind not in (None, "function"):  # ollama-python defaults the type to "function"
            fail(f"{p}.type", f"only function tools are supported, got {kind!r}")
        fn = as_object(raw.get("function"), f"{p}.function")
        name = as_function_name(fn.get("name"), f"{p}.function.name")
        if any(t.name == name for t in tools):
            fail(f"{p}.function.name", f"duplicate function name {name!r}")
        description = optional(fn, "description", as_string, at=f"{p}.function") or ""
        tools.append(hub.Tool(name, description, optional(fn, "parameters", as_object, at=f"{p}.function")))
    return tools


def _format(value: Any) -> hub.ResponseFormat | None:
    if value is None or value == "":
        return None
    if value == "json" or value == {}:
        return hub.ResponseFormat("json_object")
    if isinstance(value, dict):
        return hub.ResponseFormat("json_schema", schema=value)
    fail("format", "'format' must be \"json\" or a JSON schema object")


def _stop(value: Any, param: str) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    items = as_list(value, param)
    return [s for j, s in enumerate(items) if as_string(s, f"{param}[{j}]")]  # empty strings dropped


def _apply_options(body: dict[str, Any], req: hub.ChatRequest) -> None:
    """Modelfile options (ollama.md §4); runner and hardware knobs (num_ctx, num_gpu...) are ignored."""
    options = optional(body, "options", as_object) or {}
    num_predict = optional(options, "num_predict", _option_int, at="options")
    req.max_tokens = num_predict if num_predict is not None and num_predict > 0 else None  # -1/-2/0
    req.temperature = optional(options, "temperature", as_number, at="options")
    req.top_p = optional(options, "top_p", as_number, at="options")
    top_k = optional(options, "top_k", _option_int, at="options")
    req.top_k = top_k if top_k is not None and top_k > 0 else None
    seed = optional(options, "seed", _option_int, at="options")
    if seed is not None and seed > INT32_MAX:
        fail("options.seed", f"'options.seed' must be at most {INT32_MAX}")
    req.seed = seed if seed is not None and seed >= 0 else None  # -1 = random
    req.presence_penalty = optional(options, "presence_penalty", as_number, at="options")
    req.frequency_penalty = optional(options, "frequency_penalty", as_number, at="options")
    req.stop = optional(options, "stop", _stop, at="options") or []


def _apply_think(value: Any, req: hub.ChatRequest) -> None:
    """mapping.md §5.4: true shows thoughts, false turns thinking off, a level sets the effort."""
    if value is None:
        return
    if value is True:
        req.include_thoughts = True
    elif value is False:
        req.reasoning_effort = "none"
    elif isinstance(value, str) and value in THINK_LEVELS:
        req.reasoning_effort = THINK_LEVELS[value]
        req.include_thoughts = True
    else:
        fail("think", '\'think\' must be true, false, "low", "medium", "high" or "max"')


def _apply_generation(body: dict[str, Any], req: hub.ChatRequest) -> None:
    stream = optional(body, "stream", as_bool)
    req.stream = True if stream is None else stream  # Ollama streams unless told not to
    req.include_usage = req.stream  # the final NDJSON line always carries the counts
    req.response_format = _format(body.get("format"))
    _apply_options(body, req)
    _apply_think(body.get("think"), req)
    top = optional(body, "top_logprobs", as_int)
    if top is not None and not 0 <= top <= 20:
        fail("top_logprobs", "top_logprobs must be between 0 and 20")  # Ollama's own wording
    req.logprobs = bool(optional(body, "logprobs", as_bool)) or bool(top)
    req.top_logprobs = top if req.logprobs and top else None


# --- public: chat, generate, load ------------------------------------------------------------


def parse_chat_request(body: object) -> hub.ChatRequest:
    """POST /api/chat -> hub.ChatRequest (mapping.md §9.1). Check is_load_request first:
    an empty `messages` list is a load request and is rejected here."""
    body = request_body(body)
    req = hub.ChatRequest(model=_model(body), messages=_messages(body.get("messages")))
    _apply_generation(body, req)
    req.tools = optional(body, "tools", _tools) or []  # [] = none (ollama-python always sends it)
    return req


def parse_generate_request(body: object) -> hub.ChatRequest:
    """POST /api/generate -> hub.ChatRequest (mapping.md §9.3); template/raw/context are ignored.
    Check is_load_request first: an empty prompt without images is rejected here."""
    body = request_body(body)
    model = _model(body)
    if optional(body, "suffix", as_string):
        fail("suffix", f'"{model}" does not support insert')
    prompt = optional(body, "prompt", as_string) or ""
    images = _images(body.get("images"), "images")
    if not prompt and not images:
        fail("prompt", "'prompt' must not be empty (an empty prompt only loads the model)")
    messages = []
    system = optional(body, "system", as_string)
    if system:
        messages.append(hub.Message("system", [_text(system)]))
    messages.append(hub.Message("user", ([_text(prompt)] if prompt else []) + images))
    req = hub.ChatRequest(model=model, messages=messages)
    _apply_generation(body, req)
    return req


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def is_load_request(body: object) -> bool:
    """True when a /api/chat or /api/generate body only loads (or unloads) the model: no
    `messages`, no `prompt`, no `images` (ollama.md §2, §3). Answer it with parse_load_request +
    build_load_response, without calling the upstream. Non-objects give False (parse_* then 400s)."""
    return isinstance(body, dict) and all(_empty(body.get(k)) for k in ("messages", "prompt", "images"))


@dataclass(frozen=True)
class LoadRequest:
    model: str
    done_reason: str  # "load", or "unload" when keep_alive is 0


def _unloads(keep_alive: Any) -> bool:
    if isinstance(keep_alive, bool):
        return False
    if isinstance(keep_alive, (int, float)):
        return keep_alive == 0
    if not isinstance(keep_alive, str):
        return False
    text = keep_alive.strip()
    try:
        return float(text) == 0
    except ValueError:
        return _ZERO_DURATION.fullmatch(text) is not None


def parse_load_request(body: object) -> LoadRequest:
    """A body for which is_load_request() is true -> model (still to be routed: 404/403) and reason."""
    body = request_body(body)
    return LoadRequest(_model(body), "unload" if _unloads(body.get("keep_alive")) else "load")


# --- public: embeddings (mapping.md §10), show ------------------------------------------------------


def _embed_inputs(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if not isinstance(value, list):
        fail("input", "invalid input type: 'input' must be a string or an array of strings")
    return [as_string(text, f"input[{j}]", nonempty=True) for j, text in enumerate(value)]


def parse_embed_request(body: object) -> hub.EmbedRequest:
    """POST /api/embed -> hub.EmbedRequest with normalize=True (Ollama L2-normalises).
    `inputs == []` (empty string/array) -> answer build_empty_embed_response(model), no upstream."""
    body = request_body(body)
    return hub.EmbedRequest(
        model=_model(body),
        inputs=_embed_inputs(body.get("input")),
        # Ollama's wording: no ", got 0"
        dimensions=optional(body, "dimensions", as_int, *EMBED_DIMENSIONS, echo=False),
        normalize=True,
    )


def parse_legacy_embeddings_request(body: object) -> hub.EmbedRequest:
    """POST /api/embeddings (`prompt`, one vector, not normalised). An empty prompt gives
    `inputs == []` -> answer build_legacy_embeddings_response(EmbedResponse([], Usage())), no upstream."""
    body = request_body(body)
    prompt = optional(body, "prompt", as_string) or ""
    return hub.EmbedRequest(model=_model(body), inputs=[prompt] if prompt else [], normalize=False)


def parse_show_request(body: object) -> str:
    """POST /api/show -> the model name (`model`, or the legacy `name`)."""
    body = request_body(body)
    name = body.get("model") or body.get("name")
    if name is None or name == "":
        fail("model", "model is required")
    return as_string(name, "model")
