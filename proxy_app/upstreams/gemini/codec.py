"""Gemini codec, upstream side: hub requests → Gemini REST bodies, Gemini replies → hub objects.

Talking TO a Gemini upstream (generativelanguage v1beta): generateContent / streamGenerateContent
bodies, batchEmbedContents, model entries and error bodies; replies are read in response.py and
re-exported here (`parse_generate_response`, `parse_stream_chunk`, `parse_usage`, `parse_error`).
The rules are docs/reference/mapping.md §1–§7 and §12.2; the wire facts are docs/reference/gemini.md.
Everything here is pure (no I/O, no Django) so it is tested as tables.
"""

from __future__ import annotations

import json
import re
from itertools import groupby
from typing import Any

from proxy_app.core.errors import (
    InvalidRequest,
    UpstreamError,
)
from proxy_app.core.hub import (
    SYNTHETIC_CALL_PREFIX,
    ChatRequest,
    EmbedRequest,
    Message,
    ModelInfo,
    Part,
    ResponseFormat,
    Tool,
    ToolCall,
)
from proxy_app.upstreams.gemini import schema as wire
from proxy_app.upstreams.gemini.response import parse_error as parse_error
from proxy_app.upstreams.gemini.response import parse_generate_response as parse_generate_response
from proxy_app.upstreams.gemini.response import parse_stream_chunk as parse_stream_chunk
from proxy_app.upstreams.gemini.response import parse_usage as parse_usage
from proxy_app.upstreams.gemini.schema import read_float, read_int, read_list, read_obj, read_str

EMBED_BATCH_LIMIT = 100  # "at most 100 requests can be in one batch" (gemini.md §11)
# Google's documented escape hatch for a Gemini 3 function call whose signature is unknown (§5.3).
SKIP_SIGNATURE = "skip_thought_signature_validator"
_FUNCTION_NAME = re.compile(r"[a-zA-Z0-9_.:-]{1,64}")  # FunctionDeclaration.name (gemini.md §3.1)
_PLACEHOLDER_TEXT = " "  # Gemini rejects "" but accepts one space (mapping.md §2.6)
_PLAIN_PART_KEYS = {"text", "inlineData"}
_ROLES = {"user": "user", "assistant": "model"}
_CALLING_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


# ------------------------------------------------------------------------------------------------
# hub → GenerateContentRequest


def build_generate_request(req: ChatRequest) -> dict[str, Any]:
    """The generateContent body for `req`; the model goes in the URL, never in the body."""
    body: dict[str, Any] = {"contents": _build_contents(req)}
    optional = {
        "systemInstruction": _system_instruction(req.messages),
        "tools": _build_tools(req),
        "toolConfig": _build_tool_config(req),
        "generationConfig": _generation_config(req),
        "safetySettings": req.safety_settings,
        "cachedContent": req.cached_content,
    }
    body.update({key: value for key, value in optional.items() if value})
    return body


def _system_instruction(messages: list[Message]) -> dict[str, Any] | None:
    # Every system message counts, wherever it sits (mapping.md §14.10).
    texts = [_system_text(m) for m in messages if m.role == "system"]
    joined = "\n\n".join(text for text in texts if text)
    return {"parts": [{"text": joined}]} if joined else None


def _system_text(message: Message) -> str:
    if any(part.type != "text" for part in message.parts):
        raise InvalidRequest("system messages may only contain text", param="messages")
    return message.text


def _build_contents(req: ChatRequest) -> list[dict[str, Any]]:
    contents: list[dict[str, Any]] = []
    previous: Message | None = None
    turns = [m for m in req.messages if m.role != "system"]
    for is_tool, run in groupby(turns, key=lambda m: m.role == "tool"):
        group = list(run)
        if is_tool:  # N consecutive tool results answer one model turn together (§14.6)
            contents.append(_function_responses(group, previous))
        else:
            contents.extend(_message_content(m) for m in group)
        previous = group[-1]
    contents = _with_placeholder(_merge_adjacent([c for c in contents if c["parts"]]))
    if wire.model_name(req.upstream_model).startswith("gemini-3"):
        _sign_first_calls(contents)
    return contents


def _message_content(message: Message) -> dict[str, Any]:
    role = _ROLES.get(message.role)
    if role is None:
        raise InvalidRequest(f"unsupported message role {message.role!r}", param="messages")
    parts = [p for p in map(_build_part, message.parts) if p != {"text": ""}]
    if role == "model":
        parts += [_function_call_part(call) for call in message.tool_calls]
    return {"role": role, "parts": parts}


def _build_part(part: Part) -> dict[str, Any]:
    if part.type == "text":
        return {"text": part.text}
    if part.type == "media" and part.mime_type:
        return {"inlineData": {"mimeType": part.mime_type, "data": part.data}}
    if part.type == "media":
        raise InvalidRequest("inline media needs a MIME type", param="messages")
    # proxy_app.media fetches URLs before this codec runs; one reaching here was not fetched.
    raise InvalidRequest("media URLs are not supported here; send the data inline", param="messages")


def _function_call_part(call: ToolCall) -> dict[str, Any]:
    if not isinstance(call.arguments, dict):
        raise InvalidRequest("invalid tool call arguments: must be a JSON object", param="messages")
    function_call: dict[str, Any] = {"name": call.name, "args": call.arguments}
    if _is_upstream_id(call.id):
        function_call["id"] = call.id
    part: dict[str, Any] = {"functionCall": function_call}
    if call.thought_signature:
        part["thoughtSignature"] = call.thought_signature
    return part


def _is_upstream_id(call_id: str | None) -> bool:
    return bool(call_id) and not str(call_id).startswith(SYNTHETIC_CALL_PREFIX)


def _function_responses(results: list[Message], previous: Message | None) -> dict[str, Any]:
    calls = previous.tool_calls if previous is not None and previous.role == "assistant" else []
    if len(results) != len(calls):
        # Gemini would 400 with a vaguer message; say what is wrong in the client's terms.
        raise InvalidRequest(
            f"{len(results)} tool result message(s) follow an assistant turn with {len(calls)} "
            "tool call(s); send exactly one tool message per tool call",
            param="messages",
        )
    position = {call.id: k for k, call in enumerate(calls)}
    ordered = sorted(results, key=lambda m: position.get(m.tool_call_id or "", len(calls)))
    return {"role": "user", "parts": [_function_response_part(m, calls) for m in ordered]}


def _function_response_part(result: Message, calls: list[ToolCall]) -> dict[str, Any]:
    name = result.name or next((c.name for c in calls if c.id == result.tool_call_id), "")
    if not name:
        raise InvalidRequest(f"tool result {result.tool_call_id!r} names no function", param="messages")
    response: dict[str, Any] = {"name": name, "response": _tool_result(result.text)}
    if _is_upstream_id(result.tool_call_id):
        response["id"] = result.tool_call_id
    return {"functionResponse": response}


def _tool_result(text: str) -> dict[str, Any]:
    """functionResponse.response must be an object (a protobuf Struct): wrap everything else."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return {"result": text}  # plain-text tool output is normal, not an error (§14.7)
    return value if isinstance(value, dict) else {"result": value}


def _merge_adjacent(contents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Only text/media contents merge: a functionResponse turn must stay its own turn (§2.5).
    # A plain model turn also absorbs a following model turn with calls: clients that send the
    # text and the tool calls as two assistant messages would otherwise produce a call turn that
    # does not follow a user turn, which Gemini rejects.
    merged: list[dict[str, Any]] = []
    for content in contents:
        last = merged[-1] if merged else None
        same_role = last is not None and last["role"] == content["role"]
        if same_role and _is_plain(last) and (_is_plain(content) or content["role"] == "model"):
            last["parts"] = last["parts"] + content["parts"]
        else:
            merged.append(content)
    return merged


def _is_plain(content: dict[str, Any]) -> bool:
    return all(part.keys() <= _PLAIN_PART_KEYS for part in content["parts"])


def _has_call(content: dict[str, Any]) -> bool:
    return any("functionCall" in part for part in content["parts"])


def _with_placeholder(contents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Gemini needs non-empty contents, and a function call turn must follow a user turn.
    first = contents[0] if contents else None
    if first is None or (first["role"] == "model" and _has_call(first)):
        return [{"role": "user", "parts": [{"text": _PLACEHOLDER_TEXT}]}, *contents]
    return contents


def _sign_first_calls(contents: list[dict[str, Any]]) -> None:
    # Gemini 3 400s on an unsigned first call of a model step; siblings stay unsigned (§5.3).
    for content in contents:
        calls = [part for part in content["parts"] if "functionCall" in part]
        if content["role"] == "model" and calls and "thoughtSignature" not in calls[0]:
            calls[0]["thoughtSignature"] = SKIP_SIGNATURE


def _build_tools(req: ChatRequest) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    if req.tools:
        tools.append({"functionDeclarations": [_declaration(tool) for tool in req.tools]})
    if req.grounding:
        tools.append({"googleSearch": {}})
    return tools


def _declaration(tool: Tool) -> dict[str, Any]:
    if not isinstance(tool.name, str) or not _FUNCTION_NAME.fullmatch(tool.name):
        raise InvalidRequest(
            f"invalid function name {tool.name!r}: Gemini allows 1-64 characters "
            "from a-z, A-Z, 0-9, '_', '.', ':' and '-'",
            param="tools",
        )
    declaration: dict[str, Any] = {"name": tool.name, "description": tool.description}
    if tool.parameters is not None:
        # parametersJsonSchema takes JSON Schema as is; only these two keys are rejected.
        declaration["parametersJsonSchema"] = _without(tool.parameters, "$schema", "strict")
    return declaration


def _build_tool_config(req: ChatRequest) -> dict[str, Any] | None:
    choice = req.tool_choice
    if choice is None:
        return None
    mode = _CALLING_MODES.get(choice.mode)
    if mode is None:
        raise InvalidRequest(f"unsupported tool_choice mode {choice.mode!r}", param="tool_choice")
    if not req.tools:  # frameworks send "auto"/"none" with no tools: harmless, so ignored
        if choice.mode == "required" or choice.names:
            raise InvalidRequest("tool_choice requires at least one tool in tools", param="tool_choice")
        return None
    return {"functionCallingConfig": _calling_config(mode, choice.names, req.tools)}


def _calling_config(mode: str, names: list[str], tools: list[Tool]) -> dict[str, Any]:
    declared = {tool.name for tool in tools}
    for name in names:
        if name not in declared:
            message = f"tool_choice names function {name!r}, which is not in tools"
            raise InvalidRequest(message, param="tool_choice")
    if not names or mode == "NONE":
        return {"mode": mode}
    # AUTO takes no names; VALIDATED is Gemini's "may call, but only these" (gemini.md §5).
    return {"mode": "VALIDATED" if mode == "AUTO" else mode, "allowedFunctionNames": list(names)}


def _generation_config(req: ChatRequest) -> dict[str, Any]:
    config = {
        "maxOutputTokens": req.max_tokens,
        "temperature": req.temperature,
        "topP": req.top_p,
        "topK": req.top_k,
        "candidateCount": req.n if req.n > 1 else None,
        "stopSequences": [stop for stop in req.stop if stop] or None,
        "seed": req.seed,
        "presencePenalty": req.presence_penalty,
        "frequencyPenalty": req.frequency_penalty,
        **_logprobs_config(req),
        **_response_format_config(req.response_format),
        "thinkingConfig": _thinking_config(req),
    }
    return {key: value for key, value in config.items() if value is not None}


def _logprobs_config(req: ChatRequest) -> dict[str, Any]:
    if req.top_logprobs is not None and not req.logprobs:
        raise InvalidRequest("top_logprobs requires logprobs to be true", param="top_logprobs")
    return {"responseLogprobs": True, "logprobs": req.top_logprobs} if req.logprobs else {}


def _response_format_config(fmt: ResponseFormat | None) -> dict[str, Any]:
    if fmt is None or fmt.type == "text":
        return {}
    if fmt.type not in ("json_object", "json_schema"):
        raise InvalidRequest(f"unsupported response_format type {fmt.type!r}", param="response_format")
    config: dict[str, Any] = {"responseMimeType": "application/json"}
    if fmt.type == "json_schema" and fmt.schema is not None:
        config["responseJsonSchema"] = _without(fmt.schema, "$schema")
    return config


def _thinking_config(req: ChatRequest) -> dict[str, Any] | None:
    if req.thinking_config and req.reasoning_effort is not None:
        # Google's own compat layer refuses the pair as "overlapping functionality".
        message = "use either reasoning_effort or thinking_config, not both"
        raise InvalidRequest(message, param="reasoning_effort")
    if req.thinking_config:
        return req.thinking_config
    if req.reasoning_effort is None:
        thinks = wire.thinking_from_effort("low", req.upstream_model) is not None
        return {"includeThoughts": True} if req.include_thoughts and thinks else None
    if req.reasoning_effort not in wire.EFFORT_TABLE:
        allowed = ", ".join(wire.EFFORT_TABLE)
        message = f"unsupported reasoning_effort {req.reasoning_effort!r}; use one of {allowed}"
        raise InvalidRequest(message, param="reasoning_effort")
    config = wire.thinking_from_effort(req.reasoning_effort, req.upstream_model)
    if config is not None and req.include_thoughts:
        config = {**config, "includeThoughts": True}
    return config


def _without(schema: dict[str, Any], *keys: str) -> dict[str, Any]:
    # Top level only: deeper, these words may be property names the client chose.
    return {key: value for key, value in schema.items() if key not in keys}


# ------------------------------------------------------------------------------------------------
# Embeddings and models


def build_batch_embed_request(req: EmbedRequest, inputs: list[str]) -> dict[str, Any]:
    """One batchEmbedContents body; the caller splits inputs into EMBED_BATCH_LIMIT chunks."""
    if len(inputs) > EMBED_BATCH_LIMIT:
        raise ValueError(f"at most {EMBED_BATCH_LIMIT} inputs per batch, got {len(inputs)}")
    return {"requests": [_embed_item(req, text) for text in inputs]}


def _embed_item(req: EmbedRequest, text: str) -> dict[str, Any]:
    # requests[].model must equal the URL model, with the "models/" prefix (gemini.md §11).
    item: dict[str, Any] = {
        "model": "models/" + req.upstream_model.removeprefix("models/"),
        "content": {"parts": [{"text": text}]},
    }
    if req.dimensions:
        item["outputDimensionality"] = req.dimensions
    if req.task_type:
        item["taskType"] = req.task_type
    return item


def parse_batch_embed_response(body: dict[str, Any]) -> list[list[float]]:
    """Vectors in request order."""
    embeddings = read_list(read_obj(body, "embed response").get("embeddings"), "embeddings")
    return [_vector(embedding) for embedding in embeddings]


def _vector(raw: object) -> list[float]:
    values = read_list(read_obj(raw, "embedding").get("values"), "embedding.values")
    return [read_float(value, "embedding value") for value in values]


def parse_model(m: dict[str, Any]) -> ModelInfo:
    """One entry of GET /v1beta/models."""
    m = read_obj(m, "model")
    name = read_str(m.get("name"), "model.name").removeprefix("models/")
    if not name:
        raise UpstreamError("Gemini listed a model without a name")
    methods = read_list(m.get("supportedGenerationMethods"), "supportedGenerationMethods")
    return ModelInfo(
        id=name,
        owned_by="google",
        display_name=read_str(m.get("displayName"), "displayName"),
        input_token_limit=read_int(m.get("inputTokenLimit", 0), "inputTokenLimit"),
        output_token_limit=read_int(m.get("outputTokenLimit", 0), "outputTokenLimit"),
        methods=[read_str(method, "supportedGenerationMethods[]") for method in methods],
    )
