"""OpenAI dialect, outbound half: hub results -> OpenAI JSON bodies and SSE stream frames.

Whole responses (chat, legacy completion, embeddings, models, errors) and the two stream encoders
share the pieces at the top (usage, logprobs, tool calls, finish reasons), so a streamed answer
and a whole one look alike (openai.md §4–§9; mapping.md §6, §7, §12). `openai.py` parses requests
and re-exports everything public from here, so callers import one module.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from proxy_app.core import errors, hub
from proxy_app.upstreams.openai_compat.request import tool_call_dict

DONE = b"data: [DONE]\n\n"
# Shown when an upstream flags a candidate as broken (e.g. Gemini MALFORMED_FUNCTION_CALL)
# without saying why.
MALFORMED_CALL = "the model produced a malformed function call"


def frame(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def usage_dict(usage: hub.Usage) -> dict[str, Any]:
    """OpenAI usage; prompt includes cached tokens and completion includes reasoning (mapping.md §7)."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def _token(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}


def logprobs_dict(tokens: list[hub.TokenLogprob] | None) -> dict[str, Any] | None:
    """openai.md §4.1 shape, or None when the choice carries no logprobs."""
    if tokens is None:
        return None
    content = [{**_token(t.token, t.logprob), "top_logprobs": [_token(tok, lp) for tok, lp in t.top]} for t in tokens]
    return {"content": content, "refusal": None}


def chat_finish_reason(reason: hub.FinishReason, saw_call: bool) -> str:
    """Gemini says STOP even when it called functions; OpenAI clients expect tool_calls."""
    if reason == "error":
        raise ValueError('finish_reason "error" must become an error response, not a choice')
    return "tool_calls" if reason == "stop" and saw_call else reason


def completion_finish_reason(reason: hub.FinishReason) -> str:
    """Legacy completions know only stop / length / content_filter (openai.md §8)."""
    if reason == "error":
        raise ValueError('finish_reason "error" must become an error response, not a choice')
    return reason if reason in ("length", "content_filter") else "stop"


def error_body(err: errors.GatewayError, *, param: str | None) -> dict[str, Any]:
    return {"error": {"message": err.message, "type": err.kind, "param": param, "code": err.code}}


# --- whole responses -------------------------------------------------------------------------


def _chat_message(choice: hub.Choice) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": choice.text or (None if choice.tool_calls else ""),
        "refusal": None,
    }
    if choice.tool_calls:
        message["tool_calls"] = [tool_call_dict(c) for c in choice.tool_calls]
    if choice.reasoning:
        message["reasoning_content"] = choice.reasoning  # vendor field (mapping.md §5.2)
    return message


def build_chat_response(resp: hub.ChatResponse, model: str, *, created: int, completion_id: str) -> dict[str, Any]:
    """hub.ChatResponse -> chat.completion; raises ValueError on finish_reason "error"."""
    choices = [
        {
            "index": c.index,
            "message": _chat_message(c),
            "logprobs": logprobs_dict(c.logprobs),
            "finish_reason": chat_finish_reason(c.finish_reason, bool(c.tool_calls)),
        }
        for c in resp.choices
    ]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage_dict(resp.usage),
    }


def build_error(err: errors.GatewayError) -> dict[str, Any]:
    """openai.md §9 error body; the HTTP status comes from err.status."""
    return error_body(err, param=err.param)


def _encode_vector(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format != "base64":
        return vector
    # The SDKs decode little-endian float32 (openai.md §6); float64 would turn into garbage.
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def build_embed_response(resp: hub.EmbedResponse, model: str, encoding_format: str) -> dict[str, Any]:
    data = [
        {"object": "embedding", "index": i, "embedding": _encode_vector(v, encoding_format)}
        for i, v in enumerate(resp.vectors)
    ]
    usage = {"prompt_tokens": resp.usage.prompt_tokens, "total_tokens": resp.usage.total_tokens}
    return {"object": "list", "data": data, "model": model, "usage": usage}


def build_completion_response(
    resp: hub.ChatResponse, model: str, *, created: int, completion_id: str
) -> dict[str, Any]:
    """hub.ChatResponse -> text_completion; raises ValueError on finish_reason "error"."""
    choices = [
        {"text": c.text, "index": c.index, "logprobs": None, "finish_reason": completion_finish_reason(c.finish_reason)}
        for c in resp.choices
    ]
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage_dict(resp.usage),
    }


def build_model(info: hub.ModelInfo) -> dict[str, Any]:
    return {"id": info.id, "object": "model", "created": info.created, "owned_by": info.owned_by}


def build_model_list(infos: Iterable[hub.ModelInfo]) -> dict[str, Any]:
    return {"object": "list", "data": [build_model(i) for i in infos]}


# --- streams -----------------------------------------------------------------------------------


@dataclass
class _ChoiceState:
    started: bool = False
    next_tool: int = 0
    saw_call: bool = False
    finished: bool = False


class _StreamEncoder:
    """Per-choice bookkeeping and framing; subclasses only say what one choice looks like.

    `encode()` raises errors.UpstreamError when a delta finishes with hub reason "error"
    (nothing of that event is emitted); the caller then writes `error(exc)` and stops, without
    `finish()` — an in-band error frame never follows [DONE] (mapping.md §12.3).
    `StreamEvent.usage` is ignored here: the caller tallies it and passes the last one to finish().
    """

    object_name = ""

    def __init__(self, model: str, *, completion_id: str, created: int, include_usage: bool) -> None:
        self._head = {"id": completion_id, "object": self.object_name, "created": created, "model": model}
        self._include_usage = include_usage
        self._choices: dict[int, _ChoiceState] = {}

    def encode(self, event: hub.StreamEvent) -> list[bytes]:
        self._raise_on_error(event.deltas)
        frames: list[bytes] = []
        for delta in event.deltas:
            state = self._choices.setdefault(delta.index, _ChoiceState())
            if state.finished:
                continue  # one finish chunk per choice; output after it would confuse clients
            frames.extend(self._frame(c) for c in self._output(delta, state))
            if delta.finish_reason is not None:
                state.finished = True
                frames.append(self._frame(self._finish(delta.index, delta.finish_reason, state)))
        return frames

    def finish(self, usage: hub.Usage | None) -> list[bytes]:
        frames = []
        if self._include_usage:  # clients that did not ask often index choices[0] unguarded
            frames.append(frame({**self._head, "choices": [], "usage": usage_dict(usage or hub.Usage())}))
        frames.append(DONE)
        return frames

    def error(self, err: errors.GatewayError) -> bytes:
        return frame(error_body(err, param=None))

    def _raise_on_error(self, deltas: list[hub.ChoiceDelta]) -> None:
        for delta in deltas:
            state = self._choices.get(delta.index)
            if delta.finish_reason == "error" and not (state and state.finished):
                raise errors.UpstreamError(delta.finish_message or MALFORMED_CALL)

    def _frame(self, choice: dict[str, Any]) -> bytes:
        return frame({**self._head, "choices": [choice]})

    def _output(self, delta: hub.ChoiceDelta, state: _ChoiceState) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _finish(self, index: int, reason: hub.FinishReason, state: _ChoiceState) -> dict[str, Any]:
        raise NotImplementedError


class ChatStreamEncoder(_StreamEncoder):
    """chat.completion.chunk frames: role chunk, content / reasoning / whole tool calls, finish."""

    object_name = "chat.completion.chunk"

    def _output(self, delta: hub.ChoiceDelta, state: _ChoiceState) -> list[dict[str, Any]]:
        choices = []
        if not state.started:
            state.started = True
            choices.append(self._choice(delta.index, {"role": "assistant", "content": ""}))
        if delta.reasoning:
            choices.append(self._choice(delta.index, {"reasoning_content": delta.reasoning}))
        if delta.text:
            choices.append(self._choice(delta.index, {"content": delta.text}, delta.logprobs))
        for call in delta.tool_calls:
            # Whole arguments in one delta are valid; clients concatenate per index (openai.md §5).
            item = {"index": state.next_tool, **tool_call_dict(call)}
            state.next_tool += 1
            state.saw_call = True
            choices.append(self._choice(delta.index, {"tool_calls": [item]}))
        return choices

    def _finish(self, index: int, reason: hub.FinishReason, state: _ChoiceState) -> dict[str, Any]:
        return self._choice(index, {}, None, chat_finish_reason(reason, state.saw_call))

    @staticmethod
    def _choice(
        index: int,
        delta: dict[str, Any],
        logprobs: list[hub.TokenLogprob] | None = None,
        finish_reason: str | None = None,
    ) -> dict[str, Any]:
        return {"index": index, "delta": delta, "logprobs": logprobs_dict(logprobs), "finish_reason": finish_reason}


class CompletionStreamEncoder(_StreamEncoder):
    """Legacy text_completion frames: text deltas, then a finish chunk; reasoning is not shown."""

    object_name = "text_completion"

    def _output(self, delta: hub.ChoiceDelta, state: _ChoiceState) -> list[dict[str, Any]]:
        return [self._choice(delta.index, delta.text)] if delta.text else []

    def _finish(self, index: int, reason: hub.FinishReason, state: _ChoiceState) -> dict[str, Any]:
        return self._choice(index, "", completion_finish_reason(reason))

    @staticmethod
    def _choice(index: int, text: str, finish_reason: str | None = None) -> dict[str, Any]:
        return {"text": text, "index": index, "logprobs": None, "finish_reason": finish_reason}
