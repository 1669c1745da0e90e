"""The internal representation every dialect and upstream translates to and from.

Dialect codecs turn client JSON into these objects and back; upstream clients turn them into
provider requests and provider replies into them. The shape follows OpenAI's chat format closely
(see docs/reference/mapping.md), because that is the most common denominator.
No Django imports here: this module must stay importable by pure codec tests.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
# Only these four ever leave the gateway in the OpenAI dialect (mapping.md §6.4);
# "error" marks a candidate the upstream could not finish (e.g. MALFORMED_FUNCTION_CALL).
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]


@dataclass
class Part:
    """One piece of message content: text, inline media (base64), or a media URL to fetch."""

    type: Literal["text", "media", "media_url"]
    text: str = ""
    mime_type: str = ""
    data: str = ""  # base64, for type == "media"
    url: str = ""  # http(s) URL, for type == "media_url"; fetched by proxy_app.media


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]
    thought_signature: str | None = None


@dataclass
class Message:
    role: Role
    parts: list[Part] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None  # role == "tool": which call this answers
    name: str | None = None  # role == "tool": the function name (resolved by the dialect)

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if p.type == "text")


@dataclass
class Tool:
    name: str
    description: str = ""
    parameters: dict[str, Any] | None = None  # JSON Schema, as the client sent it


@dataclass
class ToolChoice:
    """auto / none / required; `names` narrows the allowed functions (auto+names = validated)."""

    mode: Literal["auto", "none", "required"]
    names: list[str] = field(default_factory=list)


@dataclass
class ResponseFormat:
    type: Literal["text", "json_object", "json_schema"]
    schema: dict[str, Any] | None = None
    name: str = "response"


@dataclass
class ChatRequest:
    model: str  # the name the client asked for (echoed back in responses)
    messages: list[Message]
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    n: int = 1
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    response_format: ResponseFormat | None = None
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    reasoning_effort: str | None = None
    include_thoughts: bool = False  # return thought text (Ollama `think`, Gemini includeThoughts)
    # Gemini-specific settings (OpenAI `extra_body.google.*`), already camelCase.
    thinking_config: dict[str, Any] | None = None
    cached_content: str | None = None
    safety_settings: list[dict[str, Any]] | None = None
    # Filled by routing, not by dialects:
    upstream_model: str = ""
    grounding: bool = False  # Google Search grounding (":search" model suffix)


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0  # includes reasoning tokens
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    source: Literal["reported", "estimated"] = "reported"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class TokenLogprob:
    token: str
    logprob: float
    top: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Choice:
    index: int = 0
    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    finish_message: str = ""  # upstream detail, used when finish_reason == "error"
    logprobs: list[TokenLogprob] | None = None


@dataclass
class ChatResponse:
    choices: list[Choice]
    usage: Usage
    response_id: str = ""


@dataclass
class ChoiceDelta:
    """New output for one choice since the previous event; finish_reason set on its last one."""

    index: int = 0
    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    finish_message: str = ""
    logprobs: list[TokenLogprob] | None = None


@dataclass
class StreamEvent:
    deltas: list[ChoiceDelta] = field(default_factory=list)
    usage: Usage | None = None  # running totals; the last one wins


@dataclass
class EmbedRequest:
    model: str
    inputs: list[str]
    dimensions: int | None = None
    task_type: str | None = None
    title: str | None = None  # Gemini RETRIEVAL_DOCUMENT title
    normalize: bool = False  # L2-normalise vectors (Ollama /api/embed semantics)
    upstream_model: str = ""


@dataclass
class EmbedResponse:
    vectors: list[list[float]]
    usage: Usage


@dataclass
class ModelInfo:
    id: str
    owned_by: str = "gateway"
    created: int = 0
    display_name: str = ""
    input_token_limit: int = 0
    output_token_limit: int = 0
    methods: list[str] = field(default_factory=list)


def estimate_tokens(text: str) -> int:
    """Offline heuristic (libraries.md §12): UTF-8 bytes / 4, rounded up."""
    return (len(text.encode("utf-8")) + 3) // 4


def estimate_prompt_tokens(messages: list[Message]) -> int:
    total = 0
    for m in messages:
        total += 4 + estimate_tokens(m.text)
        total += sum(258 for p in m.parts if p.type != "text")  # Gemini bills an image ~258 tokens
        total += sum(estimate_tokens(str(c.arguments)) for c in m.tool_calls)
    return total


# Tool-call ids the gateway invents (for upstreams or clients that send calls without one) all
# carry this prefix, so they are recognisable and can be stripped on replay (mapping.md §6.3).
SYNTHETIC_CALL_PREFIX = "call_gw_"
_ID_ALPHABET = string.ascii_letters + string.digits


def synthetic_call_id() -> str:
    return SYNTHETIC_CALL_PREFIX + "".join(secrets.choice(_ID_ALPHABET) for _ in range(20))
