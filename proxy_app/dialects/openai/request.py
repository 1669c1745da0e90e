"""OpenAI client dialect, inbound half: /v1 request JSON -> hub requests (chat, completions, embeddings).

Pure functions, no Django and no I/O: the view parses the body and hands the object here.
Field policy (map / ignore / 400) follows docs/reference/mapping.md §1–§5, §10; wire shapes
follow openai.md §2, §3, §6, §8. Every malformed value raises errors.InvalidRequest whose `param`
is the field path ("messages[2].content[0].image_url.url"), never a bare TypeError/KeyError.
The outbound half (responses, stream frames, error bodies) is response.py, re-exported here;
`messages` is read by messages.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from proxy_app.core import hub
from proxy_app.dialects.openai.messages import parse_messages
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
    EMBED_DIMENSIONS,
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
MAX_EMBED_INPUTS = 2048


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
    req = hub.ChatRequest(model=_model(body), messages=parse_messages(body.get("messages")))
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
        dimensions=optional(body, "dimensions", as_int, *EMBED_DIMENSIONS),
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
