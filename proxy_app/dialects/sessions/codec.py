"""The sessions dialect's shapes: the earlier session proxies (/start_chat, /send_message, /end_chat), the REST resource
/v1/sessions and the WebSocket chat protocol. Pure: no Django, no ORM; history is passed in.

A session's history is a list of {"role": "user" | "model", "text": str}; an answer cut short (cancel,
dropped client) keeps its text with "partial": true. Roles follow Gemini's chat history, which
the earlier session proxies wrapped (https://ai.google.dev/api/caching#Content).

Errors are {"error": {"code": str, "message": str}} (HTTP) and {"type": "error", "code", "message"}
(SSE and WebSocket events).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson

from proxy_app.chat.state import GENERATION_FIELDS, RESPONSE_MIME_TYPES, ChatState, NewChat, build_usage
from proxy_app.core import hub
from proxy_app.core.errors import GatewayError, InvalidRequest
from proxy_app.dialects.validate import INT64

# ------------------------------------------------------------------------------ reading bodies


def _object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object.")
    return body


def _string(body: dict, name: str, *, required: bool = True) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidRequest(f"'{name}' is required and must be a non-empty string.", param=name)
    return value


def _user_id(body: dict) -> str | None:
    value = body.get("user_id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidRequest("'user_id' must be a string or an integer.", param="user_id")
    return str(value)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def parse_generation_config(raw: object) -> dict[str, Any]:
    """Validate a generation_config; return it with snake_case keys. Unknown keys are a 400."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidRequest("'generation_config' must be an object.", param="generation_config")
    config: dict[str, Any] = {}
    for key, value in raw.items():
        name = _snake(key)
        if name not in GENERATION_FIELDS:
            known = ", ".join(GENERATION_FIELDS)
            param = f"generation_config.{key}"
            raise InvalidRequest(f"{param} is not supported (use: {known}).", param=param)
        if value is not None:
            config[name] = _generation_value(name, value)
    return config


def _generation_value(name: str, value: Any) -> Any:
    param = f"generation_config.{name}"
    _, kind = GENERATION_FIELDS[name]
    if name == "stop_sequences" and isinstance(value, str):
        value = [value]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise InvalidRequest(f"{param} has the wrong type.", param=param)
    if isinstance(value, int) and not INT64[0] <= value <= INT64[1]:
        raise InvalidRequest(f"{param} is out of range (a 64-bit integer at most).", param=param)
    if name == "stop_sequences" and not all(isinstance(s, str) for s in value):
        raise InvalidRequest(f"{param} must be a list of strings.", param=param)
    if name == "response_mime_type" and value not in RESPONSE_MIME_TYPES:
        raise InvalidRequest(f"{param} must be one of {sorted(RESPONSE_MIME_TYPES)}.", param=param)
    if name == "candidate_count" and value != 1:
        raise InvalidRequest(f"{param} must be 1: a session keeps one answer per message.", param=param)
    if name in ("max_output_tokens", "top_k") and value < 1:
        raise InvalidRequest(f"{param} must be at least 1.", param=param)
    return value


def _new_chat(body: dict, model_field: str) -> NewChat:
    return NewChat(
        model=_string(body, model_field),
        generation_config=parse_generation_config(body.get("generation_config")),
        system_instruction=_string(body, "system_instruction", required=False),
        user_id=_user_id(body),
    )


def parse_start_chat(body: object) -> NewChat:
    """Seed 002: {model_name, generation_config?, system_instruction?, user_id?}."""
    return _new_chat(_object(body), "model_name")


def parse_create_session(body: object) -> NewChat:
    """REST and WebSocket: {model, generation_config?, system_instruction?}."""
    return _new_chat(_object(body), "model")


def parse_send_message(body: object) -> tuple[str, str, str | None]:
    """Seed 002: {chat_id, message, user_id?} -> (chat_id, message, user_id)."""
    body = _object(body)
    return _string(body, "chat_id"), _string(body, "message"), _user_id(body)


def parse_end_chat(body: object) -> tuple[str, str | None]:
    body = _object(body)
    return _string(body, "chat_id"), _user_id(body)


def parse_post_message(body: object) -> tuple[str, bool]:
    """REST: {message, stream?} -> (message, stream)."""
    body = _object(body)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean.", param="stream")
    return _string(body, "message"), stream


def user_matches(claimed: str | None, username: str, user_id: int) -> bool:
    """A seed client's `user_id` names the key's user by username or numeric id (absent: fine)."""
    return claimed is None or claimed in (username, str(user_id))


# ------------------------------------------------------------------------------ history and hub


# ------------------------------------------------------------------------------ answers


def build_send_message_response(text: str, usage: hub.Usage, chat_id: str) -> dict[str, Any]:
    return {"response": text, "chat_id": chat_id, "usage": build_usage(usage)}


def build_end_chat_response(chat_id: str) -> dict[str, Any]:
    return {"message": f"Chat session {chat_id} ended."}


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def build_session(state: ChatState, *, with_history: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": state.chat_id,
        "object": "chat.session",
        "model": state.model,
        "system_instruction": state.system_instruction,
        "generation_config": state.generation_config,
        "created_at": _time(state.created_at),
        "updated_at": _time(state.updated_at),
        "ended_at": _time(state.ended_at),
        "turns": len(state.history),
        "turns_dropped": state.turns_dropped,
    }
    if with_history:
        out["history"] = state.history
    return out


def build_session_list(states: Iterable[ChatState]) -> dict[str, Any]:
    return {"object": "list", "data": [build_session(s, with_history=False) for s in states]}


# ------------------------------------------------------------------------------ events and errors


def error_code(err: GatewayError) -> str:
    return err.code or ("invalid_request" if err.status < 500 else "internal_error")


def error_event(err: GatewayError) -> dict[str, Any]:
    return {"type": "error", "code": error_code(err), "message": err.message}


def build_error(err: GatewayError) -> dict[str, Any]:
    return {"error": {"code": error_code(err), "message": err.message}}


def sse_frame(event: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(event) + b"\n\n"
