"""Responses dialect, inbound: `input` items -> hub messages.

Pure functions, no Django and no I/O, used by request.py (docs/reference/responses.md §2.1, §7.1):
- message items (user / system / developer / assistant; content a string or `input_text`,
  `input_image`, `output_text`, `refusal` parts); system and developer become system messages;
- consecutive `function_call` items become one assistant message with tool calls (merged into a
  directly preceding assistant text message), `arguments` a JSON string;
- `function_call_output` items become hub "tool" messages, named after their call (images and
  files in a list output follow the run of outputs as one user message);
- `custom_tool_call` / `custom_tool_call_output` items (freeform tools) are function calls with
  arguments `{"input": <text>}` and their outputs;
- `reasoning` items are dropped (thought signatures are kept server-side by the pipeline).
Every malformed value raises errors.InvalidRequest with `param` set to its path.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from proxy_app.core import hub
from proxy_app.dialects.validate import as_list, as_object, as_string, fail, one_of

ROLES = ("user", "assistant", "system", "developer")
TOOL_SEARCH = "tool_search"  # the function a client-executed `tool_search` tool is declared as
NAMESPACE_JOIN = "__"  # a `namespace` tool's function `f` in namespace `ns` is the upstream function ns__f


def namespaced(namespace: str, name: str) -> str:
    """The upstream function name of `name` inside `namespace` (request.py declares it so)."""
    return f"{namespace}{NAMESPACE_JOIN}{name}"


def parse_input(value: Any, param: str = "input") -> list[hub.Message]:
    """A string (one user message) or an array of input items."""
    if isinstance(value, str):
        return [hub.Message("user", [hub.Part("text", text=value)])]
    out: list[hub.Message] = []
    media: list[hub.Part] = []  # images / files of a run of call outputs, sent after the run
    for i, raw in enumerate(as_list(value, param)):
        p = f"{param}[{i}]"
        item = as_object(raw, p)
        kind = item.get("type", "message")
        if kind not in ("function_call_output", "custom_tool_call_output", "tool_search_output") and media:
            out.append(hub.Message("user", media))
            media = []
        if kind == "message":
            _message(item, p, out)
        elif kind == "function_call":
            _function_call(item, p, out)
        elif kind == "custom_tool_call":
            _function_call(item, p, out, custom=True)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            out.append(_function_output(item, p, out, media))
        elif kind == "tool_search_call":
            _search_call(item, p, out)
        elif kind == "tool_search_output":
            out.append(_search_output(item, p, out))
        elif kind == "reasoning":
            continue
        else:
            fail(f"{p}.type", f"unsupported input item type {kind!r}")
    if media:
        out.append(hub.Message("user", media))
    return out


def _message(item: dict[str, Any], param: str, out: list[hub.Message]) -> None:
    role = one_of(item.get("role"), f"{param}.role", ROLES)
    parts = _content(item.get("content"), f"{param}.content", role)
    if not parts:
        return
    if role in ("system", "developer"):
        out.append(hub.Message("system", parts))
    else:
        out.append(hub.Message(role, parts))


def _content(content: Any, param: str, role: str) -> list[hub.Part]:
    if isinstance(content, str):
        return [hub.Part("text", text=content)] if content else []
    parts: list[hub.Part] = []
    for j, raw in enumerate(as_list(content, param)):
        p = f"{param}[{j}]"
        part = as_object(raw, p)
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            text = as_string(part.get("text"), f"{p}.text")
            if text:
                parts.append(hub.Part("text", text=text))
        elif kind == "refusal":
            parts.append(hub.Part("text", text=as_string(part.get("refusal"), f"{p}.refusal")))
        elif kind == "input_image" and role != "assistant":
            parts.append(_image(part, p))
        elif kind == "input_file" and role != "assistant":
            parts.append(_file(part, p))
        else:
            fail(f"{p}.type", f"unsupported content part type {kind!r} in a {role} message")
    return parts


def _data_url(url: str, param: str) -> hub.Part:
    header, _, data = url.partition(",")
    if not header.endswith(";base64") or not data:
        fail(param, f"'{param}' must be a base64 data URL (data:<mime>;base64,...)")
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        fail(param, f"'{param}' is not valid base64 data")
    return hub.Part("media", mime_type=header[len("data:") : -len(";base64")], data=data)


def _image(part: dict[str, Any], param: str) -> hub.Part:
    if part.get("file_id") is not None:
        fail(f"{param}.file_id", "file_id images are not supported; send image_url (http(s) or a data URL)")
    url = as_string(part.get("image_url"), f"{param}.image_url", nonempty=True)
    if url.startswith("data:"):
        return _data_url(url, f"{param}.image_url")
    if url.split(":", 1)[0].lower() not in ("http", "https"):
        fail(f"{param}.image_url", "the image_url must be an http(s) URL or a data URL")
    return hub.Part("media_url", url=url)  # fetched by the pipeline behind its SSRF guard


def _file(part: dict[str, Any], param: str) -> hub.Part:
    data = part.get("file_data")
    if data is None:
        fail(f"{param}.file_data", "only input_file with file_data (a base64 data URL) is supported")
    data = as_string(data, f"{param}.file_data", nonempty=True)
    if data.startswith("data:"):
        return _data_url(data, f"{param}.file_data")
    fail(f"{param}.file_data", f"'{param}.file_data' must be a base64 data URL")


def _function_call(item: dict[str, Any], param: str, out: list[hub.Message], custom: bool = False) -> None:
    call_id = as_string(item.get("call_id"), f"{param}.call_id", nonempty=True)
    name = as_string(item.get("name"), f"{param}.name", nonempty=True)
    if item.get("namespace") is not None:
        name = namespaced(as_string(item["namespace"], f"{param}.namespace", nonempty=True), name)
    if custom:
        arguments: Any = {"input": as_string(item.get("input", ""), f"{param}.input")}
    else:
        raw = as_string(item.get("arguments", "{}"), f"{param}.arguments") or "{}"
        try:
            arguments = orjson.loads(raw)
        except orjson.JSONDecodeError:
            fail(f"{param}.arguments", f"'{param}.arguments' is not valid JSON")
        if not isinstance(arguments, dict):
            fail(f"{param}.arguments", f"'{param}.arguments' must encode a JSON object")
    call = hub.ToolCall(id=call_id, name=name, arguments=arguments)
    last = out[-1] if out else None
    if last is not None and last.role == "assistant":
        last.tool_calls.append(call)  # one model step: text then calls, or several calls
    else:
        out.append(hub.Message("assistant", [], tool_calls=[call]))


def _function_output(
    item: dict[str, Any], param: str, history: list[hub.Message], media: list[hub.Part]
) -> hub.Message:
    """A "tool" message with the output's text; its images and files go to `media`."""
    call_id = as_string(item.get("call_id"), f"{param}.call_id", nonempty=True)
    call = next((c for m in reversed(history) for c in m.tool_calls if c.id == call_id), None)
    if call is None:
        fail(f"{param}.call_id", f"no function_call item with call_id {call_id!r} precedes this output")
    output = item.get("output")
    if isinstance(output, list):
        texts = []
        for j, raw in enumerate(output):
            part = as_object(raw, f"{param}.output[{j}]")
            if part.get("type") in ("input_text", "output_text", "text"):
                texts.append(as_string(part.get("text"), f"{param}.output[{j}].text"))
            elif part.get("type") == "input_image":
                media.append(_image(part, f"{param}.output[{j}]"))
            elif part.get("type") == "input_file":
                media.append(_file(part, f"{param}.output[{j}]"))
            else:
                fail(f"{param}.output[{j}].type", f"unsupported output part type {part.get('type')!r}")
        text = "\n".join(texts)
    else:
        text = as_string(output, f"{param}.output")
    return hub.Message("tool", [hub.Part("text", text=text)], tool_call_id=call_id, name=call.name)


def _search_call(item: dict[str, Any], param: str, out: list[hub.Message]) -> None:
    """A client tool search the model asked for: a call of the function `tool_search`."""
    call_id = as_string(item.get("call_id"), f"{param}.call_id", nonempty=True)
    call = hub.ToolCall(
        id=call_id, name=TOOL_SEARCH, arguments=as_object(item.get("arguments", {}), f"{param}.arguments")
    )
    last = out[-1] if out else None
    if last is not None and last.role == "assistant":
        last.tool_calls.append(call)
    else:
        out.append(hub.Message("assistant", [], tool_calls=[call]))


def _search_output(item: dict[str, Any], param: str, history: list[hub.Message]) -> hub.Message:
    """The tools a client tool search loaded: the model is told their names (request.py declares
    them from the item's `tools`)."""
    call_id = as_string(item.get("call_id"), f"{param}.call_id", nonempty=True)
    if not any(c.id == call_id for m in history for c in m.tool_calls):
        fail(f"{param}.call_id", f"no tool_search_call item with call_id {call_id!r} precedes this output")
    names = []
    for j, raw in enumerate(as_list(item.get("tools", []), f"{param}.tools")):
        tool = as_object(raw, f"{param}.tools[{j}]")
        if tool.get("type") == "namespace":
            names += [namespaced(str(tool.get("name")), str(t.get("name"))) for t in tool.get("tools") or []]
        else:
            names.append(str(tool.get("name")))
    text = orjson.dumps({"loaded_tools": names}).decode()
    return hub.Message("tool", [hub.Part("text", text=text)], tool_call_id=call_id, name=TOOL_SEARCH)
