"""Gemini-native client dialect: `contents` and `systemInstruction` -> hub messages (mapping.md §8).

The part of request parsing that walks a conversation: which data field each part holds, text and
inline media, code-execution history, and pairing each functionResponse with the functionCall it
answers (by id, else name, else position). request.py drives it for generateContent,
countTokens and the embedding requests. Pure functions, no Django and no I/O.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from proxy_app.core import hub
from proxy_app.dialects.gemini.response import json_text
from proxy_app.dialects.validate import as_list, as_object, as_string, fail, optional

_PART_DATA = frozenset(
    ["text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode", "codeExecutionResult"]
)
_PART_META = frozenset({"thought", "thoughtSignature", "videoMetadata", "partMetadata", "mediaResolution"})


def system_messages(raw: Any, param: str) -> list[hub.Message]:
    if raw is None:
        return []
    content = as_object(raw, param)  # its role is ignored (the SDK sends "user")
    texts = []
    for j, part in enumerate(as_list(content.get("parts") or [], f"{param}.parts")):
        p = f"{param}.parts[{j}]"
        kind = part_kind(as_object(part, p), p)
        if kind not in ("text", None):
            fail(f"{p}.{kind}", "systemInstruction may only contain text parts")
        if kind == "text" and part.get("thought") is not True:
            texts.append(hub.Part("text", text=as_string(part["text"], f"{p}.text")))
    return [hub.Message("system", texts)] if texts else []


def part_kind(part: dict[str, Any], param: str) -> str | None:
    """The part's one data field; None for a part holding only metadata (dropped, nothing to say)."""
    present = [key for key, value in part.items() if value is not None and key not in _PART_META]
    kinds = [key for key in present if key in _PART_DATA]
    if len(kinds) > 1:
        fail(param, f"a part holds exactly one data field, got {' and '.join(kinds)}")
    if not kinds and present:
        fail(f"{param}.{present[0]}", f"unsupported part field '{present[0]}'")
    return kinds[0] if kinds else None


class History:
    """Walks `contents` in order; remembers the calls of the last model turn to pair results with.

    strict=False (countTokens) tolerates what only matters to a model: empty parts, results
    without a call, fileData (counted as media instead of refused).
    """

    def __init__(self, *, strict: bool) -> None:
        self.strict = strict
        self.messages: list[hub.Message] = []
        self.pending: list[hub.ToolCall] = []  # calls of the latest model turn not yet answered

    def read(self, raw: Any, param: str) -> list[hub.Message]:
        items = [] if raw is None else as_list(raw, param)
        if self.strict and not items:
            fail(param, f"'{param}' must contain at least one content")
        for i, content in enumerate(items):
            self._content(as_object(content, f"{param}[{i}]"), i, f"{param}[{i}]")
        return self.messages

    def _content(self, content: dict[str, Any], i: int, param: str) -> None:
        role = content.get("role") or "user"  # an omitted role means user (gemini.md §2)
        if role not in ("user", "model"):
            fail(f"{param}.role", "Please use a valid role: user, model.")
        parts = as_list(content.get("parts") or [], f"{param}.parts")
        if self.strict and not parts:
            fail(f"{param}.parts", f"'{param}.parts' must not be empty")
        kinds = [
            (j, part_kind(as_object(p, f"{param}.parts[{j}]"), f"{param}.parts[{j}]")) for j, p in enumerate(parts)
        ]
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
                fail(f"{p}.functionResponse", "functionResponse parts belong in user turns")
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
                fail(f"{p}.functionCall", "functionCall parts belong in model turns")
            else:
                out.append(self._plain_part(part, kind, p, role="user"))
        if out:  # text beside function results becomes a user message after the tool messages
            self.messages.append(hub.Message("user", out))

    def _plain_part(self, part: dict[str, Any], kind: str, param: str, *, role: str) -> hub.Part:
        if kind == "text":
            return hub.Part("text", text=as_string(part["text"], f"{param}.text"))
        if kind in ("executableCode", "codeExecutionResult"):
            return hub.Part("text", text=_code_text(part[kind], kind, f"{param}.{kind}"))
        if kind == "fileData" and not self.strict:
            return hub.Part("media", mime_type="application/octet-stream")  # counted, never sent
        if kind == "fileData":
            fail(
                f"{param}.fileData",
                "fileData (file URIs) is not supported for this model; send the bytes as inlineData",
            )
        if role == "model":
            fail(f"{param}.inlineData", "inlineData in model turns is not supported for this model")
        return _inline_data(as_object(part[kind], f"{param}.inlineData"), f"{param}.inlineData")

    def _answer(self, raw: Any, param: str, fallback_id: str) -> hub.Message:
        """A tool message for one functionResponse: matched by id, else name, else position."""
        result = as_object(raw, param)
        name = as_string(result.get("name"), f"{param}.name", nonempty=True)
        response = optional(result, "response", as_object, at=param) or {}  # a Struct: objects only
        if result.get("parts"):
            fail(
                f"{param}.parts",
                "multimodal function responses (functionResponse.parts) are not supported for this model",
            )
        call_id = optional(result, "id", as_string, at=param)
        call = self._match(call_id, name)
        if call is None and self.strict:
            fail(param, f"functionResponse '{name}' answers no functionCall of the preceding model turn")
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
    call = as_object(raw, param)
    return hub.ToolCall(
        # Deterministic, so a later functionResponse without id pairs with the same id every turn.
        id=optional(call, "id", as_string, at=param) or fallback_id,
        name=as_string(call.get("name"), f"{param}.name", nonempty=True),
        arguments=optional(call, "args", as_object, at=param) or {},  # absent for zero-argument calls
    )


def _inline_data(blob: dict[str, Any], param: str) -> hub.Part:
    mime = as_string(blob.get("mimeType"), f"{param}.mimeType", nonempty=True).lower()
    return hub.Part("media", mime_type=mime, data=_base64(blob.get("data"), f"{param}.data"))


def _code_text(raw: Any, kind: str, param: str) -> str:
    """Code-execution history as fenced text: it must not vanish (mapping.md §14.32)."""
    value = as_object(raw, param)
    if kind == "executableCode":
        language = str(value.get("language") or "").lower()
        tag = "" if language == "language_unspecified" else language
        return f"\n```{tag}\n{as_string(value.get('code') or '', f'{param}.code')}\n```\n"
    return f"\n```output\n{as_string(value.get('output') or '', f'{param}.output')}\n```\n"


def _base64(value: Any, param: str) -> str:
    """Standard base64 (proto3 JSON also allows the URL-safe alphabet; OpenAI data URLs do not)."""
    text = as_string(value, param, nonempty=True).replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        fail(param, f"'{param}' is not valid base64")
    return text
