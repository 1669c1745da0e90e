"""Anthropic dialect, inbound: `system` and `messages` content blocks -> hub messages.

Pure functions, no Django and no I/O, used by request.py. The rules are
docs/reference/anthropic.md §2.1 and §6.2: text, image (base64 or url) and document blocks become
hub parts; assistant `tool_use` blocks become hub tool calls; the `tool_result` blocks of a user
turn become hub "tool" messages (in block order, before the rest of that turn); `thinking` blocks
keep only a gateway-tagged signature (see SIGNATURE_TAG), which goes onto the next tool call of
the same turn. Every malformed value raises errors.InvalidRequest with `param` set to its path.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from proxy_app.core import hub
from proxy_app.dialects.validate import as_bool, as_list, as_object, as_string, fail, one_of, optional

# A thinking block's `signature` that the gateway wrote itself: "gw1." + the Gemini thought
# signature of the function call that followed the thoughts (response.py writes it). Signatures
# without the tag (e.g. from Anthropic's own API, when a client switched backends) are ignored.
SIGNATURE_TAG = "gw1."
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
# Assistant blocks that carry nothing an upstream of ours can use.
DROPPED_ASSISTANT_BLOCKS = ("redacted_thinking", "server_tool_use", "web_search_tool_result", "web_fetch_tool_result")


def system_messages(value: Any) -> list[hub.Message]:
    """`system`: a string or an array of text blocks (cache_control and citations ignored); one
    system message per block, so upstreams separate them ("\n\n" on Gemini, §6.1) instead of
    gluing the texts together."""
    if value is None:
        return []
    if isinstance(value, str):
        return [hub.Message("system", [hub.Part("text", text=value)])] if value else []
    parts = [_text_block(as_object(b, f"system[{j}]"), f"system[{j}]") for j, b in enumerate(as_list(value, "system"))]
    return [hub.Message("system", [part]) for part in parts if part.text]


def _text_block(block: dict[str, Any], param: str) -> hub.Part:
    one_of(block.get("type"), f"{param}.type", ("text",))
    return hub.Part("text", text=as_string(block.get("text"), f"{param}.text"))


def parse_turns(value: Any) -> list[hub.Message]:
    items = as_list(value, "messages")
    if not items:
        fail("messages", "messages: at least one message is required")
    out: list[hub.Message] = []
    for i, raw in enumerate(items):
        param = f"messages[{i}]"
        raw = as_object(raw, param)
        role = one_of(raw.get("role"), f"{param}.role", ("user", "assistant", "system"))
        content = raw.get("content")
        if role == "system":  # newer SDKs type mid-conversation system turns
            out.extend(system_messages(content))
        elif role == "user":
            out.extend(_user_turn(content, f"{param}.content", out))
        else:
            message = _assistant_turn(content, f"{param}.content")
            if message is not None:
                out.append(message)
    return out


def _blocks(content: Any, param: str) -> list[tuple[dict[str, Any], str]]:
    """String content as one text block, else the array of block objects with their paths."""
    if isinstance(content, str):
        return [({"type": "text", "text": content}, param)]
    if not isinstance(content, list):
        fail(param, f"'{param}' must be a string or an array of content blocks")
    return [(as_object(b, f"{param}[{j}]"), f"{param}[{j}]") for j, b in enumerate(content)]


# --- user turns ----------------------------------------------------------------------------------


def _user_turn(content: Any, param: str, history: list[hub.Message]) -> list[hub.Message]:
    results: list[hub.Message] = []
    parts: list[hub.Part] = []
    for block, p in _blocks(content, param):
        if block.get("type") == "tool_result":
            result, extra = _tool_result(block, p, history)
            results.append(result)
            parts.extend(extra)  # images inside a result follow the results as user content
        else:
            part = _user_part(block, p)
            if part is not None:
                parts.append(part)
    return results + ([hub.Message("user", parts)] if parts else [])


def _user_part(block: dict[str, Any], param: str) -> hub.Part | None:
    kind = block.get("type")
    if kind == "text":
        text = as_string(block.get("text"), f"{param}.text")
        return hub.Part("text", text=text) if text else None
    if kind == "image":
        return _image(as_object(block.get("source"), f"{param}.source"), f"{param}.source")
    if kind == "document":
        return _document(block, param)
    if kind == "search_result":
        items = _blocks(block.get("content") or [], f"{param}.content")
        return hub.Part("text", text="\n".join(_text_block(b, p).text for b, p in items))
    fail(f"{param}.type", f"unsupported content block type {kind!r}; use text, image, document or tool_result")


def _image(source: dict[str, Any], param: str) -> hub.Part:
    kind = one_of(source.get("type"), f"{param}.type", ("base64", "url"))
    if kind == "url":
        return _url_part(source, param)
    mime = one_of(source.get("media_type"), f"{param}.media_type", IMAGE_TYPES)
    return hub.Part("media", mime_type=mime, data=_base64(source.get("data"), f"{param}.data"))


def _url_part(source: dict[str, Any], param: str) -> hub.Part:
    url = as_string(source.get("url"), f"{param}.url", nonempty=True)
    if url.split(":", 1)[0].lower() not in ("http", "https"):
        fail(f"{param}.url", "the url must be an http(s) URL")
    return hub.Part("media_url", url=url)  # fetched by the pipeline behind its SSRF guard


def _base64(value: Any, param: str) -> str:
    data = as_string(value, param, nonempty=True)
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        fail(param, f"'{param}' is not valid base64 data")
    return data


def _document(block: dict[str, Any], param: str) -> hub.Part:
    source = as_object(block.get("source"), f"{param}.source")
    p = f"{param}.source"
    kind = one_of(source.get("type"), f"{p}.type", ("base64", "text", "content", "url"))
    title = optional(block, "title", as_string, at=param)
    if kind == "base64":
        one_of(source.get("media_type"), f"{p}.media_type", ("application/pdf",))
        return hub.Part("media", mime_type="application/pdf", data=_base64(source.get("data"), f"{p}.data"))
    if kind == "url":
        return _url_part(source, p)
    if kind == "text":
        text = as_string(source.get("data"), f"{p}.data")
    else:
        items = _blocks(source.get("content"), f"{p}.content")
        text = "\n".join(_text_block(b, bp).text for b, bp in items)
    return hub.Part("text", text=f"{title}\n\n{text}" if title else text)


def _tool_result(block: dict[str, Any], param: str, history: list[hub.Message]) -> tuple[hub.Message, list[hub.Part]]:
    call_id = as_string(block.get("tool_use_id"), f"{param}.tool_use_id", nonempty=True)
    call = next((c for m in reversed(history) for c in m.tool_calls if c.id == call_id), None)
    if call is None:
        fail(f"{param}.tool_use_id", f"unknown tool_use_id {call_id!r}: no earlier tool_use block has this id")
    texts: list[str] = []
    media: list[hub.Part] = []
    content = block.get("content")
    if content is not None:
        for item, p in _blocks(content, f"{param}.content"):
            part = _user_part(item, p)
            if part is not None and part.type == "text":
                texts.append(part.text)
            elif part is not None:
                media.append(part)
    text = "\n".join(texts)
    if optional(block, "is_error", as_bool, at=param):
        # Read by the Gemini upstream as the functionResponse {"error": text} (anthropic.md §6.2).
        text = orjson.dumps({"error": text}).decode()
    return hub.Message("tool", [hub.Part("text", text=text)], tool_call_id=call_id, name=call.name), media


# --- assistant turns -----------------------------------------------------------------------------


def _assistant_turn(content: Any, param: str) -> hub.Message | None:
    parts: list[hub.Part] = []
    calls: list[hub.ToolCall] = []
    signature: str | None = None  # from a thinking block, for the next tool call
    for block, p in _blocks(content, param):
        kind = block.get("type")
        if kind == "text":
            text = as_string(block.get("text"), f"{p}.text")
            if text:
                parts.append(hub.Part("text", text=text))
        elif kind == "tool_use":
            calls.append(_tool_use(block, p, signature))
            signature = None
        elif kind == "thinking":
            signature = _own_signature(block.get("signature"), f"{p}.signature") or signature
        elif kind not in DROPPED_ASSISTANT_BLOCKS:
            fail(f"{p}.type", f"unsupported assistant content block type {kind!r}")
    if not parts and not calls:
        return None  # e.g. only thinking: nothing to send (mapping.md §2.3)
    return hub.Message("assistant", parts, tool_calls=calls)


def _own_signature(value: Any, param: str) -> str | None:
    if value is None:
        return None
    signature = as_string(value, param)
    return signature.removeprefix(SIGNATURE_TAG) if signature.startswith(SIGNATURE_TAG) else None


def _tool_use(block: dict[str, Any], param: str, signature: str | None) -> hub.ToolCall:
    raw_input = block.get("input")
    return hub.ToolCall(
        id=as_string(block.get("id"), f"{param}.id", nonempty=True),
        name=as_string(block.get("name"), f"{param}.name", nonempty=True),
        arguments={} if raw_input is None else as_object(raw_input, f"{param}.input"),
        thought_signature=signature,
    )
