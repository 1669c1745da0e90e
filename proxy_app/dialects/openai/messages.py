"""OpenAI client dialect, inbound: `messages` -> hub messages (roles, content parts, media, tool calls).

Pure functions, no Django and no I/O, used by request.py's `parse_chat_request`. Field policy
follows docs/reference/mapping.md §2 and §5; every malformed value raises errors.InvalidRequest
whose `param` is the field path ("messages[2].content[0].image_url.url").
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

import orjson

from proxy_app.core import hub
from proxy_app.dialects.validate import (
    as_list,
    as_object,
    as_string,
    fail,
    one_of,
    optional,
)
from proxy_app.upstreams.openai_compat.request import AUDIO_FORMATS

# --- messages (mapping.md §2) ----------------------------------------------------------------


def parse_messages(value: Any) -> list[hub.Message]:
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
        id=f"{hub.SYNTHETIC_CALL_PREFIX}fn{index}",
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
