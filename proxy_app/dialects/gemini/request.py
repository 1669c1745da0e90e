"""Gemini-native client dialect, inbound half: what google-genai, @google/genai and Gemini CLI send.

Clients talk to the gateway as if it were generativelanguage.googleapis.com
(`/v1beta/models/{model}:{method}`). Two paths lead on from here (mapping.md §8, §8b):
- the alias resolves to a Gemini upstream: the client's JSON is forwarded as is, with only the model
  fields rewritten (`rewrite_models`), and read just enough for usage and quota (`usage_of`,
  `estimate_prompt`, `rename_model_version`);
- any other upstream: the body is translated into hub objects (`parse_generate_request`,
  `parse_count_tokens_request`, `parse_embed_request`) following the mapping.md §8 table; the
  conversation itself (`contents`, `systemInstruction`) is read by contents.py.
Request keys arrive camelCase, snake_case or mixed at any depth (gemini.md §2), so every parser
first runs `normalise`. Malformed values raise errors.InvalidRequest naming the field path
(`contents[1].parts[0].inlineData.mimeType`), never a TypeError/KeyError. Responses, stream frames,
model lists, error bodies and the pass-through helpers live in response.py and are
re-exported here, so callers import one module.
"""

from __future__ import annotations

import re
from typing import Any

from proxy_app.core import hub
from proxy_app.dialects.gemini.contents import History, part_kind, system_messages
from proxy_app.dialects.gemini.response import (
    GenerateStreamEncoder,
    build_embed_response,
    build_error,
    build_generate_response,
    build_model,
    build_model_list,
    count_tokens_response,
    estimate_prompt,
    rename_model_version,
    rewrite_models,
    usage_metadata,
    usage_of,
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
    optional,
    request_body,
)

__all__ = [  # the dialect's whole public surface, inbound and outbound
    "normalise",
    "split_model_path",
    "rewrite_models",
    "usage_of",
    "estimate_prompt",
    "rename_model_version",
    "parse_generate_request",
    "parse_count_tokens_request",
    "parse_embed_request",
    "check_embed_dimensions",
    "schema_to_json_schema",
    "build_generate_response",
    "GenerateStreamEncoder",
    "build_embed_response",
    "build_error",
    "build_model",
    "build_model_list",
    "count_tokens_response",
    "usage_metadata",
]

EMBED_BATCH_LIMIT = 100  # "at most 100 requests can be in one batch" (gemini.md §11)
_SNAKE = re.compile(r"[a-z][a-zA-Z0-9]*(?:_[a-zA-Z0-9]+)+")
# A method after the last colon is lowerCamelCase ("generateContent"); "llama3:8b" and
# "qwen:latest" are aliases with a tag, not a method.
_METHOD = re.compile(r"[a-z]+(?:[A-Z][a-z0-9]*)+")

# ------------------------------------------------------------------------------------------------
# Key casing (gemini.md §2, mapping.md §14.1)

# Values that are free JSON chosen by the client: their keys are never rewritten.
_FREE_FORM = frozenset({"parametersJsonSchema", "responseJsonSchema", "example", "default", "partMetadata", "labels"})
_FREE_UNDER = {"functionCall": "args", "functionResponse": "response"}  # Struct fields of these parts


def normalise(body: object) -> dict[str, Any]:
    """A copy of a request body with every snake_case key in lowerCamelCase, free-form values untouched."""
    body = request_body(body)
    try:
        return _walk(body, "")
    except RecursionError:
        fail(None, "request body is nested too deeply")


def _camel(key: str) -> str:
    if not _SNAKE.fullmatch(key):
        return key
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _walk(value: Any, holder: str) -> Any:
    """`holder` is the (camelCase) key whose value this is; it decides what is free-form."""
    if isinstance(value, list):
        return [_walk(item, holder) for item in value]
    if not isinstance(value, dict):
        return value
    if holder == "properties":  # Schema.properties: the keys are property names, values are Schemas
        return {name: _walk(schema, "") for name, schema in value.items()}
    out: dict[str, Any] = {}
    for key, item in value.items():
        camel = _camel(key)
        if camel in out:
            fail(camel, f"field '{camel}' is given twice (camelCase and snake_case spellings)")
        free = camel in _FREE_FORM or _FREE_UNDER.get(holder) == camel
        out[camel] = item if free else _walk(item, camel)
    return out


# ------------------------------------------------------------------------------------------------
# Model paths


def split_model_path(path_tail: str) -> tuple[str, str]:
    """`gemini-2.5-flash:generateContent` -> (model, method), on the LAST colon; no method -> (tail, "")."""
    model, colon, method = path_tail.rpartition(":")
    if not colon or not _METHOD.fullmatch(method):
        return path_tail, ""
    return model, method


# ------------------------------------------------------------------------------------------------
# proto3 JSON integers (gemini.md §2)


def _proto_int(value: Any, param: str, lo: int | None = None, hi: int | None = None) -> int:
    """proto3 JSON integers: numbers (40.0 counts; the SDK types topK as float) or digit strings."""
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value) or isinstance(value, float) and value.is_integer():
        value = int(value)
    return as_int(value, param, lo, hi)


# ------------------------------------------------------------------------------------------------
# generationConfig (mapping.md §8)


def _apply_generation_config(raw: Any, req: hub.ChatRequest) -> None:
    at = "generationConfig"
    cfg = as_object(raw, at)
    _reject_output_kinds(cfg, at)
    req.max_tokens = optional(cfg, "maxOutputTokens", _proto_int, 1, at=at)
    req.temperature = optional(cfg, "temperature", as_number, 0, 2, at=at)
    req.top_p = optional(cfg, "topP", as_number, 0, 1, at=at)
    top_k = optional(cfg, "topK", _proto_int, 0, at=at)
    req.top_k = top_k or None
    req.n = optional(cfg, "candidateCount", _proto_int, 1, 8, at=at) or 1
    req.stop = _stop_sequences(cfg.get("stopSequences"), f"{at}.stopSequences")
    req.seed = optional(cfg, "seed", _proto_int, *INT32, at=at)
    req.presence_penalty = optional(cfg, "presencePenalty", as_number, at=at)
    req.frequency_penalty = optional(cfg, "frequencyPenalty", as_number, at=at)
    req.logprobs = bool(optional(cfg, "responseLogprobs", as_bool, at=at))
    req.top_logprobs = optional(cfg, "logprobs", _proto_int, 0, 20, at=at)
    if req.top_logprobs is not None and not req.logprobs:
        fail(f"{at}.logprobs", "'generationConfig.logprobs' requires 'responseLogprobs': true")
    req.response_format = _response_format(cfg, at)
    if cfg.get("thinkingConfig") is not None:
        _apply_thinking(as_object(cfg["thinkingConfig"], f"{at}.thinkingConfig"), req, f"{at}.thinkingConfig")


def _reject_output_kinds(cfg: dict[str, Any], at: str) -> None:
    modalities = optional(cfg, "responseModalities", as_list, at=at) or []
    if [str(m).upper() for m in modalities] not in ([], ["TEXT"]):
        fail(f"{at}.responseModalities", 'only text output (responseModalities ["TEXT"]) is supported for this model')
    for key in ("speechConfig", "imageConfig"):
        if cfg.get(key) is not None:
            fail(f"{at}.{key}", f"'{at}.{key}' is not supported for this model (text output only)")


def _stop_sequences(raw: Any, param: str) -> list[str]:
    items = [] if raw is None else as_list(raw, param)
    if len(items) > 5:
        fail(param, f"'{param}' accepts at most 5 sequences")
    return [s for k, s in enumerate(items) if as_string(s, f"{param}[{k}]")]


def _response_format(cfg: dict[str, Any], at: str) -> hub.ResponseFormat | None:
    mime = (optional(cfg, "responseMimeType", as_string, at=at) or "text/plain").lower()
    json_schema, schema = cfg.get("responseJsonSchema"), cfg.get("responseSchema")
    if json_schema is not None and schema is not None:
        fail(f"{at}.responseSchema", "set either responseSchema or responseJsonSchema, not both")
    if mime == "text/x.enum":
        fail(f"{at}.responseMimeType", "responseMimeType text/x.enum is not supported for this model")
    if mime not in ("text/plain", "application/json"):
        fail(f"{at}.responseMimeType", "responseMimeType must be text/plain or application/json")
    if mime == "text/plain":
        if json_schema is not None or schema is not None:
            fail(f"{at}.responseMimeType", "a response schema requires responseMimeType application/json")
        return None
    if json_schema is not None:
        return hub.ResponseFormat("json_schema", schema=as_object(json_schema, f"{at}.responseJsonSchema"))
    if schema is not None:
        return hub.ResponseFormat("json_schema", schema=schema_to_json_schema(schema, f"{at}.responseSchema"))
    return hub.ResponseFormat("json_object")


_LEVELS = ("minimal", "low", "medium", "high")


def _apply_thinking(cfg: dict[str, Any], req: hub.ChatRequest, at: str) -> None:
    """thinkingConfig -> reasoning_effort: budget 0 none, ≤1024 low, ≤8192 medium, more high; -1 omits."""
    budget = optional(cfg, "thinkingBudget", _proto_int, -1, at=at)
    level = optional(cfg, "thinkingLevel", as_string, at=at)
    if budget is not None and level is not None:
        fail(at, "set either thinkingBudget or thinkingLevel, not both")  # Google 400s the pair too
    req.include_thoughts = bool(optional(cfg, "includeThoughts", as_bool, at=at))
    if level is not None and level.upper() != "THINKING_LEVEL_UNSPECIFIED":
        if level.lower() not in _LEVELS:
            fail(f"{at}.thinkingLevel", "thinkingLevel must be one of MINIMAL, LOW, MEDIUM, HIGH")
        req.reasoning_effort = level.lower()
    if budget is not None and budget >= 0:
        req.reasoning_effort = _effort_for_budget(budget)


def _effort_for_budget(budget: int) -> str:
    if budget == 0:
        return "none"
    return "low" if budget <= 1024 else "medium" if budget <= 8192 else "high"


# ------------------------------------------------------------------------------------------------
# Schema (OpenAPI subset, gemini.md §6) -> JSON Schema

_SCHEMA_INTS = frozenset({"minItems", "maxItems", "minProperties", "maxProperties", "minLength", "maxLength"})
_SCHEMA_DROP = frozenset({"nullable", "propertyOrdering"})


def schema_to_json_schema(schema: Any, param: str) -> dict[str, Any]:
    """Gemini Schema -> JSON Schema: lower-case types, `nullable` -> anyOf with null, `example` -> examples."""
    schema = as_object(schema, param)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        p = f"{param}.{key}"
        if value is None or key in _SCHEMA_DROP or (key == "format" and value == "enum"):
            continue
        if key == "type":
            kind = as_string(value, p).lower()
            if kind != "type_unspecified":
                out["type"] = kind
        elif key == "items":
            out["items"] = schema_to_json_schema(value, p)
        elif key == "properties":
            out["properties"] = {
                name: schema_to_json_schema(v, f"{p}.{name}") for name, v in as_object(value, p).items()
            }
        elif key == "anyOf":
            out["anyOf"] = [schema_to_json_schema(v, f"{p}[{k}]") for k, v in enumerate(as_list(value, p))]
        elif key in _SCHEMA_INTS:
            out[key] = _proto_int(value, p, 0)  # int64: may arrive as a string (gemini.md §2)
        elif key == "example":
            out["examples"] = [value]
        else:
            out[key] = value
    if not optional(schema, "nullable", as_bool, at=param):
        return out
    notes = {key: out.pop(key) for key in ("title", "description") if key in out}
    return {**notes, "anyOf": [out, {"type": "null"}]}


# ------------------------------------------------------------------------------------------------
# tools and toolConfig (mapping.md §8)

_CALLING_MODES = {"AUTO": "auto", "MODE_UNSPECIFIED": "auto", "VALIDATED": "auto", "NONE": "none", "ANY": "required"}


def _tools(raw: Any) -> list[hub.Tool]:
    tools: list[hub.Tool] = []
    for i, entry in enumerate([] if raw is None else as_list(raw, "tools")):
        for key, value in as_object(entry, f"tools[{i}]").items():
            if value is None:
                continue
            if key != "functionDeclarations":
                fail(
                    f"tools[{i}].{key}",
                    f"the {key} tool is not supported for this model; only functionDeclarations are",
                )
            for j, declaration in enumerate(as_list(value, f"tools[{i}].{key}")):
                tool = _declaration(as_object(declaration, f"tools[{i}].{key}[{j}]"), f"tools[{i}].{key}[{j}]")
                if any(t.name == tool.name for t in tools):
                    fail(f"tools[{i}].{key}[{j}].name", f"duplicate function name '{tool.name}'")
                tools.append(tool)
    return tools


def _declaration(raw: dict[str, Any], param: str) -> hub.Tool:
    name = as_function_name(raw.get("name"), f"{param}.name")  # FunctionDeclaration.name (gemini.md §3.1)
    json_schema, schema = raw.get("parametersJsonSchema"), raw.get("parameters")
    if json_schema is not None and schema is not None:
        fail(f"{param}.parameters", "set either parameters or parametersJsonSchema, not both")
    if json_schema is not None:
        parameters = as_object(json_schema, f"{param}.parametersJsonSchema")
    else:
        parameters = None if schema is None else schema_to_json_schema(schema, f"{param}.parameters")
    description = optional(raw, "description", as_string, at=param) or ""
    return hub.Tool(name=name, description=description, parameters=parameters)


def _tool_choice(raw: Any, tools: list[hub.Tool]) -> hub.ToolChoice | None:
    config = optional(as_object(raw, "toolConfig"), "functionCallingConfig", as_object, at="toolConfig")
    if config is None:
        return None  # retrievalConfig alone: nothing an OpenAI-compatible upstream could use
    at = "toolConfig.functionCallingConfig"
    mode = (optional(config, "mode", as_string, at=at) or "AUTO").upper()
    if mode not in _CALLING_MODES:
        fail(f"{at}.mode", "mode must be one of AUTO, ANY, NONE, VALIDATED")
    names_raw = optional(config, "allowedFunctionNames", as_list, at=at) or []
    names = [as_string(n, f"{at}.allowedFunctionNames[{k}]", nonempty=True) for k, n in enumerate(names_raw)]
    if names and mode not in ("ANY", "VALIDATED"):
        fail(f"{at}.allowedFunctionNames", "allowedFunctionNames may only be set with mode ANY or VALIDATED")
    if not tools:
        if mode == "ANY" or names:
            fail(f"{at}.mode", f"mode {mode} needs at least one function declaration in tools")
        return None  # AUTO / NONE without tools: harmless, frameworks send it by habit
    declared = {tool.name for tool in tools}
    for name in names:
        if name not in declared:
            fail(f"{at}.allowedFunctionNames", f"allowedFunctionNames names '{name}', which is not declared in tools")
    return hub.ToolChoice(_CALLING_MODES[mode], names)


# ------------------------------------------------------------------------------------------------
# public: generate and countTokens


def parse_generate_request(body: dict[str, Any], model: str, *, stream: bool) -> hub.ChatRequest:
    """generateContent / streamGenerateContent body -> hub.ChatRequest for a non-Gemini upstream."""
    body = normalise(body)
    if body.get("cachedContent") is not None:
        fail("cachedContent", "cachedContent is not supported for this model")
    messages = system_messages(body.get("systemInstruction"), "systemInstruction")
    messages += History(strict=True).read(body.get("contents"), "contents")
    # Gemini always reports usage, so a streamed answer needs it from the upstream too.
    req = hub.ChatRequest(model=model, messages=messages, stream=stream, include_usage=stream)
    if body.get("generationConfig") is not None:
        _apply_generation_config(body["generationConfig"], req)
    req.tools = _tools(body.get("tools"))
    if body.get("toolConfig") is not None:
        req.tool_choice = _tool_choice(body["toolConfig"], req.tools)
    return req  # safetySettings: ignored (no OpenAI equivalent, and ignoring changes no output shape)


def parse_count_tokens_request(body: dict[str, Any]) -> list[hub.Message]:
    """countTokens body (`contents` or `generateContentRequest`) -> messages, for a local estimate."""
    body = normalise(body)
    contents, inner = body.get("contents"), body.get("generateContentRequest")
    if contents is not None and inner is not None:
        fail("generateContentRequest", "set either contents or generateContentRequest, not both")
    if inner is None:
        return History(strict=False).read(contents, "contents")
    at = "generateContentRequest"
    inner = as_object(inner, at)
    system = system_messages(inner.get("systemInstruction"), f"{at}.systemInstruction")
    return system + History(strict=False).read(inner.get("contents"), f"{at}.contents")


# ------------------------------------------------------------------------------------------------
# public: embeddings (mapping.md §10)


def _dimensionality(item: dict[str, Any], at: str) -> int | None:
    return optional(item, "outputDimensionality", _proto_int, *EMBED_DIMENSIONS, at=at)


def check_embed_dimensions(body: dict[str, Any], method: str) -> None:
    """The pass-through's check (the body goes on to Gemini unparsed): every outputDimensionality
    within EMBED_DIMENSIONS, as parse_embed_request requires."""
    if method == "embedContent":
        _dimensionality(body, "")
    elif method == "batchEmbedContents" and isinstance(body.get("requests"), list):
        for i, item in enumerate(body["requests"]):
            if isinstance(item, dict):
                _dimensionality(item, f"requests[{i}]")


def parse_embed_request(body: dict[str, Any], model: str, method: str) -> hub.EmbedRequest:
    """embedContent / batchEmbedContents -> one hub request; per-request settings must agree."""
    body = normalise(body)
    if method == "embedContent":
        items = [(body, "")]
    elif method == "batchEmbedContents":
        requests = as_list(body.get("requests"), "requests")
        if not requests or len(requests) > EMBED_BATCH_LIMIT:
            fail("requests", f"'requests' must hold between 1 and {EMBED_BATCH_LIMIT} requests")
        items = [(as_object(r, f"requests[{i}]"), f"requests[{i}]") for i, r in enumerate(requests)]
        for item, at in items:
            _check_embed_model(item, at, model)
    else:
        fail(None, f"unsupported embedding method '{method}'")
    texts = [_embed_text(item.get("content"), _join(at, "content")) for item, at in items]
    dims = {_dimensionality(item, at) for item, at in items}
    if len(dims) > 1:
        fail("requests", "every request must use the same outputDimensionality")
    tasks = {optional(item, "taskType", as_string, at=at) for item, at in items}
    titles = {optional(item, "title", as_string, at=at) for item, at in items}
    # One hub request carries one task type / title; mixed values only survive pass-through to Gemini.
    return hub.EmbedRequest(
        model=model,
        inputs=texts,
        dimensions=dims.pop(),
        task_type=tasks.pop() if len(tasks) == 1 else None,
        title=titles.pop() if len(titles) == 1 else None,
    )


def _join(at: str, key: str) -> str:
    return f"{at}.{key}" if at else key


def _check_embed_model(item: dict[str, Any], at: str, model: str) -> None:
    named = optional(item, "model", as_string, at=at)
    if named is not None and named.removeprefix("models/") != model:
        fail(f"{at}.model", f"'{at}.model' must be models/{model}, the model in the URL")


def _embed_text(raw: Any, param: str) -> str:
    content = as_object(raw, param)
    texts = []
    for j, part in enumerate(as_list(content.get("parts"), f"{param}.parts")):
        p = f"{param}.parts[{j}]"
        kind = part_kind(as_object(part, p), p)
        if kind not in ("text", None):
            fail(f"{p}.{kind}", "only text parts can be embedded")
        if kind == "text":
            texts.append(as_string(part["text"], f"{p}.text"))
    text = "\n".join(t for t in texts if t)
    if not text:
        fail(f"{param}.parts", "content has no text to embed")
    return text
