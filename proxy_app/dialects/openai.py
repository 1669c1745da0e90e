"""OpenAI client dialect, inbound half: /v1 request JSON -> hub requests (chat, completions, embeddings).

Pure functions, no Django and no I/O: the view parses the body and hands the object here.
Field policy (map / ignore / 400) follows ../shared/reference/mapping.md §1–§5, §10; wire shapes
follow openai.md §2, §3, §6, §8. Every malformed value raises errors.InvalidRequest whose `param`
is the field path ("messages[2].content[0].image_url.url"), never a bare TypeError/KeyError.
The outbound half (responses, stream frames, error bodies) is openai_stream.py, re-exported here.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

import orjson

from proxy_app import errors, hub
from proxy_app.dialects.openai_stream import (
    ChatStreamEncoder,
    CompletionStreamEncoder,
    build_chat_response,
    build_completion_response,
    build_embed_response,
    build_error,
    build_model,
    build_model_list,
)

__all__ = [  # the dialect's whole public surface, inbound and outbound
    "parse_chat_request", "parse_completion_request", "parse_embed_request",
    "build_chat_response", "build_completion_response", "build_embed_response", "build_error",
    "build_model", "build_model_list", "ChatStreamEncoder", "CompletionStreamEncoder",
]  # fmt: skip

INT32 = (-(2**31), 2**31 - 1)
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
AUDIO_FORMATS = {"wav": "audio/wav", "mp3": "audio/mpeg"}
# Gemini's limit for function names (mapping.md §3); OpenAI's own rule is a subset of it.
FUNCTION_NAME = re.compile(r"[a-zA-Z0-9_.:-]{1,64}")
# Prefix of ids the gateway invents; the Gemini codec strips these when replaying (mapping.md §6.3).
SYNTHETIC_CALL_PREFIX = "call_gw_"
MAX_EMBED_INPUTS = 2048


# --- validation primitives -------------------------------------------------------------------


def _fail(param: str | None, message: str) -> NoReturn:
    raise errors.InvalidRequest(message, param=param)


def _typed(value: Any, param: str, kind: type, noun: str) -> Any:
    if not isinstance(value, kind):
        _fail(param, f"'{param}' must be {noun}")
    return value


def _object(value: Any, param: str) -> dict[str, Any]:
    return _typed(value, param, dict, "an object")


def _list(value: Any, param: str) -> list[Any]:
    return _typed(value, param, list, "an array")


def _bool(value: Any, param: str) -> bool:
    return _typed(value, param, bool, "a boolean")


def _string(value: Any, param: str, *, nonempty: bool = False) -> str:
    _typed(value, param, str, "a string")
    if nonempty and not value:
        _fail(param, f"'{param}' must not be empty")
    return value


def _int(value: Any, param: str, lo: int | None = None, hi: int | None = None) -> int:
    # bool is an int subclass: `true` must not pass as 1.
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(param, f"'{param}' must be an integer")
    _check_range(value, param, lo, hi)
    return value


def _number(value: Any, param: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(param, f"'{param}' must be a number")
    if isinstance(value, float) and not math.isfinite(value):  # math.isfinite(huge int) overflows
        _fail(param, f"'{param}' must be a finite number")
    _check_range(value, param, lo, hi)
    return float(value)


def _check_range(value: float, param: str, lo: float | None, hi: float | None) -> None:
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        _fail(param, f"'{param}' must be {bounds}, got {value}")


def _choice(value: Any, param: str, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    if value not in allowed:
        _fail(param, f"'{param}' must be one of {', '.join(allowed)}")
    return value


def _opt(body: dict[str, Any], key: str, check: Callable[..., Any], *args: Any, at: str = "") -> Any:
    """Validate body[key] unless absent or null (clients send explicit nulls); `at` = body's path."""
    value = body.get(key)
    return None if value is None else check(value, f"{at}.{key}" if at else key, *args)


def _is_tokens(value: Any) -> bool:
    """Token-id prompts (int or list of ints) rather than text."""
    return isinstance(value, list) or (isinstance(value, int) and not isinstance(value, bool))


# --- messages (mapping.md §2) ----------------------------------------------------------------


def _parse_messages(value: Any) -> list[hub.Message]:
    items = _list(value, "messages")
    if not items:
        _fail("messages", "'messages' must contain at least one message")
    out: list[hub.Message] = []
    for i, raw in enumerate(items):
        param = f"messages[{i}]"
        message = _parse_message(_object(raw, param), param, i, out)
        if message is not None:
            out.append(message)
    return out


def _parse_message(raw: dict[str, Any], param: str, index: int, history: list[hub.Message]) -> hub.Message | None:
    role = raw.get("role")
    if role in ("system", "developer"):
        return hub.Message("system", _text_parts(raw.get("content"), f"{param}.content"))
    if role == "user":
        return hub.Message("user", _user_content(raw.get("content"), f"{param}.content"))
    if role == "assistant":
        return _assistant(raw, param, index)
    if role == "tool":
        return _tool_result(raw, param, history)
    if role == "function":
        return _function_result(raw, param, history)
    _fail(f"{param}.role", f"'{param}.role' must be one of system, developer, user, assistant, tool, function")


def _text_parts(content: Any, param: str, kinds: tuple[str, ...] = ("text",)) -> list[hub.Part]:
    """String content, or an array of text parts (assistant history may also hold refusals)."""
    if isinstance(content, str):
        return [hub.Part("text", text=content)]
    parts = []
    for j, raw in enumerate(_content_list(content, param)):
        p = f"{param}[{j}]"
        kind = _object(raw, p).get("type")
        if kind not in kinds:
            _fail(f"{p}.type", f"this message accepts only {' / '.join(kinds)} parts, got {kind!r}")
        parts.append(hub.Part("text", text=_string(raw.get(kind), f"{p}.{kind}")))
    return parts


def _user_content(content: Any, param: str) -> list[hub.Part]:
    if isinstance(content, str):
        return [hub.Part("text", text=content)]
    items = _content_list(content, param)
    return [_user_part(_object(raw, f"{param}[{j}]"), f"{param}[{j}]") for j, raw in enumerate(items)]


def _content_list(content: Any, param: str) -> list[Any]:
    if not isinstance(content, list):
        _fail(param, f"'{param}' must be a string or an array of content parts")
    return content


def _user_part(raw: dict[str, Any], param: str) -> hub.Part:
    kind = raw.get("type")
    if kind == "text":
        return hub.Part("text", text=_string(raw.get("text"), f"{param}.text"))
    if kind == "image_url":
        image = _object(raw.get("image_url"), f"{param}.image_url")
        return _media_from_url(_string(image.get("url"), f"{param}.image_url.url"), f"{param}.image_url.url")
    if kind == "input_audio":
        return _audio_part(_object(raw.get("input_audio"), f"{param}.input_audio"), f"{param}.input_audio")
    if kind == "file":
        return _file_part(_object(raw.get("file"), f"{param}.file"), f"{param}.file")
    _fail(f"{param}.type", f"unsupported content part type {kind!r}; use text, image_url, input_audio or file")


def _media_from_url(url: str, param: str) -> hub.Part:
    scheme = url.split(":", 1)[0].lower()
    if scheme == "data":
        return _data_url_part(url, param)
    if scheme in ("http", "https"):
        return hub.Part("media_url", url=url)  # fetched later by proxy_app.media, not here
    _fail(param, "image URL must be a data: URL or an http(s) URL")


def _data_url_part(url: str, param: str) -> hub.Part:
    header, comma, data = url.partition(",")
    if not comma or not header.lower().endswith(";base64"):
        _fail(param, "expected a data URL of the form data:<mime>;base64,<data>")
    raw = _decode_base64(data, param)
    mime = header[5:].split(";", 1)[0].strip().lower() or _sniff_mime(raw)
    if not mime:
        _fail(param, "could not detect the media type; put it in the data URL (data:image/png;base64,...)")
    return hub.Part("media", mime_type=mime, data=data)


def _decode_base64(data: Any, param: str) -> bytes:
    try:
        raw = base64.b64decode(_string(data, param), validate=True)
    except (binascii.Error, ValueError):
        _fail(param, "invalid base64 data")
    if not raw:
        _fail(param, "media data must not be empty")
    return raw


MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"), (b"%PDF-", "application/pdf"))


def _sniff_mime(raw: bytes) -> str:
    """Magic numbers of the formats clients send without a MIME type (mapping.md §9.1)."""
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in MAGIC if raw.startswith(magic)), "")


def _audio_part(audio: dict[str, Any], param: str) -> hub.Part:
    data = audio.get("data")
    _decode_base64(data, f"{param}.data")
    fmt = _choice(audio.get("format"), f"{param}.format", AUDIO_FORMATS)
    return hub.Part("media", mime_type=AUDIO_FORMATS[fmt], data=data)


def _file_part(file: dict[str, Any], param: str) -> hub.Part:
    if file.get("file_id") is not None:
        _fail(f"{param}.file_id", "uploaded files (file_id) are not supported; send file_data as a data: URL")
    url = _string(file.get("file_data"), f"{param}.file_data")
    if not url.lower().startswith("data:"):
        _fail(f"{param}.file_data", "file_data must be a data: URL (data:<mime>;base64,<data>)")
    return _data_url_part(url, f"{param}.file_data")


def _assistant(raw: dict[str, Any], param: str, index: int) -> hub.Message | None:
    content = raw.get("content")
    parts = [] if content is None else _text_parts(content, f"{param}.content", ("text", "refusal"))
    parts = [p for p in parts if p.text]
    raw_calls = _opt(raw, "tool_calls", _list, at=param) or []
    calls = [_tool_call(c, f"{param}.tool_calls[{k}]") for k, c in enumerate(raw_calls)]
    if raw.get("function_call") is not None:  # legacy history: give the call an id to answer
        calls.append(_legacy_call(raw["function_call"], f"{param}.function_call", index))
    if not parts and not calls:
        return None  # content null and no calls: nothing to send (mapping.md §2.3)
    return hub.Message("assistant", parts, tool_calls=calls)


def _tool_call(raw: Any, param: str) -> hub.ToolCall:
    raw = _object(raw, param)
    if raw.get("type") is not None:
        _choice(raw["type"], f"{param}.type", ("function",))
    function = _object(raw.get("function"), f"{param}.function")
    return hub.ToolCall(
        id=_string(raw.get("id"), f"{param}.id", nonempty=True),
        name=_string(function.get("name"), f"{param}.function.name", nonempty=True),
        arguments=_arguments(function.get("arguments"), f"{param}.function.arguments"),
        thought_signature=_thought_signature(raw.get("extra_content"), f"{param}.extra_content"),
    )


def _legacy_call(raw: Any, param: str, index: int) -> hub.ToolCall:
    raw = _object(raw, param)
    return hub.ToolCall(
        id=f"{SYNTHETIC_CALL_PREFIX}fn{index}",
        name=_string(raw.get("name"), f"{param}.name", nonempty=True),
        arguments=_arguments(raw.get("arguments"), f"{param}.arguments"),
    )


def _arguments(value: Any, param: str) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, dict):  # not OpenAI's shape, but unambiguous; some clients send objects
        return value
    try:
        args = orjson.loads(_string(value, param))
    except orjson.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        _fail(param, "invalid tool call arguments: expected a JSON object encoded as a string")
    return args


def _thought_signature(extra: Any, param: str) -> str | None:
    if extra is None:
        return None
    extra = _object(extra, param)
    # Vertex's compat layer files the same signature under "vertex" (gemini.md §15).
    vendor = "google" if extra.get("google") is not None else "vertex"
    scope = extra.get(vendor)
    if scope is None:
        return None
    signature = _object(scope, f"{param}.{vendor}").get("thought_signature")
    return None if signature is None else _string(signature, f"{param}.{vendor}.thought_signature")


def _find_call(history: list[hub.Message], match: Callable[[hub.ToolCall], bool]) -> hub.ToolCall | None:
    """Latest earlier assistant tool call that matches (tool messages carry no function name)."""
    for message in reversed(history):
        for call in reversed(message.tool_calls):
            if match(call):
                return call
    return None


def _tool_result(raw: dict[str, Any], param: str, history: list[hub.Message]) -> hub.Message:
    call_id = _string(raw.get("tool_call_id"), f"{param}.tool_call_id", nonempty=True)
    call = _find_call(history, lambda c: c.id == call_id)
    if call is None:
        _fail(f"{param}.tool_call_id", f"unknown tool_call_id {call_id!r}: no earlier assistant tool call has it")
    parts = _text_parts(raw.get("content"), f"{param}.content")
    return hub.Message("tool", parts, tool_call_id=call_id, name=call.name)


def _function_result(raw: dict[str, Any], param: str, history: list[hub.Message]) -> hub.Message:
    name = _string(raw.get("name"), f"{param}.name", nonempty=True)
    call = _find_call(history, lambda c: c.name == name)
    if call is None:
        _fail(f"{param}.name", f"no earlier assistant call of function {name!r} to answer")
    parts = _text_parts(raw.get("content"), f"{param}.content")
    return hub.Message("tool", parts, tool_call_id=call.id, name=name)


# --- generation settings (mapping.md §1) ------------------------------------------------------


def _stop(value: Any, param: str) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    items = _list(value, param)
    if len(items) > 4:
        _fail(param, f"'{param}' accepts at most 4 sequences")
    return [s for j, s in enumerate(items) if _string(s, f"{param}[{j}]")]  # empty strings dropped


def _apply_sampling(body: dict[str, Any], req: hub.ChatRequest) -> None:
    """Fields the chat and legacy completion endpoints share."""
    req.stream = bool(_opt(body, "stream", _bool))
    options = _opt(body, "stream_options", _object) or {}
    req.include_usage = req.stream and bool(_opt(options, "include_usage", _bool, at="stream_options"))
    req.temperature = _opt(body, "temperature", _number, 0, 2)
    req.top_p = _opt(body, "top_p", _number, 0, 1)
    top_k = _opt(body, "top_k", _int)
    req.top_k = top_k if top_k is not None and top_k > 0 else None  # 0 / -1 mean "off" in vLLM, Ollama
    req.n = _opt(body, "n", _int, 1, 8) or 1
    if req.n > 1 and req.stream:
        # Multi-candidate streaming is unverified on Gemini (mapping.md §1).
        _fail("n", "n > 1 is not supported with stream: true")
    req.stop = _opt(body, "stop", _stop) or []
    req.seed = _opt(body, "seed", _int, *INT32)
    req.presence_penalty = _opt(body, "presence_penalty", _number, -2, 2)
    req.frequency_penalty = _opt(body, "frequency_penalty", _number, -2, 2)


def _max_tokens(body: dict[str, Any]) -> int | None:
    newer = _opt(body, "max_completion_tokens", _int, 1)
    older = _opt(body, "max_tokens", _int, 1)
    return newer if newer is not None else older


def _apply_logprobs(body: dict[str, Any], req: hub.ChatRequest) -> None:
    req.logprobs = bool(_opt(body, "logprobs", _bool))
    req.top_logprobs = _opt(body, "top_logprobs", _int, 0, 20)
    if req.top_logprobs is not None and not req.logprobs:
        _fail("top_logprobs", "'top_logprobs' requires 'logprobs': true")


def _response_format(value: Any, param: str) -> hub.ResponseFormat:
    value = _object(value, param)
    kind = _choice(value.get("type"), f"{param}.type", ("text", "json_object", "json_schema"))
    if kind != "json_schema":
        return hub.ResponseFormat(kind)
    spec = _object(value.get("json_schema"), f"{param}.json_schema")
    name = _opt(spec, "name", _string, at=f"{param}.json_schema") or "response"
    schema = spec.get("schema")
    if schema is None:
        return hub.ResponseFormat("json_object", name=name)  # no schema: plain JSON mode (§4)
    return hub.ResponseFormat("json_schema", schema=_object(schema, f"{param}.json_schema.schema"), name=name)


def _tools(value: Any, param: str) -> list[hub.Tool]:
    tools: list[hub.Tool] = []
    for i, raw in enumerate(_list(value, param)):
        p = f"{param}[{i}]"
        kind = _object(raw, p).get("type")
        if kind != "function":
            _fail(f"{p}.type", f"only function tools are supported, got {kind!r}")
        tool = _function_tool(_object(raw.get("function"), f"{p}.function"), f"{p}.function")
        if any(t.name == tool.name for t in tools):
            _fail(f"{p}.function.name", f"duplicate function name {tool.name!r}")
        tools.append(tool)
    return tools


def _function_tool(fn: dict[str, Any], param: str) -> hub.Tool:
    name = _string(fn.get("name"), f"{param}.name", nonempty=True)
    if not FUNCTION_NAME.fullmatch(name):
        _fail(f"{param}.name", "function names may use only a-z, A-Z, 0-9, _ . : - and at most 64 characters")
    return hub.Tool(
        name=name,
        description=_opt(fn, "description", _string, at=param) or "",
        parameters=_opt(fn, "parameters", _object, at=param),
    )


def _tool_choice(value: Any, tools: list[hub.Tool]) -> hub.ToolChoice | None:
    choice = _tool_choice_shape(value)
    if not tools and not choice.names and choice.mode != "required":
        return None  # "auto" / "none" without tools: frameworks send it by habit (mapping.md §3)
    if not tools and choice.mode == "required" and not choice.names:
        _fail("tool_choice", "tool_choice 'required' needs at least one tool in 'tools'")
    declared = {t.name for t in tools}
    for name in choice.names:
        if name not in declared:
            _fail("tool_choice", f"tool_choice names function {name!r}, which is not declared in 'tools'")
    return choice


def _tool_choice_shape(value: Any) -> hub.ToolChoice:
    if isinstance(value, str):
        return hub.ToolChoice(_choice(value, "tool_choice", ("auto", "none", "required")))
    value = _object(value, "tool_choice")
    kind = _choice(value.get("type"), "tool_choice.type", ("function", "allowed_tools"))
    if kind == "function":
        return hub.ToolChoice("required", [_function_name(value, "tool_choice")])
    allowed = _object(value.get("allowed_tools"), "tool_choice.allowed_tools")
    mode = _choice(allowed.get("mode"), "tool_choice.allowed_tools.mode", ("auto", "required"))
    entries = _list(allowed.get("tools"), "tool_choice.allowed_tools.tools")
    if not entries:
        _fail("tool_choice.allowed_tools.tools", "'tool_choice.allowed_tools.tools' must not be empty")
    names = []
    for k, entry in enumerate(entries):
        p = f"tool_choice.allowed_tools.tools[{k}]"
        _choice(_object(entry, p).get("type"), f"{p}.type", ("function",))
        names.append(_function_name(entry, p))
    return hub.ToolChoice(mode, names)


def _function_name(value: dict[str, Any], param: str) -> str:
    function = _object(value.get("function"), f"{param}.function")
    return _string(function.get("name"), f"{param}.function.name", nonempty=True)


# --- Gemini extras: extra_body.google.* or top-level google.* (gemini.md §15) ---------------------


def _apply_google(body: dict[str, Any], req: hub.ChatRequest) -> None:
    sources = [("google", body.get("google"))]
    if body.get("extra_body") is not None:
        sources.append(("extra_body.google", _object(body["extra_body"], "extra_body").get("google")))
    for prefix, google in sources:  # extra_body (the documented spot) wins over the shortcut
        if google is None:
            continue
        google = _object(google, prefix)
        thinking = _opt(google, "thinking_config", _object, at=prefix)
        if thinking is not None:
            req.thinking_config = _thinking_config(thinking, f"{prefix}.thinking_config")
        req.cached_content = _opt(google, "cached_content", _string, at=prefix) or req.cached_content
        settings = _opt(google, "safety_settings", _list, at=prefix)
        if settings is not None:
            req.safety_settings = [_object(s, f"{prefix}.safety_settings[{k}]") for k, s in enumerate(settings)]


THINKING_TYPES: dict[str, Callable[[Any, str], Any]] = {
    "thinkingBudget": _int,
    "includeThoughts": _bool,
    "thinkingLevel": lambda v, p: _string(v, p, nonempty=True).upper(),
}


def _thinking_config(value: dict[str, Any], param: str) -> dict[str, Any]:
    """snake_case (Google's compat keys) -> camelCase Gemini keys; thinking_level upper-cased."""
    out = {}
    for key, item in value.items():
        head, *rest = key.split("_")
        camel = head + "".join(w[:1].upper() + w[1:] for w in rest)
        check = THINKING_TYPES.get(camel)
        out[camel] = check(item, f"{param}.{key}") if check else item
    return out


def _reject_unsupported(body: dict[str, Any]) -> None:
    for key in ("functions", "function_call"):
        if body.get(key) is not None:
            _fail(key, f"legacy '{key}' is not supported; use tools/tool_choice")
    modalities = _opt(body, "modalities", _list) or []
    if "audio" in modalities:
        _fail("modalities", "audio output is not supported")
    if body.get("audio") is not None:
        _fail("audio", "audio output is not supported")


def _request_body(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        _fail(None, "request body must be a JSON object")
    return body


def _model(body: dict[str, Any]) -> str:
    return _string(body.get("model"), "model", nonempty=True)


# --- public: chat -----------------------------------------------------------------------------


def parse_chat_request(body: object) -> hub.ChatRequest:
    """POST /v1/chat/completions body -> hub.ChatRequest (ignored fields per mapping.md §1)."""
    body = _request_body(body)
    _reject_unsupported(body)
    req = hub.ChatRequest(model=_model(body), messages=_parse_messages(body.get("messages")))
    _apply_sampling(body, req)
    req.max_tokens = _max_tokens(body)
    _apply_logprobs(body, req)
    req.response_format = _opt(body, "response_format", _response_format)
    req.tools = _opt(body, "tools", _tools) or []
    if body.get("tool_choice") is not None:
        req.tool_choice = _tool_choice(body["tool_choice"], req.tools)
    req.reasoning_effort = _opt(body, "reasoning_effort", _choice, REASONING_EFFORTS)
    _apply_google(body, req)
    if req.reasoning_effort is not None and req.thinking_config is not None:
        # Google's compat endpoint refuses the pair as "overlapping functionality".
        _fail("reasoning_effort", "set either reasoning_effort or extra_body.google.thinking_config, not both")
    return req


# --- public: embeddings (mapping.md §10) --------------------------------------------------------


def _embed_inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [_string(value, "input", nonempty=True)]
    if not isinstance(value, list):
        _fail("input", "'input' must be a string or an array of strings")
    if not value:
        _fail("input", "'input' must not be empty")
    if any(_is_tokens(v) for v in value):
        # Gemini embeds text only; token ids would need the client's tokenizer (mapping.md §10).
        _fail("input", "token inputs are not supported for this model")
    if len(value) > MAX_EMBED_INPUTS:
        _fail("input", f"'input' accepts at most {MAX_EMBED_INPUTS} items")
    return [_string(text, f"input[{j}]", nonempty=True) for j, text in enumerate(value)]


def parse_embed_request(body: object) -> tuple[hub.EmbedRequest, str]:
    """POST /v1/embeddings -> (hub request, encoding_format "float" | "base64")."""
    body = _request_body(body)
    req = hub.EmbedRequest(
        model=_model(body),
        inputs=_embed_inputs(body.get("input")),
        dimensions=_opt(body, "dimensions", _int, 1),
    )
    return req, _opt(body, "encoding_format", _choice, ("float", "base64")) or "float"


# --- public: legacy completions (openai.md §8) -------------------------------------------------


def _prompt(value: Any) -> str:
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        _fail("prompt", "'prompt' must be a string or an array with one string")
    if any(_is_tokens(v) for v in value):
        _fail("prompt", "token prompts are not supported; send the prompt as a string")
    if len(value) != 1:
        _fail("prompt", "send exactly one prompt per request; prompt arrays with several prompts are not supported")
    return _string(value[0], "prompt[0]")


def _reject_completion_extras(body: dict[str, Any]) -> None:
    if _opt(body, "echo", _bool):
        _fail("echo", "echo is not supported")
    if (_opt(body, "best_of", _int, 1) or 1) > 1:
        _fail("best_of", "best_of > 1 is not supported")
    if _opt(body, "suffix", _string):
        _fail("suffix", "suffix (insertion) is not supported")
    if body.get("logprobs") is not None:
        _fail("logprobs", "logprobs are not supported on /v1/completions; use /v1/chat/completions")


def parse_completion_request(body: object) -> hub.ChatRequest:
    """POST /v1/completions -> a one-message chat request (max_tokens defaults to 16 like OpenAI)."""
    body = _request_body(body)
    _reject_completion_extras(body)
    user = hub.Message("user", [hub.Part("text", text=_prompt(body.get("prompt")))])
    req = hub.ChatRequest(model=_model(body), messages=[user])
    _apply_sampling(body, req)
    req.max_tokens = _opt(body, "max_tokens", _int, 1) or 16
    return req
