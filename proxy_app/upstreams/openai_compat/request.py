"""OpenAI codec, upstream side, requests: hub requests → OpenAI-compatible request bodies.

The /chat/completions body (openai.md §2, §3) and the /embeddings body (§6) the gateway sends TO an
OpenAI-compatible server; reading its replies is codec.py, which re-exports these.
Pure functions, no I/O, no Django.
"""

from __future__ import annotations

import json
import mimetypes
from typing import Any

import orjson

from proxy_app.core import hub
from proxy_app.core.errors import InvalidRequest

AUDIO_FORMATS = {"wav": "audio/wav", "mp3": "audio/mpeg"}  # input_audio formats OpenAI accepts
_AUDIO_MIME = {mime: fmt for fmt, mime in AUDIO_FORMATS.items()} | {
    "audio/mp3": "mp3",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/x-mp3": "mp3",
}


# ------------------------------------------------------------------------------------------------
# hub → chat completion request (openai.md §2, §3)


def build_chat_request(req: hub.ChatRequest) -> dict[str, Any]:
    """The /chat/completions body; streamed requests always ask for the usage chunk."""
    body: dict[str, Any] = {
        "model": req.upstream_model or req.model,
        "messages": [_message(m) for m in req.messages],
    }
    if req.tools:
        body["tools"] = [_tool(t) for t in req.tools]
    if req.tool_choice is not None:
        body["tool_choice"] = _tool_choice(req.tool_choice)
    if req.response_format is not None:
        body["response_format"] = _response_format(req.response_format)
    body.update(_sampling(req))
    if req.stream:
        # Usage is needed for quota and records even when the client did not ask (openai.md §5).
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _sampling(req: hub.ChatRequest) -> dict[str, Any]:
    if req.cached_content:
        # Google's context caches exist only on Gemini upstreams (mapping.md §8).
        raise InvalidRequest("cached_content is not supported by this model's upstream", param="cached_content")
    settings = {
        "max_tokens": req.max_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "top_k": req.top_k,  # vendor extension (vLLM, Ollama, DeepSeek); set only when asked
        "n": req.n if req.n != 1 else None,
        "stop": list(req.stop) or None,
        "seed": req.seed,
        "presence_penalty": req.presence_penalty,
        "frequency_penalty": req.frequency_penalty,
        "logprobs": True if req.logprobs else None,
        "top_logprobs": req.top_logprobs,
        "reasoning_effort": req.reasoning_effort or _effort_from_thinking(req.thinking_config),
    }
    return {key: value for key, value in settings.items() if value is not None}


def _effort_from_thinking(config: dict[str, Any] | None) -> str | None:
    """Gemini thinkingConfig → reasoning_effort (mapping.md §8): budgets by size, levels lower-cased."""
    if not config:
        return None
    level = config.get("thinkingLevel")
    if isinstance(level, str) and level:
        return level.lower()
    budget = config.get("thinkingBudget")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 0:
        return None  # -1 (dynamic) or absent: let the upstream decide
    if budget == 0:
        return "none"
    return "low" if budget <= 1024 else "medium" if budget <= 8192 else "high"


def _message(m: hub.Message) -> dict[str, Any]:
    if m.role == "system":
        return {"role": "system", "content": m.text}
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.text}
    if m.role == "assistant":
        out: dict[str, Any] = {"role": "assistant", "content": m.text or (None if m.tool_calls else "")}
        if m.tool_calls:
            out["tool_calls"] = [tool_call_dict(c) for c in m.tool_calls]
        return out
    return {"role": "user", "content": _user_content(m.parts)}


def _user_content(parts: list[hub.Part]) -> str | list[dict[str, Any]]:
    if all(p.type == "text" for p in parts) and len(parts) <= 1:
        return parts[0].text if parts else ""
    return [_content_part(p) for p in parts]


def _content_part(part: hub.Part) -> dict[str, Any]:
    if part.type == "text":
        return {"type": "text", "text": part.text}
    if part.type == "media_url":  # normally inlined by proxy_app.media before we get here
        return {"type": "image_url", "image_url": {"url": part.url}}
    mime = part.mime_type.lower()
    data_url = f"data:{mime};base64,{part.data}"
    if mime.startswith("image/"):
        return {"type": "image_url", "image_url": {"url": data_url}}
    if mime in _AUDIO_MIME:
        return {"type": "input_audio", "input_audio": {"data": part.data, "format": _AUDIO_MIME[mime]}}
    # OpenAI wants a filename with file_data; the extension tells it the type.
    filename = "file" + (mimetypes.guess_extension(mime) or ".bin")
    return {"type": "file", "file": {"filename": filename, "file_data": data_url}}


def _tool(tool: hub.Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    if tool.parameters is not None:
        function["parameters"] = tool.parameters
    return {"type": "function", "function": function}


def _tool_choice(choice: hub.ToolChoice) -> str | dict[str, Any]:
    """openai.md §2; a list of names becomes allowed_tools, one required name a named function."""
    if not choice.names or choice.mode == "none":
        return choice.mode
    named = [{"type": "function", "function": {"name": name}} for name in choice.names]
    if choice.mode == "required" and len(named) == 1:
        return named[0]
    return {"type": "allowed_tools", "allowed_tools": {"mode": choice.mode, "tools": named}}


def _response_format(fmt: hub.ResponseFormat) -> dict[str, Any]:
    if fmt.type == "json_schema" and fmt.schema is not None:
        return {"type": "json_schema", "json_schema": {"name": fmt.name, "schema": fmt.schema}}
    return {"type": "json_object" if fmt.type == "json_schema" else fmt.type}


# ------------------------------------------------------------------------------------------------
# hub → embeddings request (openai.md §6; mapping.md §10)


def build_embed_request(req: hub.EmbedRequest) -> dict[str, Any]:
    """Always float vectors: the gateway re-encodes for its own clients (mapping.md §10)."""
    body: dict[str, Any] = {
        "model": req.upstream_model or req.model,
        "input": list(req.inputs),
        "encoding_format": "float",
    }
    if req.dimensions:
        body["dimensions"] = req.dimensions
    return body


def _compact_json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson refuses ints beyond 64 bits; model output may still hold them
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def tool_call_dict(call: hub.ToolCall) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": _compact_json(call.arguments)},
    }
    if call.thought_signature:
        # Google's own compat endpoint uses this spot; clients echo it back (mapping.md §5.3).
        out["extra_content"] = {"google": {"thought_signature": call.thought_signature}}
    return out
