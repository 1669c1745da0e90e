"""Anthropic Messages client dialect, inbound half: /v1/messages JSON -> hub.ChatRequest.

Pure functions, no Django and no I/O: the view parses the body and hands the object here.
Field policy follows docs/reference/anthropic.md §2 and §6.1: `max_tokens` is required, sampling
settings map one to one, client tools keep their `input_schema` as the JSON Schema, Anthropic's
own server-side tools (dated `type`) are refused with 400, unknown body fields are ignored
(Claude Code keeps adding them). Content blocks are read by blocks.py. The outbound half
(messages, stream events, errors, models) is response.py, re-exported here.

Thinking (§6.4), as hub settings the upstream codecs already understand, never as a raw Gemini
thinkingConfig: the dialect does not know the upstream model, and a thinkingConfig sent to a model
that cannot think (gemini-2.0, gemma) fails every request, while a reasoning_effort is dropped by
the Gemini codec for such models and becomes a level (Gemini 3) or a budget (2.5) otherwise:
- `{type: enabled, budget_tokens: B}` -> reasoning_effort low (B <= 1024) / medium (<= 8192) /
  high, thoughts returned (so B is honoured by size, not exactly);
- `{type: adaptive}` -> the model's default thinking, thoughts returned;
- `output_config.effort` -> that reasoning_effort (it wins over the budget's);
- `display: omitted` -> thoughts not returned; `disabled` -> no setting (the model's default).
"""

from __future__ import annotations

from typing import Any

from proxy_app.core import hub
from proxy_app.dialects.anthropic.blocks import parse_turns, system_messages
from proxy_app.dialects.anthropic.response import (
    MessageStreamEncoder,
    build_error,
    build_message,
    build_model,
    build_model_list,
    event,
    new_message_id,
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
    "parse_messages_request",
    "parse_count_tokens_request",
    "build_message",
    "build_error",
    "build_model",
    "build_model_list",
    "new_message_id",
    "event",
    "MessageStreamEncoder",
]

EFFORTS = ("low", "medium", "high", "xhigh", "max")


def parse_messages_request(body: object) -> hub.ChatRequest:
    """POST /v1/messages body -> hub.ChatRequest."""
    body = request_body(body)
    if body.get("max_tokens") is None:
        fail("max_tokens", "max_tokens: Field required")
    req = _common(body, as_int(body["max_tokens"], "max_tokens", 1))
    req.stream = bool(optional(body, "stream", as_bool))
    req.include_usage = req.stream
    req.temperature = optional(body, "temperature", as_number, 0, 1)
    req.top_p = optional(body, "top_p", as_number, 0, 1)
    top_k = optional(body, "top_k", as_int, 0)
    req.top_k = top_k or None
    req.stop = optional(body, "stop_sequences", _stop_sequences) or []
    return req


def parse_count_tokens_request(body: object) -> hub.ChatRequest:
    """POST /v1/messages/count_tokens body (no max_tokens, no stream) -> the request it describes."""
    return _common(request_body(body))


def _common(body: dict[str, Any], max_tokens: int | None = None) -> hub.ChatRequest:
    """The fields /v1/messages and count_tokens share: model, system, messages, tools, thinking."""
    model = as_string(body.get("model"), "model", nonempty=True)
    messages = system_messages(body.get("system")) + parse_turns(body.get("messages"))
    req = hub.ChatRequest(model=model, messages=messages, max_tokens=max_tokens)
    req.tools = optional(body, "tools", _tools) or []
    if body.get("tool_choice") is not None:
        req.tool_choice = _tool_choice(as_object(body["tool_choice"], "tool_choice"), req.tools)
    _apply_thinking(body, req)
    return req


def _stop_sequences(value: Any, param: str) -> list[str]:
    return [s for j, s in enumerate(as_list(value, param)) if as_string(s, f"{param}[{j}]")]


# --- tools (anthropic.md §2.2, §2.3) -------------------------------------------------------------


def _tools(value: Any, param: str) -> list[hub.Tool]:
    tools: list[hub.Tool] = []
    for i, raw in enumerate(as_list(value, param)):
        p = f"{param}[{i}]"
        raw = as_object(raw, p)
        kind = raw.get("type")
        if kind not in (None, "custom"):
            name = raw.get("name")
            message = f"tool {name!r} of type {kind!r} is an Anthropic server tool; only custom tools work here"
            fail(f"{p}.type", message)
        tool = hub.Tool(
            name=as_function_name(raw.get("name"), f"{p}.name"),
            description=optional(raw, "description", as_string, at=p) or "",
            parameters=as_object(raw.get("input_schema"), f"{p}.input_schema"),
        )
        if any(t.name == tool.name for t in tools):
            fail(f"{p}.name", f"duplicate tool name {tool.name!r}")
        tools.append(tool)
    return tools


def _tool_choice(value: dict[str, Any], tools: list[hub.Tool]) -> hub.ToolChoice | None:
    kind = one_of(value.get("type"), "tool_choice.type", ("auto", "any", "tool", "none"))
    if kind == "auto" or (kind == "none" and not tools):
        return None if not tools else hub.ToolChoice("auto")
    if kind == "none":
        return hub.ToolChoice("none")
    if not tools:
        fail("tool_choice", f"tool_choice {kind!r} needs at least one tool in 'tools'")
    if kind == "any":
        return hub.ToolChoice("required")
    name = as_string(value.get("name"), "tool_choice.name", nonempty=True)
    if name not in {t.name for t in tools}:
        fail("tool_choice.name", f"tool_choice names tool {name!r}, which is not declared in 'tools'")
    return hub.ToolChoice("required", [name])


# --- thinking and output_config (anthropic.md §6.4) ----------------------------------------------


def _apply_thinking(body: dict[str, Any], req: hub.ChatRequest) -> None:
    config = optional(body, "output_config", as_object) or {}
    effort = optional(config, "effort", one_of, EFFORTS, at="output_config")
    fmt = optional(config, "format", as_object, at="output_config")
    if fmt is not None:
        one_of(fmt.get("type"), "output_config.format.type", ("json_schema",))
        schema = as_object(fmt.get("schema"), "output_config.format.schema")
        req.response_format = hub.ResponseFormat("json_schema", schema=schema)
    thinking = optional(body, "thinking", as_object)
    if thinking is None:
        req.reasoning_effort = effort
        return
    kind = one_of(thinking.get("type"), "thinking.type", ("enabled", "disabled", "adaptive"))
    if kind == "disabled":
        return
    display = optional(thinking, "display", one_of, ("summarized", "omitted"), at="thinking")
    req.include_thoughts = display != "omitted"
    req.reasoning_effort = effort
    if kind == "adaptive":
        return
    budget = as_int(thinking.get("budget_tokens"), "thinking.budget_tokens", 1)
    if req.max_tokens is not None and budget >= req.max_tokens:
        fail("thinking.budget_tokens", "'thinking.budget_tokens' must be less than max_tokens")
    req.reasoning_effort = effort or ("low" if budget <= 1024 else "medium" if budget <= 8192 else "high")
