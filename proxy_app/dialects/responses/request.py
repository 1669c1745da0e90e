"""Responses client dialect, inbound half: POST /v1/responses JSON -> hub.ChatRequest.

Pure functions, no Django and no I/O: the view parses the body, loads the stored history of
`previous_response_id` (store.py) and hands both here. Field policy follows
docs/reference/responses.md §2 and §7.1:
- `instructions` become the first system message (never inherited from the previous response);
- flat function tools map to hub tools (`strict` dropped); `custom` (freeform, e.g. Codex's
  apply_patch) tools become functions with one string parameter `input` (a grammar goes into the
  description); the function / custom tools of a `namespace` tool (Codex's multi_agent_v1) are
  declared upstream as `namespace__name`, their calls come back with `namespace` set; a client
  `tool_search` tool (Codex) is the function `tool_search`, and the tools its `tool_search_output`
  items loaded are declared from then on; other built-in tools are refused with 400 naming the tool;
- `reasoning.effort` becomes the hub reasoning effort (as the chat dialect's `reasoning_effort`),
  a `reasoning.summary` asks for the thoughts;
- `text.format` json_schema / json_object becomes the hub response format;
- bookkeeping fields (metadata, include, truncation, prompt_cache_key, service_tier, user, ...)
  are ignored.
Input items are read by items.py; the outbound half is response.py, re-exported here.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from proxy_app.core import hub
from proxy_app.dialects.responses.items import TOOL_SEARCH, namespaced, parse_input
from proxy_app.dialects.responses.response import (
    PLAIN,
    CallKinds,
    ResponseStreamEncoder,
    build_error,
    build_response,
    new_id,
)
from proxy_app.dialects.validate import (
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
    "ResponsesRequest",
    "parse_responses_request",
    "normalize_input",
    "previous_id",
    "build_response",
    "build_error",
    "new_id",
    "ResponseStreamEncoder",
]

REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
# The parameters of a `custom` tool as a function (copied per tool: upstream codecs may edit schemas).
CUSTOM_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "The tool's whole input, as free text."}},
    "required": ["input"],
}
SUPPORTED_TOOLS = "function, custom, namespace and client tool_search tools"
# A client `tool_search` tool without its own parameter schema.
SEARCH_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"query": {"type": "string", "description": "What tools to look for."}},
    "required": ["query"],
}
REFUSED_FIELDS = {
    "conversation": "the Conversations API is not supported; use previous_response_id",
    "prompt": "stored prompts are not supported",
}


@dataclass
class ResponsesRequest:
    chat: hub.ChatRequest
    input_items: list[dict[str, Any]]  # this request's input, each item as an object
    store: bool = True
    previous_response_id: str | None = None
    echo: dict[str, Any] = field(default_factory=dict)  # request fields the response object repeats
    calls: CallKinds = PLAIN  # what the declared tools make of the model's calls in the response


def previous_id(body: object) -> str | None:
    """`previous_response_id` of a body (None when absent), checked before the history is loaded."""
    if not isinstance(body, dict):
        return None
    return optional(body, "previous_response_id", as_string, nonempty=True)


def normalize_input(value: Any) -> list[dict[str, Any]]:
    """`input` as a list of item objects (a string is one user message)."""
    if value is None:
        fail("input", "'input' is required")
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    items = as_list(value, "input")
    for i, item in enumerate(items):
        as_object(item, f"input[{i}]")
    return items


def parse_responses_request(body: object, history: list[dict[str, Any]] | None = None) -> ResponsesRequest:
    """POST /v1/responses body -> ResponsesRequest; `history` = the stored items that
    `previous_response_id` continues (its input and output items), oldest first."""
    body = request_body(body)
    for key, why in REFUSED_FIELDS.items():
        if body.get(key) is not None:
            fail(key, f"'{key}' is not supported: {why}")
    if optional(body, "background", as_bool):
        fail("background", "background responses are not supported")
    model = as_string(body.get("model"), "model", nonempty=True)
    items = normalize_input(body.get("input"))
    messages = parse_input(list(history or []) + items)
    instructions = optional(body, "instructions", as_string)
    if instructions:
        messages.insert(0, hub.Message("system", [hub.Part("text", text=instructions)]))
    if not any(m.role != "system" for m in messages):
        fail("input", "'input' must contain at least one message or item")
    req = hub.ChatRequest(model=model, messages=messages)
    req.stream = bool(optional(body, "stream", as_bool))
    req.include_usage = req.stream
    req.max_tokens = optional(body, "max_output_tokens", as_int, 1)
    req.temperature = optional(body, "temperature", as_number, 0, 2)
    req.top_p = optional(body, "top_p", as_number, 0, 1)
    namespaces: dict[str, tuple[str, str]] = {}
    custom: set[str] = set()
    req.tools = optional(body, "tools", _tools, namespaces, custom) or []
    search = TOOL_SEARCH if any(t.get("type") == "tool_search" for t in body.get("tools") or []) else None
    req.tools += _loaded_tools(list(history or []) + items, namespaces, custom, req.tools)
    if body.get("tool_choice") is not None:
        req.tool_choice = _tool_choice(body["tool_choice"], req.tools)
    _apply_reasoning(body, req)
    text = optional(body, "text", as_object) or {}
    req.response_format = optional(text, "format", _format, at="text")
    store = optional(body, "store", as_bool)
    echo = {
        "instructions": instructions,
        "tools": body.get("tools") or [],
        "tool_choice": body.get("tool_choice") or "auto",
        "parallel_tool_calls": body.get("parallel_tool_calls", True) is not False,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "max_output_tokens": req.max_tokens,
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "text": text or {"format": {"type": "text"}},
        "metadata": body.get("metadata") or {},
        "truncation": body.get("truncation") or "disabled",
        "store": store is not False,
        "previous_response_id": body.get("previous_response_id"),
    }
    return ResponsesRequest(
        chat=req,
        input_items=items,
        store=store is not False,
        previous_response_id=body.get("previous_response_id"),
        echo=echo,
        calls=CallKinds(frozenset(custom), namespaces, search),
    )


def _tools(value: Any, param: str, namespaces: dict[str, tuple[str, str]], custom: set[str]) -> list[hub.Tool]:
    """Function and custom tools, and those grouped in `namespace` tools (declared upstream as
    namespace__name; `namespaces` and `custom` are filled in for the response's call items)."""
    tools: list[hub.Tool] = []
    for i, raw in enumerate(as_list(value, param)):
        p = f"{param}[{i}]"
        raw = as_object(raw, p)
        if raw.get("type") != "namespace":
            tools.append(_tool(raw, p, None, custom, tools))
            continue
        space = as_function_name(raw.get("name"), f"{p}.name")
        about = optional(raw, "description", as_string, at=p)
        for j, inner in enumerate(as_list(raw.get("tools"), f"{p}.tools")):
            tool = _tool(as_object(inner, f"{p}.tools[{j}]"), f"{p}.tools[{j}]", space, custom, tools)
            namespaces[tool.name] = (space, inner["name"])
            if about:
                tool.description = f"({space}: {about})\n{tool.description}".rstrip()
            tools.append(tool)
    return tools


def _loaded_tools(
    items: list[Any], namespaces: dict[str, tuple[str, str]], custom: set[str], declared: list[hub.Tool]
) -> list[hub.Tool]:
    """The tools that client tool searches loaded (`tool_search_output` items): declared from then on."""
    loaded: list[hub.Tool] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or item.get("type") != "tool_search_output":
            continue
        found = _tools(item.get("tools", []), f"input[{i}].tools", namespaces, custom)
        known = {t.name for t in declared + loaded}
        loaded += [t for t in found if t.name not in known]
    return loaded


def _tool(raw: dict[str, Any], p: str, space: str | None, custom: set[str], before: list[hub.Tool]) -> hub.Tool:
    kind = raw.get("type")
    if kind == "tool_search" and space is None:
        if raw.get("execution") != "client":
            fail(f"{p}.execution", 'only a client-executed tool_search tool (execution: "client") works here')
        if any(t.name == TOOL_SEARCH for t in before):
            fail(f"{p}.type", f"duplicate function name {TOOL_SEARCH!r}")
        parameters = optional(raw, "parameters", as_object, at=p) or copy.deepcopy(SEARCH_PARAMETERS)
        return hub.Tool(TOOL_SEARCH, optional(raw, "description", as_string, at=p) or "Search for tools.", parameters)
    if kind not in ("function", "custom"):
        name = raw.get("name") or kind
        message = f"tool {name!r} of type {kind!r} is not supported; only {SUPPORTED_TOOLS} work here"
        fail(f"{p}.type", message)
    name = as_function_name(raw.get("name"), f"{p}.name")
    if space is not None:
        name = as_function_name(namespaced(space, name), f"{p}.name")  # the joined name must fit too
    tool = hub.Tool(
        name=name,
        description=optional(raw, "description", as_string, at=p) or "",
        parameters=optional(raw, "parameters", as_object, at=p)
        if kind == "function"
        else copy.deepcopy(CUSTOM_PARAMETERS),
    )
    if any(t.name == name for t in before):
        fail(f"{p}.name", f"duplicate function name {name!r}")
    if kind == "custom":
        tool.description = _custom_description(tool.description, optional(raw, "format", as_object, at=p), p)
        custom.add(name)
    return tool


def _custom_description(description: str, fmt: dict[str, Any] | None, param: str) -> str:
    """A custom tool's grammar, if any, told to the model in the description (no upstream takes it)."""
    if not fmt or fmt.get("type") in (None, "text"):
        return description
    one_of(fmt.get("type"), f"{param}.format.type", ("text", "grammar"))
    syntax = optional(fmt, "syntax", as_string, at=f"{param}.format") or "lark"
    definition = as_string(fmt.get("definition"), f"{param}.format.definition")
    rule = f"The input must follow this {syntax} grammar:\n{definition}"
    return f"{description}\n\n{rule}" if description else rule


def _tool_choice(value: Any, tools: list[hub.Tool]) -> hub.ToolChoice | None:
    if isinstance(value, str):
        choice = hub.ToolChoice(one_of(value, "tool_choice", ("auto", "none", "required")))
    else:
        value = as_object(value, "tool_choice")
        kind = one_of(value.get("type"), "tool_choice.type", ("function", "custom", "allowed_tools"))
        if kind in ("function", "custom"):
            choice = hub.ToolChoice("required", [as_string(value.get("name"), "tool_choice.name", nonempty=True)])
        else:
            mode = one_of(value.get("mode"), "tool_choice.mode", ("auto", "required"))
            names = []
            for k, entry in enumerate(as_list(value.get("tools"), "tool_choice.tools")):
                p = f"tool_choice.tools[{k}]"
                one_of(as_object(entry, p).get("type"), f"{p}.type", ("function", "custom"))
                names.append(as_string(entry.get("name"), f"{p}.name", nonempty=True))
            if not names:
                fail("tool_choice.tools", "'tool_choice.tools' must not be empty")
            choice = hub.ToolChoice(mode, names)
    if not tools:
        if choice.mode == "required" or choice.names:
            fail("tool_choice", "tool_choice needs at least one function in 'tools'")
        return None
    declared = {t.name for t in tools}
    for name in choice.names:
        if name not in declared:
            fail("tool_choice", f"tool_choice names function {name!r}, which is not declared in 'tools'")
    return choice


def _apply_reasoning(body: dict[str, Any], req: hub.ChatRequest) -> None:
    reasoning = optional(body, "reasoning", as_object)
    if reasoning is None:
        return
    req.reasoning_effort = optional(reasoning, "effort", one_of, REASONING_EFFORTS, at="reasoning")
    summary = optional(reasoning, "summary", one_of, ("auto", "concise", "detailed"), at="reasoning")
    req.include_thoughts = summary is not None


def _format(value: Any, param: str) -> hub.ResponseFormat | None:
    value = as_object(value, param)
    kind = one_of(value.get("type"), f"{param}.type", ("text", "json_object", "json_schema"))
    if kind == "text":
        return None
    if kind == "json_object":
        return hub.ResponseFormat("json_object")
    name = optional(value, "name", as_string, at=param) or "response"
    schema = as_object(value.get("schema"), f"{param}.schema")
    return hub.ResponseFormat("json_schema", schema=schema, name=name)
