"""What the tests/test_dialect_gemini_*.py modules share: hub message and Gemini part builders."""

from __future__ import annotations

from typing import Any

from proxy_app.core.hub import ChatRequest, Message, Part


def user(*texts: str) -> Message:
    return Message(role="user", parts=[Part(type="text", text=t) for t in texts])


def chat(*messages: Message, **fields: Any) -> ChatRequest:
    fields.setdefault("upstream_model", "gemini-2.5-flash")
    return ChatRequest(model="alias", messages=list(messages), **fields)


def u(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "parts": list(parts)}


def t(text: str) -> dict[str, str]:
    return {"text": text}
