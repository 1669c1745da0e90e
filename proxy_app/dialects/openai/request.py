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
from collections.abc import Callable
from typing import Any

import orjson

from proxy_app.core import hub
from proxy_app.dialects.openai.response import (
    ChatStreamEncoder,
    CompletionStreamEncoder,
    build_chat_response,
    build_completion_response,
    build_embed_response,
    build_error,
    build_model,
    build_model_list,
)
from proxy_app.dialects.validate import (
    INT32,
    as_bool,
    as_function_name,
    as_int,
    as_list,
    as_number,
    as_object,
    as_string,
    fail,
    one_of,
    optional,
    request_body,
)

__all__ = [  # the dialect's whole public surface, inbound and outbound
    "parse_chat_request",
    "parse_completion_request",
    "parse_embed_request",
    "build_chat_response",
    "build_completion_response",
    "build_embed_response",
    "build_error",
    "build_model",
    "build_model_list",
    "ChatStreamEncoder",
    "CompletionStreamEncoder",
]

REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
AUDIO_FORMATS = {"wav": "audio/wav", "mp3": "audio/mpeg"}
# Prefix of ids the gateway invents; the Gemini codec strips these when replaying (mapping.md §6.3).
SYNTHETIC_CALL_PREFIX = "call_gw_"
MAX_EMBED_INPUTS = 2048


# --- messages (mapping.md §2) ----------------------------------------------------------------


def _parse_messages(value: Any) -> list[hub.Message]:
    items = as_list(value, "messages")
    if not items:
        fail("messages", "'messages' must contain at least one message")
    out: list[hub.Message] = []
    for i, raw in enumerate(items):
        param = f"messages[{i}]"
        message = _parse_message(as_object(raw, param), param, i, out)
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
    fail(f"{param}.role", f"'{param}.role' must be one of system, developer, user, assistant, tool, function")


def _text_parts(content: Any, param: str, kinds: tuple[str, ...] = ("text",)) -> list[hub.Part]:
    """String content, or an array of text parts (assistant history may also hold refusals)."""
    if isinstance(content, str):
        return [hub.Part("text", text=content)]
    parts = []
    for j, raw in enumerate(_content_list(content, param)):
        p = f"{param}[{j}]"
        kind = as_object(raw, p).get("type")
        if kind not in kinds:
            fail(f"{p}.type", f"this message accepts only {' / '.join(kinds)} parts, got {kind!r}")
        parts.append(hub.Part("text", text=as_string(raw.get(kind), f"{p}.{kind}")))
    return parts


def _user_content(content: Any, param: str) -> list[hub.Part]:
    if isinstance(content, str):
        return [hub.Part("text", text=content)]
    items = _content_list(content, param)
    return [_user_part(as_object(raw, f"{param}[{j}]"), f"{param}[{j}]") for j, raw in enumerate(items)]


def _content_list(content: Any, param: str) -> list[Any]:
    if not isinstance(content, list):
        fail(param, f"'{param}' must be a string or an array of content parts")
    return content


def _user_part(raw: dict[str, Any], param: str) -> hub.Part:
    kind = raw.get("type")
    if kind == "text":
        return hub.Part("text", text=as_string(raw.get("text"), f"{param}.text"))
    if kind == "image_url":
        image = as_object(raw.get("image_url"), f"{param}.image_url")
        return _media_from_url(as_string(image.get("url"), f"{param}.image_url.url"), f"{param}.image_url.url")
    if kind == "input_audio":
        return _audio_part(as_object(raw.get("input_audio"), f"{param}.input_audio"), f"{param}.input_audio")
    if kind == "file":
        return _file_part(as_object(raw.get("file"), f"{param}.file"), f"{param}.file")
    fail(f"{param}.type", f"unsupported content part type {kind!r}; use text, image_url, input_audio or file")


def _media_from_url(url: str, param: str) -> hub.Part:
    scheme = url.split(":", 1)[0].lower()
    if scheme == "data":
        return _data_url_part(url, param)
    if scheme in ("http", "https"):
        return hub.Part("media_url", url=url)  # fetched later by proxy_app.media, not here
    fail(param, "image URL must be a data: URL or an http(s) URL")


def _data_url_part(url: str, param: str) -> hub.Part:
    header, comma, data = url.partition(",")
    if not comma or not header.lower().endswith(";base64"):
        fail(param, "expected a data URL of the form data:<mime>;base64,<data>")
    raw = _decode_base64(data, param)
    mime = header[5:].split(";", 1)[0].strip().lower() or _sniff_mime(raw)
    if not mime:
        fail(param, "could not detect the media type; put it in the data URL (data:image/png;base64,...)")
    return hub.Part("media", mime_type=mime, data=data)


def _decode_base64(data: Any, param: str) -> bytes:
    try:
        raw = base64.b64decode(as_string(data, param), validate=True)
    except (binascii.Error, ValueError):
        fail(param, "invalid base64 data")
    if not raw:
        fail(param, "media data must not be empty")
    return raw


MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"%PDF-", "application/pdf"),
)


def _sniff_mime(raw: bytes) -> str:
    """Magic numbers of the formats clients send without a MIME type (mapping.md §9.1)."""
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in MAGIC if raw.startswith(magic)), "")


def _audio_part(audio: dict[str, Any], param: str) -> hub.Part:
    data = audio.get("data")
    _decode_base64(data, f"{param}.data")
    fmt = one_of(audio.get("format"), f"{param}.format", AUDIO_FORMATS)
    return hub.Part("media", mime_type=AUDIO_FORMATS[fmt], data=data)


def _file_part(file: dict[str, Any], param: str) -> hub.Part:
    if file.get("file_id") is not None:
        fail(f"{param}.file_id", "uploaded files (file_id) are not supported; send file_data as a data: URL")
    url = as_string(file.get("file_data"), f"{param}.file_data")
    if not url.lower().startswith("data:"):
        fail(f"{param}.file_data", "file_data must be a data: URL (data:<mime>;base64,<data>)")
    return _data_url_part(url, f"{param}.file_data")


def _assistant(raw: dict[str, Any], param: str, index: int) -> hub.Message | None:
    content = raw.get("content")
    parts = [] if content is None else _text_parts(content, f"{param}.content", ("text", "refusal"))
    parts = [p for p in parts if p.text]
    raw_calls = optional(raw, "tool_calls", as_list, at=param) or []
    calls = [_tool_call(c, f"{param}.tool_calls[{k}]") for k, c in enumerate(raw_calls)]
    if raw.get("function_call") is not None:  # legacy history: give the call an id to answer
        calls.append(_legacy_call(raw["function_call"], f"{param}.function_call", index))
    if not parts and not calls:
        return None  # content null and no calls: nothing to send (mapping.md §2.3)
    return hub.Message("assistant", parts, tool_calls=calls)


def _tool_call(raw: Any, param: str) -> hub.ToolCall:
    raw = as_object(raw, param)
    if raw.get("type") is not None:
        one_of(raw["type"], f"{param}.type", ("function",))
    function = as_object(raw.get("function"), f"{param}.function")
    return hub.ToolCall(
        id=as_string(raw.get("id"), f"{param}.id", nonempty=True),
        name=as_string(function.get("name"), f"{param}.function.name", nonempty=True),
        arguments=_arguments(function.get("arguments"), f"{param}.function.arguments"),
        thought_signature=_thought_signature(raw.get("extra_content"), f"{param}.extra_content"),
    )


def _legacy_call(raw: Any, param: str, index: int) -> hub.ToolCall:
    raw = as_object(raw, param)
    return hub.ToolCall(
        id=f"{SYNTHETIC_CALL_PREFIX}fn{index}",
        name=as_string(raw.get("name"), f"{param}.name", nonempty=True),
        arguments=_arguments(raw.get("arguments"), f"{param}.arguments"),
    )


def _arguments(value: Any, param: str) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, dict):  # not OpenAI's shape, but unambiguous; some clients send objects
        return value
    try:
        args = orjson.loads(as_string(value, param))
    except orjson.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        fail(param, "invalid tool call arguments: expected a JSON object encoded as a string")
    return args


def _thought_signature(extra: Any, param: str) -> str | None:
    if extra is None:
        return None
    extra = as_object(extra, param)
    # Vertex's compat layer files the same signature under "vertex" (gemini.md §15).
    vendor = "google" if extra.get("google") is not None else "vertex"
    scope = extra.get(vendor)
    if scope is None:
        return None
    signature = as_object(scope, f"{param}.{vendor}").get("thought_signature")
    return None if signature is None else as_string(signature, f"{param}.{vendor}.thought_signature")


def _find_call(history: list[hub.Message], match: Callable[[hub.ToolCall], bool]) -> hub.ToolCall | None:
    """Latest earlier assistant tool call that matches (tool messages carry no function name)."""
    for message in reversed(history):
        for call in reversed(message.tool_calls):
            if match(call):
                return call
    return None


def _tool_result(raw: dict[str, Any], param: str, history: list[hub.Message]) -> hub.Message:
    call_id = as_string(raw.get("tool_call_id"), f"{param}.tool_call_id", nonempty=True)
    call = _find_call(history, lambda c: c.id == call_id)
    if call is None:
        fail(f"{param}.tool_call_id", f"unknown tool_call_id {call_id!r}: no earlier assistant tool call has it")
    parts = _text_parts(raw.get("content"), f"{param}.content")
    return hub.Message("tool", parts, tool_call_id=call_id, name=call.name)


def _function_result(raw: dict[str, Any], param: str, history: list[hub.Message]) -> hub.Message:
    name = as_string(raw.get("name"), f"{param}.name", nonempty=True)
    call = _find_call(history, lambda c: c.name == name)
    if call is None:
        fail(f"{param}.name", f"no earlier assistant call of function {name!r} to answer")
    parts = _text_parts(raw.get("content"), f"{param}.content")
    return hub.Message("tool", parts, tool_call_id=call.id, name=name)


# --- generation settings (mapping.md §1) ------------------------------------------------------


def _stop(value: Any, param: str) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    items = as_list(value, param)
    if len(items) > 4:
        fail(param, f"'{param}' accepts at most 4 sequences")
    return [s for j, s in enumerate(items) if as_string(s, f"{param}[{j}]")]  # empty strings dropped


def _apply_sampling(body: dict[str, Any], req: hub.ChatRequest) -> None:
    """Fields the chat and legacy completion endpoints share."""
    req.stream = bool(optional(body, "stream", as_bool))
    options = optional(body, "stream_options", as_object) or {}
    req.include_usage = req.stream and bool(optional(options, "include_usage", as_bool, at="stream_options"))
    req.temperature = optional(body, "temperature", as_number, 0, 2)
    req.top_p = optional(body, "top_p", as_number, 0, 1)
    top_k = optional(body, "top_k", as_int)
    req.top_k = top_k if top_k is not None and top_k > 0 else None  # 0 / -1 mean "off" in vLLM, Ollama
    req.n = optional(body, "n", as_int, 1, 8) or 1
    if req.n > 1 and req.stream:
        # Multi-candidate streaming is unverified on Gemini (mapping.md §1).
        fail("n", "n > 1 is not supported with stream: true")
    req.stop = optional(body, "stop", _stop) or []
    req.seed = optional(body, "seed", as_int, *INT32)
    req.presence_penalty = optional(body, "presence_penalty", as_number, -2, 2)
    req.frequency_penalty = optional(body, "frequency_penalty", as_number, -2, 2)


def _max_tokens(body: dict[str, Any]) -> int | None:
    newer = optional(body, "max_completion_tokens", as_int, 1)
    older = optional(body, "max_tokens", as_int, 1)
    return newer if newer is not None else older


def _apply_logprobs(body: dict[str, Any], req: hub.ChatRequest) -> None:
    req.logprobs = bool(optional(body, "logprobs", as_bool))
    req.top_logprobs = optional(body, "top_logprobs", as_int, 0, 20)
    if req.top_logprobs is not None and not req.logprobs:
        fail("top_logprobs", "'top_logprobs' requires 'logprobs': true")


def _response_format(value: Any, param: str) -> hub.ResponseFormat:
    value = as_object(value, param)
    kind = one_of(value.get("type"), f"{param}.type", ("text", "json_object", "json_schema"))
    if kind != "json_schema":
        return hub.ResponseFormat(kind)
    spec = as_object(value.get("json_schema"), f"{param}.json_schema")
    name = optional(spec, "name", as_string, at=f"{param}.json_schema") or "response"
    schema = spec.get("schema")
    if schema is None:
        return hub.ResponseFormat("json_object", name=name)  # no schema: plain JSON mode (§4)
    return hub.ResponseFormat("json_schema", schema=as_object(schema, f"{param}.json_schema.schema"), name=name)


def _tools(value: Any, param: str) -> list[hub.Tool]:
    tools: list[hub.Tool] = []
    for i, raw in enumerate(as_list(value, param)):
        p = f"{param}[{i}]"
        kind = as_object(raw, p).get("type")
        if kind != "function":
            fail(f"{p}.type", f"only function tools are supported, got {kind!r}")
        tool = _function_tool(as_object(raw.get("function"), f"{p}.function"), f"{p}.function")
        if any(t.name == tool.name for t in tools):
            fail(f"{p}.function.name", f"duplicate function name {tool.name!r}")
        tools.append(tool)
    return tools


def _function_tool(fn: dict[str, Any], param: str) -> hub.Tool:
    return hub.Tool(
        name=as_function_name(fn.get("name"), f"{param}.name"),
        description=optional(fn, "description", as_string, at=param) or "",
        parameters=optional(fn, "parameters", as_object, at=param),
    )


def _tool_choice(value: Any, tools: list[hub.Tool]) -> hub.ToolChoice | None:
    choice = _tool_choice_shape(value)
    if not tools and not choice.names and choice.mode != "required":
        return None  # "auto" / "none" without tools: frameworks send it by habit (mapping.md §3)
    if not tools and choice.mode == "required" and not choice.names:
        fail("tool_choice", "tool_choice 'required' needs at least one tool in 'tools'")
    declared = {t.name for t in tools}
    for name in choice.names:
        if name not in declared:
            fail("tool_choice", f"tool_choice names function {name!r}, which is not declared in 'tools'")
    return choice


def _tool_choice_shape(value: Any) -> hub.ToolChoice:
    if isinstance(value, str):
        return hub.ToolChoice(one_of(value, "tool_choice", ("auto", "none", "required")))
    value = as_object(value, "tool_choice")
    kind = one_of(value.get("type"), "tool_choice.type", ("function", "allowed_tools"))
    if kind == "function":
        return hub.ToolChoice("required", [_function_name(value, "tool_choice")])
    allowed = as_object(value.get("allowed_tools"), "tool_choice.allowed_tools")
    mode = one_of(allowed.get("mode"), "tool_choice.allowed_tools.mode", ("auto", "required"))
    entries = as_list(allowed.get("tools"), "tool_choice.allowed_tools.tools")
    if not entries:
        fail("tool_choice.allowed_tools.tools", "'tool_choice.allowed_tools.tools' must not be empty")
    names = []
    for k, entry in enumerate(entries):
        p = f"tool_choice.allowed_tools.tools[{k}]"
        one_of(as_object(entry, p).get("type"), f"{p}.type", ("function",))
        names.append(_function_name(entry, p))
    return hub.ToolChoice(mode, names)


def _function_name(value: dict[str, Any], param: str) -> str:
    function = as_object(value.get("function"), f"{param}.function")
    return as_string(function.get("name"), f"{param}.function.name", nonempty=True)


# --- Gemini extras: extra_body.google.* or top-level google.* (gemini.md §15) ---------------------


def _apply_google(body: dict[str, Any], req: hub.ChatRequest) -> None:
    sources = [("google", body.get("google"))]
    if body.get("extra_body") is not None:
        sources.append(("extra_body.google", as_object(body["extra_body"], "extra_body").get("google")))
    for prefix, google in sources:  # extra_body (the documented spot) wins over the shortcut
        if google is None:
            continue
        google = as_object(google, prefix)
        thinking = optional(google, "thinking_config", as_object, at=prefix)
        if thinking is not None:
            req.thinking_config = _thinking_config(thinking, f"{prefix}.thinking_config")
        req.cached_content = optional(google, "cached_content", as_string, at=prefix) or req.cached_content
        settings = optional(google, "safety_settings", as_list, at=prefix)
        if settings is not None:
            req.safety_settings = [as_object(s, f"{prefix}.safety_settings[{k}]") for k, s in enumerate(settings)]


THINKING_TYPES: dict[str, Callable[[Any, str], Any]] = {
    "thinkingBudget": as_int,
    "includeThoughts": as_bool,
    "thinkingLevel": lambda v, p: as_string(v, p, nonempty=True).upper(),
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
            fail(key, f"legacy '{key}' is not supported; use tools/tool_choice")
    modalities = optional(body, "modalities", as_list) or []
    if "audio" in modalities:
        fail("modalities", "audio output is not supported")
    if body.get("audio") is not None:
        fail("audio", "audio output is not supported")


def _model(body: dict[str, Any]) -> str:
    return as_string(body.get("model"), "model", nonempty=True)


# --- public: chat -----------------------------------------------------------------------------


def parse_chat_request(body: object) -> hub.ChatRequest:
    """POST /v1/chat/completions body -> hub.ChatRequest (ignored fields per mapping.md §1)."""
    body = request_body(body)
    _reject_unsupported(body)
    req = hub.ChatRequest(model=_model(body), messages=_parse_messages(body.get("messages")))
    _apply_sampling(body, req)
    req.max_tokens = _max_tokens(body)
    _apply_logprobs(body, req)
    req.response_format = optional(body, "response_format", _response_format)
    req.tools = optional(body, "tools", _tools) or []
    if body.get("tool_choice") is not None:
        req.tool_choice = _tool_choice(body["tool_choice"], req.tools)
    req.reasoning_effort = optional(body, "reasoning_effort", one_of, REASONING_EFFORTS)
    _apply_google(body, req)
    if req.reasoning_effort is not None and req.thinking_config is not None:
        # Google's compat endpoint refuses the pair as "overlapping functionality".
        fail("reasoning_effort", "set either reasoning_effort or extra_body.google.thinking_config, not both")
    return req


# --- public: embeddings (mapping.md §10) --------------------------------------------------------


def _is_tokens(value: Any) -> bool:
    """Token-id prompts (int or list of ints) rather than text."""
    return isinstance(value, list) or (isinstance(value, int) and not isinstance(value, bool))


def _embed_inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [as_string(value, "input", nonempty=True)]
    if not isinstance(value, list):
        fail("input", "'input' must be a string or an array of strings")
    if not value:
        fail("input", "'input' must not be empty")
    if any(_is_tokens(v) for v in value):
        # Gemini embeds text only; token ids would need the client's tokenizer (mapping.md §10).
        fail("input", "token inputs are not supported for this model")
    if len(value) > MAX_EMBED_INPUTS:
        fail("input", f"'input' accepts at most {MAX_EMBED_INPUTS} items")
    return [as_string(text, f"input[{j}]", nonempty=True) for j, text in enumerate(value)]


def parse_embed_request(body: object) -> tuple[hub.EmbedRequest, str]:
    """POST /v1/embeddings -> (hub request, encoding_format "float" | "base64")."""
    body = request_body(body)
    req = hub.EmbedRequest(
        model=_model(body),
        inputs=_embed_inputs(body.get("input")),
        dimensions=optional(body, "dimensions", as_int, 1),
    )
    return req, optional(body, "encoding_format", one_of, ("float", "base64")) or "float"


# --- public: legacy completions (openai.md §8) -------------------------------------------------


def _prompt(value: Any) -> str:
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        fail("prompt", "'prompt' must be a string or an array with one string")
    if any(_is_tokens(v) for v in value):
        fail("prompt", "token prompts are not supported; send the prompt as a string")
    if len(value) != 1:
        fail("prompt", "send exactly one prompt per request; prompt arrays with several prompts are not supported")
    return as_string(value[0], "prompt[0]")


def _reject_completion_extras(body: dict[str, Any]) -> None:
    if optional(body, "echo", as_bool):
        fail("echo", "echo is not supported")
    if (optional(body, "best_of", as_int, 1) or 1) > 1:
        fail("best_of", "best_of > 1 is not supported")
    if optional(body, "suffix", as_string):
        fail("suffix", "suffix (insertion) is not supported")
    if body.get("logprobs") is not None:
        fail("logprobs", "logprobs are not supported on /v1/completions; use /v1/chat/completions")


def parse_completion_request(body: object) -> hub.ChatRequest:
    """POST /v1/completions -> a one-message chat request (max_tokens defaults to 16 like OpenAI)."""
    body = request_body(body)
    _reject_completion_extras(body)
    user = hub.Message("user", [hub.Part("text", text=_prompt(body.get("prompt")))])
    req = hub.ChatRequest(model=_model(body), messages=[user])
    _apply_sampling(body, req)
    req.max_tokens = optional(body, "max_tokens", as_int, 1) or 16
    return req
