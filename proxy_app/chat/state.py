"""A chat session as the chat product keeps it: its state, how a message becomes a hub request, how
answers extend the history, and the events a turn streams (delta, done). Pure: no Django, no ORM.

Every surface of the product (the session endpoints, /v1/sessions, the WebSocket) shares these;
proxy_app/dialects/sessions/ frames them on the wire. A session's history is a list of
{"role": "user" | "model", "text": str}; an answer cut short (cancel, dropped client) keeps its
text with "partial": true.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from proxy_app.core import hub

# generation_config keys (snake_case; camelCase accepted too) -> (hub field, type check).
# Gemini's GenerationConfig names: https://ai.google.dev/api/generate-content#generationconfig
GENERATION_FIELDS: dict[str, tuple[str, type | tuple[type, ...]]] = {
    "temperature": ("temperature", (int, float)),
    "top_p": ("top_p", (int, float)),
    "top_k": ("top_k", int),
    "max_output_tokens": ("max_tokens", int),
    "stop_sequences": ("stop", list),
    "seed": ("seed", int),
    "presence_penalty": ("presence_penalty", (int, float)),
    "frequency_penalty": ("frequency_penalty", (int, float)),
    "response_mime_type": ("response_format", str),
    "candidate_count": ("n", int),
}


RESPONSE_MIME_TYPES = {"text/plain": None, "application/json": hub.ResponseFormat("json_object")}


@dataclass(frozen=True)
class ChatState:
    """A session as the surfaces see it (a snapshot of the row)."""

    chat_id: str
    model: str
    system_instruction: str = ""
    generation_config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    ended_at: datetime | None = None
    turns_dropped: int = 0


@dataclass(frozen=True)
class NewChat:
    model: str
    generation_config: dict[str, Any]
    system_instruction: str
    user_id: str | None = None


def build_chat_request(state: ChatState, message: str, *, stream: bool = False) -> hub.ChatRequest:
    """System instruction + stored history + the new message, with the session's settings."""
    messages = []
    if state.system_instruction:
        messages.append(hub.Message("system", [hub.Part("text", text=state.system_instruction)]))
    for entry in state.history:
        role = "assistant" if entry["role"] == "model" else "user"
        messages.append(hub.Message(role, [hub.Part("text", text=entry["text"])]))
    messages.append(hub.Message("user", [hub.Part("text", text=message)]))
    req = hub.ChatRequest(model=state.model, messages=messages, stream=stream, include_usage=stream)
    for name, value in state.generation_config.items():
        hub_field, _ = GENERATION_FIELDS[name]
        if name == "response_mime_type":
            value = RESPONSE_MIME_TYPES[value]
        setattr(req, hub_field, list(value) if isinstance(value, list) else value)
    return req


def new_entries(message: str, answer: str, *, partial: bool = False) -> list[dict[str, Any]]:
    """The history entries one message adds. A cut-short answer keeps what the user saw, marked;
    with nothing received at all, the message is dropped too (nothing was answered)."""
    if partial and not answer:
        return []
    reply: dict[str, Any] = {"role": "model", "text": answer}
    if partial:
        reply["partial"] = True
    return [{"role": "user", "text": message}, reply]


def trim_history(history: list[dict[str, Any]], max_turns: int) -> tuple[list[dict[str, Any]], int]:
    """Keep the newest `max_turns` entries, starting on a user entry; return (kept, dropped count).
    The system instruction is not part of the history, so it always stays."""
    start = max(len(history) - max_turns, 0)
    while start < len(history) and history[start]["role"] != "user":
        start += 1
    return history[start:], start


def build_usage(usage: hub.Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "source": usage.source,
    }


def answer_text(resp: hub.ChatResponse) -> str:
    return resp.choices[0].text if resp.choices else ""


def event_text(event: hub.StreamEvent) -> str:
    return "".join(d.text for d in event.deltas if d.index == 0)


def delta_event(text: str) -> dict[str, Any]:
    return {"type": "delta", "text": text}


def done_event(chat_id: str, usage: hub.Usage, text: str) -> dict[str, Any]:
    return {"type": "done", "chat_id": chat_id, "usage": build_usage(usage), "text": text}
