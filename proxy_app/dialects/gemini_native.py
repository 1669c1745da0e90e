"""Gemini-native client dialect, inbound half: what google-genai, @google/genai and Gemini CLI send.

Clients talk to the gateway as if it were generativelanguage.googleapis.com
(`/v1beta/models/{model}:{method}`). Two paths lead on from here (mapping.md §8, §8b):
- the alias resolves to a Gemini upstream: the client's JSON is forwarded as is, with only the model
  fields rewritten (`rewrite_models`), and read just enough for usage and quota (`usage_of`,
  `estimate_prompt`, `rename_model_version`);
- any other upstream: the body is translated into hub objects (`parse_generate_request`,
  `parse_count_tokens_request`, `parse_embed_request`) following the mapping.md §8 table.
Request keys arrive camelCase, snake_case or mixed at any depth (gemini.md §2), so every parser
first runs `normalise`. Malformed values raise errors.InvalidRequest naming the field path
(`contents[1].parts[0].inlineData.mimeType`), never a TypeError/KeyError. Responses, stream frames,
model lists, error bodies and the pass-through helpers live in gemini_native_stream.py and are
re-exported here, so callers import one module.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable
from typing import Any, NoReturn

from proxy_app import errors, hub
from proxy_app.dialects.gemini_native_stream import (
    GenerateStreamEncoder,
    build_embed_response,
    build_error,
    build_generate_response,
    build_model,
    build_model_list,
    count_tokens_response,
    estimate_prompt,
    json_text,
    rename_model_version,
    rewrite_models,
    usage_metadata,
    usage_of,
)

__all__ = [  # the dialect's whole public surface, inbound and outbound
    "normalise", "split_model_path", "rewrite_models", "usage_of", "estimate_prompt",
    "rename_model_version", "parse_generate_request", "parse_count_tokens_request",
    "parse_embed_request", "schema_to_json_schema", "build_generate_response", "GenerateStreamEncoder",
    "build_embed_response", "build_error", "build_model", "build_model_list",
    "count_tokens_response", "usage_metadata",
]  # fmt: skip

EMBED_BATCH_LIMIT = 100  # "at most 100 requests can be in one batch" (gemini.md §11)
INT32 = (-(2**31), 2**31 - 1)
FUNCTION_NAME = re.compile(r"[a-zA-Z0-9_.:-]{1,64}")  # FunctionDeclaration.name (gemini.md §3.1)
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
    if not isinstance(body, dict):
        _fail(None, "request body must be a JSON object")
    try:
        return _walk(body, "")
    except RecursionError:
        _fail(None, "request body is nested too deeply")


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
            _fail(camel, f"field '{camel}' is given twice (camelCase and snake_case spellings)")
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
# Validation primitives


def _fail(param: str | None, message: str) -> NoReturn:
    raise errors.InvalidRequest(message, param=param)


def _typed(value: Any, param: str, kind: type | tuple[type, ...], noun: str) -> Any:
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
    """proto3 JSON integers: numbers (40.0 counts; the SDK types topK as float) or digit strings."""
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        value = int(value)
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(param, f"'{param}' must be an integer")
    _check_range(value, param, lo, hi)
    return value


def _number(value: Any, param: str, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(param, f"'{param}' must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        _fail(param, f"'{param}' must be a finite number")
    _check_range(value, param, lo, hi)
    return float(value)


def _check_range(value: float, param: str, lo: float | None, hi: float | None) -> None:
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        _fail(param, f"'{param}' must be {bounds}, got {value}")


def _opt(body: dict[str, Any], key: str, check: Callable[..., Any], *args: Any, at: str = "") -> Any:
    """Validate body[key] unless absent or null; `at` is the path of `body`."""
    value = body.get(key)
    return None if value is None else check(value, f"{at}.{key}" if at else key, *args)


def _base64(value: Any, param: str) -> str:
    """Standard base64 (proto3 JSON also allows the URL-safe alphabet; OpenAI data URLs do not)."""
    text = _string(value, param, nonempty=True).replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        _fail(param, f"'{param}' is not valid base64")
    return text


# ------------------------------------------------------------------------------------------------
# contents -> hub messages (mapping.md §8)

_PART_DATA = frozenset(
    "text inlineData fileData functionCall functionResponse executableCode codeExecutionResult".split()
)
_PART_META = frozenset({"thought", "thoughtSignature", "videoMetadata", "partMetadata", "mediaResolution"})


def _system(raw: Any, param: str) -> list[hub.Message]:
    if raw is None:
        return []
    content = _object(raw, param)  # its role is ignored (the SDK sends "user")
    texts = []
    for j, part in enumerate(_list(content.get("parts") or [], f"{param}.parts")):
        p = f"{param}.parts[{j}]"
        kind = _part_kind(_object(part, p), p)
        if kind not in ("text", None):
            _fail(f"{p}.{kind}", "systemInstruction may only contain text parts")
        if kind == "text" and part.get("thought") is not True:
            texts.append(hub.Part("text", text=_string(part["text"], f"{p}.text")))
    return [hub.Message("system", texts)] if texts else []


def _part_kind(part: dict[str, Any], param: str) -> str | None:
    """The part's one data field; None for a part holding only metadata (dropped, nothing to say)."""
    present = [key for key, value in part.items() if value is not None and key not in _PART_META]
    kinds = [key for key in present if key in _PART_DATA]
    if len(kinds) > 1:
        _fail(param, f"a part holds exactly one data field, got {' and '.join(kinds)}")
    if not kinds and present:
        _fail(f"{param}.{present[0]}", f"unsupported part field '{present[0]}'")
    return kinds[0] if kinds else None


class _History:
    """Walks `contents` in order; remembers the calls of the last model turn to pair results with.

    strict=False (countTokens) tolerates what only matters to a model: empty parts, results
    without a call, fileData (counted as media instead of refused).
    """

    def __init__(self, *, strict: bool) -> None:
        self.strict = strict
        self.messages: list[hub.Message] = []
        self.pending: list[hub.ToolCall] = []  # calls of the latest model turn not yet answered

    def read(self, raw: Any, param: str) -> list[hub.Message]:
        items = [] if raw is None else _list(raw, param)
        if self.strict and not items:
            _fail(param, f"'{param}' must contain at least one content")
        for i, content in enumerate(items):
            self._content(_object(content, f"{param}[{i}]"), i, f"{param}[{i}]")
        return self.messages

    def _content(self, content: dict[str, Any], i: int, param: str) -> None:
        role = content.get("role") or "user"  # an omitted role means user (gemini.md §2)
        if role not in ("user", "model"):
            _fail(f"{param}.role", "Please use a valid role: user, model.")
        parts = _list(content.get("parts") or [], f"{param}.parts")
        if self.strict and not parts:
            _fail(f"{param}.parts", f"'{param}.parts' must not be empty")
        kinds = [(j, _part_kind(_object(p, f"{param}.parts[{j}]"), f"{param}.parts[{j}]")) for j, p in enumerate(parts)]
        live = [(j, parts[j], kind) for j, kind in kinds if kind is not None and parts[j].get("thought") is not True]
        if role == "model":
            self._model_turn(live, i, param)
        else:
            self._user_turn(live, i, param)

    def _model_turn(self, parts: list[tuple[int, dict[str, Any], str]], i: int, param: str) -> None:
        out, calls = [], []
        for j, part, kind in parts:
            p = f"{param}.parts[{j}]"
            if kind == "functionCall":
                calls.append(_function_call(part[kind], f"{p}.functionCall", f"call_{i}_{j}"))
            elif kind == "functionResponse":
                _fail(f"{p}.functionResponse", "functionResponse parts belong in user turns")
            else:
                out.append(self._plain_part(part, kind, p, role="model"))
        out = [part for part in out if part.text or part.type != "text"]  # "" closes streamed answers
        self.pending = list(calls)
        if out or calls:
            self.messages.append(hub.Message("assistant", out, tool_calls=calls))

    def _user_turn(self, parts: list[tuple[int, dict[str, Any], str]], i: int, param: str) -> None:
        out = []
        for j, part, kind in parts:
            p = f"{param}.parts[{j}]"
            if kind == "functionResponse":
                self.messages.append(self._answer(part[kind], f"{p}.functionResponse", f"call_{i}_{j}"))
            elif kind == "functionCall":
                _fail(f"{p}.functionCall", "functionCall parts belong in model turns")
            else:
                out.append(self._plain_part(part, kind, p, role="user"))
        if out:  # text beside function results becomes a user message after the tool messages
            self.messages.append(hub.Message("user", out))

    def _plain_part(self, part: dict[str, Any], kind: str, param: str, *, role: str) -> hub.Part:
        if kind == "text":
            return hub.Part("text", text=_string(part["text"], f"{param}.text"))
        if kind in ("executableCode", "codeExecutionResult"):
            return hub.Part("text", text=_code_text(part[kind], kind, f"{param}.{kind}"))
        if kind == "fileData" and not self.strict:
            return hub.Part("media", mime_type="application/octet-stream")  # counted, never sent
        if kind == "fileData":
            _fail(
                f"{param}.fileData",
                "fileData (file URIs) is not supported for this model; send the bytes as inlineData",
            )
        if role == "model":
            _fail(f"{param}.inlineData", "inlineData in model turns is not supported for this model")
        return _inline_data(_object(part[kind], f"{param}.inlineData"), f"{param}.inlineData")

    def _answer(self, raw: Any, param: str, fallback_id: str) -> hub.Message:
        """A tool message for one functionResponse: matched by id, else name, else position."""
        result = _object(raw, param)
        name = _string(result.get("name"), f"{param}.name", nonempty=True)
        response = _opt(result, "response", _object, at=param) or {}  # a Struct: objects only
        if result.get("parts"):
            _fail(
                f"{param}.parts",
                "multimodal function responses (functionResponse.parts) are not supported for this model",
            )
        call_id = _opt(result, "id", _string, at=param)
        call = self._match(call_id, name)
        if call is None and self.strict:
            _fail(param, f"functionResponse '{name}' answers no functionCall of the preceding model turn")
        if call is not None:
            self.pending.remove(call)
        text = hub.Part("text", text=json_text(response))
        if call is None:
            return hub.Message("tool", [text], tool_call_id=call_id or fallback_id, name=name)
        return hub.Message("tool", [text], tool_call_id=call.id, name=call.name)

    def _match(self, call_id: str | None, name: str) -> hub.ToolCall | None:
        for match in (lambda c: bool(call_id) and c.id == call_id, lambda c: c.name == name, lambda c: True):
            found = next((c for c in self.pending if match(c)), None)
            if found is not None:
                return found
        return None


def _function_call(raw: Any, param: str, fallback_id: str) -> hub.ToolCall:
    call = _object(raw, param)
    return hub.ToolCall(
        # Deterministic, so a later functionResponse without id pairs with the same id every turn.
        id=_opt(call, "id", _string, at=param) or fallback_id,
        name=_string(call.get("name"), f"{param}.name", nonempty=True),
        arguments=_opt(call, "args", _object, at=param) or {},  # absent for zero-argument calls
    )


def _inline_data(blob: dict[str, Any], param: str) -> hub.Part:
    mime = _string(blob.get("mimeType"), f"{param}.mimeType", nonempty=True).lower()
    return hub.Part("media", mime_type=mime, data=_base64(blob.get("data"), f"{param}.data"))


def _code_text(raw: Any, kind: str, param: str) -> str:
    """Code-execution history as fenced text: it must not vanish (mapping.md §14.32)."""
    value = _object(raw, param)
    if kind == "executableCode":
        language = str(value.get("language") or "").lower()
        tag = "" if language == "language_unspecified" else language
        return f"\n```{tag}\n{_string(value.get('code') or '', f'{param}.code')}\n```\n"
    return f"\n```output\n{_string(value.get('output') or '', f'{param}.output')}\n```\n"


# ------------------------------------------------------------------------------------------------
# generationConfig (mapping.md §8)


def _apply_generation_config(raw: Any, req: hub.ChatRequest) -> None:
    at = "generationConfig"
    cfg = _object(raw, at)
    _reject_output_kinds(cfg, at)
    req.max_tokens = _opt(cfg, "maxOutputTokens", _int, 1, at=at)
    req.temperature = _opt(cfg, "temperature", _number, 0, 2, at=at)
    req.top_p = _opt(cfg, "topP", _number, 0, 1, at=at)
    top_k = _opt(cfg, "topK", _int, 0, at=at)
    req.top_k = top_k or None
    req.n = _opt(cfg, "candidateCount", _int, 1, 8, at=at) or 1
    req.stop = _stop_sequences(cfg.get("stopSequences"), f"{at}.stopSequences")
    req.seed = _opt(cfg, "seed", _int, *INT32, at=at)
    req.presence_penalty = _opt(cfg, "presencePenalty", _number, at=at)
    req.frequency_penalty = _opt(cfg, "frequencyPenalty", _number, at=at)
    req.logprobs = bool(_opt(cfg, "responseLogprobs", _bool, at=at))
    req.top_logprobs = _opt(cfg, "logprobs", _int, 0, 20, at=at)
    if req.top_logprobs is not None and not req.logprobs:
        _fail(f"{at}.logprobs", "'generationConfig.logprobs' requires 'responseLogprobs': true")
    req.response_format = _response_format(cfg, at)
    if cfg.get("thinkingConfig") is not None:
        _apply_thinking(_object(cfg["thinkingConfig"], f"{at}.thinkingConfig"), req, f"{at}.thinkingConfig")


def _reject_output_kinds(cfg: dict[str, Any], at: str) -> None:
    modalities = _opt(cfg, "responseModalities", _list, at=at) or []
    if [str(m).upper() for m in modalities] not in ([], ["TEXT"]):
        _fail(f"{at}.responseModalities", 'only text output (responseModalities ["TEXT"]) is supported for this model')
    for key in ("speechConfig", "imageConfig"):
        if cfg.get(key) is not None:
            _fail(f"{at}.{key}", f"'{at}.{key}' is not supported for this model (text output only)")


def _stop_sequences(raw: Any, param: str) -> list[str]:
    items = [] if raw is None else _list(raw, param)
    if len(items) > 5:
        _fail(param, f"'{param}' accepts at most 5 sequences")
    return [s for k, s in enumerate(items) if _string(s, f"{param}[{k}]")]


def _response_format(cfg: dict[str, Any], at: str) -> hub.ResponseFormat | None:
    mime = (_opt(cfg, "responseMimeType", _string, at=at) or "text/plain").lower()
    json_schema, schema = cfg.get("responseJsonSchema"), cfg.get("responseSchema")
    if json_schema is not None and schema is not None:
        _fail(f"{at}.responseSchema", "set either responseSchema or responseJsonSchema, not both")
    if mime == "text/x.enum":
        _fail(f"{at}.responseMimeType", "responseMimeType text/x.enum is not supported for this model")
    if mime not in ("text/plain", "application/json"):
        _fail(f"{at}.responseMimeType", "responseMimeType must be text/plain or application/json")
    if mime == "text/plain":
        if json_schema is not None or schema is not None:
            _fail(f"{at}.responseMimeType", "a response schema requires responseMimeType application/json")
        return None
    if json_schema is not None:
        return hub.ResponseFormat("json_schema", schema=_object(json_schema, f"{at}.responseJsonSchema"))
    if schema is not None:
        return hub.ResponseFormat("json_schema", schema=schema_to_json_schema(schema, f"{at}.responseSchema"))
    return hub.ResponseFormat("json_object")


_LEVELS = ("minimal", "low", "medium", "high")


def _apply_thinking(cfg: dict[str, Any], req: hub.ChatRequest, at: str) -> None:
    """thinkingConfig -> reasoning_effort: budget 0 none, ≤1024 low, ≤8192 medium, more high; -1 omits."""
    budget = _opt(cfg, "thinkingBudget", _int, -1, at=at)
    level = _opt(cfg, "thinkingLevel", _string, at=at)
    if budget is not None and level is not None:
        _fail(at, "set either thinkingBudget or thinkingLevel, not both")  # Google 400s the pair too
    req.include_thoughts = bool(_opt(cfg, "includeThoughts", _bool, at=at))
    if level is not None and level.upper() != "THINKING_LEVEL_UNSPECIFIED":
        if level.lower() not in _LEVELS:
            _fail(f"{at}.thinkingLevel", "thinkingLevel must be one of MINIMAL, LOW, MEDIUM, HIGH")
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
    schema = _object(schema, param)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        p = f"{param}.{key}"
        if value is None or key in _SCHEMA_DROP or (key == "format" and value == "enum"):
            continue
        if key == "type":
            kind = _string(value, p).lower()
            if kind != "type_unspecified":
                out["type"] = kind
        elif key == "items":
            out["items"] = schema_to_json_schema(value, p)
        elif key == "properties":
            out["properties"] = {name: schema_to_json_schema(v, f"{p}.{name}") for name, v in _object(value, p).items()}
        elif key == "anyOf":
            out["anyOf"] = [schema_to_json_schema(v, f"{p}[{k}]") for k, v in enumerate(_list(value, p))]
        elif key in _SCHEMA_INTS:
            out[key] = _int(value, p, 0)  # int64: may arrive as a string (gemini.md §2)
        elif key == "example":
            out["examples"] = [value]
        else:
            out[key] = value
    if not _opt(schema, "nullable", _bool, at=param):
        return out
    notes = {key: out.pop(key) for key in ("title", "description") if key in out}
    return {**notes, "anyOf": [out, {"type": "null"}]}


# ------------------------------------------------------------------------------------------------
# tools and toolConfig (mapping.md §8)

_CALLING_MODES = {"AUTO": "auto", "MODE_UNSPECIFIED": "auto", "VALIDATED": "auto", "NONE": "none", "ANY": "required"}


def _tools(raw: Any) -> list[hub.Tool]:
    tools: list[hub.Tool] = []
    for i, entry in enumerate([] if raw is None else _list(raw, "tools")):
        for key, value in _object(entry, f"tools[{i}]").items():
            if value is None:
                continue
            if key != "functionDeclarations":
                _fail(
                    f"tools[{i}].{key}",
                    f"the {key} tool is not supported for this model; only functionDeclarations are",
                )
            for j, declaration in enumerate(_list(value, f"tools[{i}].{key}")):
                tool = _declaration(_object(declaration, f"tools[{i}].{key}[{j}]"), f"tools[{i}].{key}[{j}]")
                if any(t.name == tool.name for t in tools):
                    _fail(f"tools[{i}].{key}[{j}].name", f"duplicate function name '{tool.name}'")
                tools.append(tool)
    return tools


def _declaration(raw: dict[str, Any], param: str) -> hub.Tool:
    name = _string(raw.get("name"), f"{param}.name", nonempty=True)
    if not FUNCTION_NAME.fullmatch(name):
        _fail(f"{param}.name", "function names may use only a-z, A-Z, 0-9, _ . : - and at most 64 characters")
    json_schema, schema = raw.get("parametersJsonSchema"), raw.get("parameters")
    if json_schema is not None and schema is not None:
        _fail(f"{param}.parameters", "set either parameters or parametersJsonSchema, not both")
    if json_schema is not None:
        parameters = _object(json_schema, f"{param}.parametersJsonSchema")
    else:
        parameters = None if schema is None else schema_to_json_schema(schema, f"{param}.parameters")
    description = _opt(raw, "description", _string, at=param) or ""
    return hub.Tool(name=name, description=description, parameters=parameters)


def _tool_choice(raw: Any, tools: list[hub.Tool]) -> hub.ToolChoice | None:
    config = _opt(_object(raw, "toolConfig"), "functionCallingConfig", _object, at="toolConfig")
    if config is None:
        return None  # retrievalConfig alone: nothing an OpenAI-compatible upstream could use
    at = "toolConfig.functionCallingConfig"
    mode = (_opt(config, "mode", _string, at=at) or "AUTO").upper()
    if mode not in _CALLING_MODES:
        _fail(f"{at}.mode", "mode must be one of AUTO, ANY, NONE, VALIDATED")
    names_raw = _opt(config, "allowedFunctionNames", _list, at=at) or []
    names = [_string(n, f"{at}.allowedFunctionNames[{k}]", nonempty=True) for k, n in enumerate(names_raw)]
    if names and mode not in ("ANY", "VALIDATED"):
        _fail(f"{at}.allowedFunctionNames", "allowedFunctionNames may only be set with mode ANY or VALIDATED")
    if not tools:
        if mode == "ANY" or names:
            _fail(f"{at}.mode", f"mode {mode} needs at least one function declaration in tools")
        return None  # AUTO / NONE without tools: harmless, frameworks send it by habit
    declared = {tool.name for tool in tools}
    for name in names:
        if name not in declared:
            _fail(f"{at}.allowedFunctionNames", f"allowedFunctionNames names '{name}', which is not declared in tools")
    return hub.ToolChoice(_CALLING_MODES[mode], names)


# ------------------------------------------------------------------------------------------------
# public: generate and countTokens


def parse_generate_request(body: dict[str, Any], model: str, *, stream: bool) -> hub.ChatRequest:
    """generateContent / streamGenerateContent body -> hub.ChatRequest for a non-Gemini upstream."""
    body = normalise(body)
    if body.get("cachedContent") is not None:
        _fail("cachedContent", "cachedContent is not supported for this model")
    messages = _system(body.get("systemInstruction"), "systemInstruction")
    messages += _History(strict=True).read(body.get("contents"), "contents")
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
        _fail("generateContentRequest", "set either contents or generateContentRequest, not both")
    if inner is None:
        return _History(strict=False).read(contents, "contents")
    at = "generateContentRequest"
    inner = _object(inner, at)
    system = _system(inner.get("systemInstruction"), f"{at}.systemInstruction")
    return system + _History(strict=False).read(inner.get("contents"), f"{at}.contents")


# ------------------------------------------------------------------------------------------------
# public: embeddings (mapping.md §10)


def parse_embed_request(body: dict[str, Any], model: str, method: str) -> hub.EmbedRequest:
    """embedContent / batchEmbedContents -> one hub request; per-request settings must agree."""
    body = normalise(body)
    if method == "embedContent":
        items = [(body, "")]
    elif method == "batchEmbedContents":
        requests = _list(body.get("requests"), "requests")
        if not requests or len(requests) > EMBED_BATCH_LIMIT:
            _fail("requests", f"'requests' must hold between 1 and {EMBED_BATCH_LIMIT} requests")
        items = [(_object(r, f"requests[{i}]"), f"requests[{i}]") for i, r in enumerate(requests)]
        for item, at in items:
            _check_embed_model(item, at, model)
    else:
        _fail(None, f"unsupported embedding method '{method}'")
    texts = [_embed_text(item.get("content"), _join(at, "content")) for item, at in items]
    dims = {_opt(item, "outputDimensionality", _int, 1, at=at) for item, at in items}
    if len(dims) > 1:
        _fail("requests", "every request must use the same outputDimensionality")
    tasks = {_opt(item, "taskType", _string, at=at) for item, at in items}
    titles = {_opt(item, "title", _string, at=at) for item, at in items}
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
    named = _opt(item, "model", _string, at=at)
    if named is not None and named.removeprefix("models/") != model:
        _fail(f"{at}.model", f"'{at}.model' must be models/{model}, the model in the URL")


def _embed_text(raw: Any, param: str) -> str:
    content = _object(raw, param)
    texts = []
    for j, part in enumerate(_list(content.get("parts"), f"{param}.parts")):
        p = f"{param}.parts[{j}]"
        kind = _part_kind(_object(part, p), p)
        if kind not in ("text", None):
            _fail(f"{p}.{kind}", "only text parts can be embedded")
        if kind == "text":
            texts.append(_string(part["text"], f"{p}.text"))
    text = "\n".join(t for t in texts if t)
    if not text:
        _fail(f"{param}.parts", "content has no text to embed")
    return text
