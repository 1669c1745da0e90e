"""Tables for the Gemini upstream codec (proxy_app.dialects.gemini): hub ⇄ Gemini JSON, no DB."""

from __future__ import annotations

import re
from typing import Any

import pytest

from proxy_app.dialects import gemini
from proxy_app.errors import (
    GatewayError,
    InvalidRequest,
    NotFound,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from proxy_app.hub import (
    ChatRequest,
    ChatResponse,
    Choice,
    ChoiceDelta,
    EmbedRequest,
    Message,
    ModelInfo,
    Part,
    ResponseFormat,
    StreamEvent,
    TokenLogprob,
    Tool,
    ToolCall,
    ToolChoice,
    Usage,
)

SKIP = "skip_thought_signature_validator"
PLACEHOLDER = {"role": "user", "parts": [{"text": " "}]}
SYNTHETIC_ID = re.compile(r"call_gw_[A-Za-z0-9]{20}")


# ------------------------------------------------------------------------------------------------
# builders


def user(*texts: str) -> Message:
    return Message(role="user", parts=[Part(type="text", text=t) for t in texts])


def system(text: str) -> Message:
    return Message(role="system", parts=[Part(type="text", text=text)])


def assistant(text: str = "", *calls: ToolCall) -> Message:
    parts = [Part(type="text", text=text)] if text else []
    return Message(role="assistant", parts=parts, tool_calls=list(calls))


def call(call_id: str, name: str, args: dict[str, Any] | None = None, sig: str | None = None) -> ToolCall:
    return ToolCall(id=call_id, name=name, arguments=args or {}, thought_signature=sig)


def tool(call_id: str | None, content: str, name: str | None = "get_weather") -> Message:
    return Message(role="tool", parts=[Part(type="text", text=content)], tool_call_id=call_id, name=name)


def chat(*messages: Message, **fields: Any) -> ChatRequest:
    fields.setdefault("upstream_model", "gemini-2.5-flash")
    return ChatRequest(model="alias", messages=list(messages), **fields)


def u(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "parts": list(parts)}


def m(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "model", "parts": list(parts)}


def fc(name: str, args: dict[str, Any] | None = None, call_id: str | None = None, sig: str | None = None) -> dict:
    function_call: dict[str, Any] = {"name": name, "args": args or {}}
    if call_id is not None:
        function_call["id"] = call_id
    part: dict[str, Any] = {"functionCall": function_call}
    if sig is not None:
        part["thoughtSignature"] = sig
    return part


def fr(name: str, response: dict[str, Any], call_id: str | None = None) -> dict:
    function_response: dict[str, Any] = {"name": name, "response": response}
    if call_id is not None:
        function_response["id"] = call_id
    return {"functionResponse": function_response}


def t(text: str) -> dict[str, str]:
    return {"text": text}


WEATHER = Tool(name="get_weather", description="Weather for a city", parameters={"type": "object"})
TIME = Tool(name="get_time", description="", parameters=None)


# ------------------------------------------------------------------------------------------------
# hub → GenerateContentRequest: messages


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        pytest.param([user("hi")], {"contents": [u(t("hi"))]}, id="one-user"),
        pytest.param(
            [system("be brief"), user("hi")],
            {"contents": [u(t("hi"))], "systemInstruction": {"parts": [t("be brief")]}},
            id="system-first",
        ),
        pytest.param(
            [system("a"), user("hi"), system("b"), assistant("yo"), system("c")],
            {"contents": [u(t("hi")), m(t("yo"))], "systemInstruction": {"parts": [t("a\n\nb\n\nc")]}},
            id="system-anywhere-all-kept",
        ),
        pytest.param(
            [system("only")],
            {"contents": [PLACEHOLDER], "systemInstruction": {"parts": [t("only")]}},
            id="only-system-placeholder",
        ),
        pytest.param([], {"contents": [PLACEHOLDER]}, id="nothing-placeholder"),
        pytest.param([system(""), user("hi")], {"contents": [u(t("hi"))]}, id="empty-system-dropped"),
        pytest.param(
            [user("q1"), assistant("a1"), user("q2")],
            {"contents": [u(t("q1")), m(t("a1")), u(t("q2"))]},
            id="multi-turn",
        ),
        pytest.param([user("a"), user("b")], {"contents": [u(t("a"), t("b"))]}, id="merge-users"),
        pytest.param(
            [user("q"), assistant("a"), assistant("b")],
            {"contents": [u(t("q")), m(t("a"), t("b"))]},
            id="merge-models",
        ),
        pytest.param(
            [user("a"), assistant(""), user("b")],
            {"contents": [u(t("a"), t("b"))]},
            id="empty-assistant-dropped-then-merged",
        ),
        pytest.param([user("", "x", "")], {"contents": [u(t("x"))]}, id="empty-text-parts-dropped"),
        pytest.param([user("")], {"contents": [PLACEHOLDER]}, id="all-empty-placeholder"),
        pytest.param(
            [Message(role="user", parts=[Part("text", text="see"), Part("media", mime_type="image/png", data="iVBO")])],
            {"contents": [u(t("see"), {"inlineData": {"mimeType": "image/png", "data": "iVBO"}})]},
            id="inline-media",
        ),
        pytest.param(
            [assistant("hello"), user("hi")],
            {"contents": [m(t("hello")), u(t("hi"))]},
            id="model-text-first-no-placeholder",
        ),
    ],
)
def test_messages_to_contents(messages: list[Message], expected: dict) -> None:
    assert gemini.build_generate_request(chat(*messages)) == expected


def test_tool_round_trip_keeps_real_ids_and_strips_synthetic_ones() -> None:
    req = chat(
        user("weather in Paris and Rome?"),
        assistant(
            "Let me check.",
            call("call_abc", "get_weather", {"city": "Paris"}, sig="c2ln"),
            call("call_gw_AAAAAAAAAAAAAAAAAAAA", "get_weather", {"city": "Rome"}),
        ),
        tool("call_abc", '{"temp": 21}'),
        tool("call_gw_AAAAAAAAAAAAAAAAAAAA", "sunny"),
        user("thanks"),
    )
    assert gemini.build_generate_request(req) == {
        "contents": [
            u(t("weather in Paris and Rome?")),
            m(
                t("Let me check."),
                fc("get_weather", {"city": "Paris"}, call_id="call_abc", sig="c2ln"),
                fc("get_weather", {"city": "Rome"}),
            ),
            u(fr("get_weather", {"temp": 21}, call_id="call_abc"), fr("get_weather", {"result": "sunny"})),
            u(t("thanks")),  # never merged into the functionResponse turn
        ]
    }


def test_parallel_results_follow_the_call_order_and_resolve_missing_names() -> None:
    req = chat(
        user("go"),
        assistant("", call("id1", "get_weather"), call("id2", "get_time")),
        tool("id2", "12:00", name=None),
        tool("id1", "rain", name=None),
    )
    assert gemini.build_generate_request(req)["contents"] == [
        u(t("go")),
        m(fc("get_weather", call_id="id1"), fc("get_time", call_id="id2")),
        u(fr("get_weather", {"result": "rain"}, call_id="id1"), fr("get_time", {"result": "12:00"}, call_id="id2")),
    ]


def test_system_between_call_and_results_does_not_split_them() -> None:
    req = chat(user("go"), assistant("", call("id1", "get_weather")), system("s"), tool("id1", "ok"))
    assert gemini.build_generate_request(req) == {
        "contents": [u(t("go")), m(fc("get_weather", call_id="id1")), u(fr("get_weather", {"result": "ok"}, "id1"))],
        "systemInstruction": {"parts": [t("s")]},
    }


def test_history_starting_with_a_function_call_gets_a_placeholder_user_turn() -> None:
    req = chat(assistant("", call("id1", "get_weather")), tool("id1", "{}"))
    assert gemini.build_generate_request(req)["contents"] == [
        PLACEHOLDER,
        m(fc("get_weather", call_id="id1")),
        u(fr("get_weather", {}, call_id="id1")),
    ]


@pytest.mark.parametrize(
    ("content", "response"),
    [
        ('{"temp": 21, "unit": "C"}', {"temp": 21, "unit": "C"}),
        ("{}", {}),
        ("[1, 2]", {"result": [1, 2]}),
        ("42", {"result": 42}),
        ("4.5", {"result": 4.5}),
        ('"quoted"', {"result": "quoted"}),
        ("true", {"result": True}),
        ("null", {"result": None}),
        ("sunny, 21°C", {"result": "sunny, 21°C"}),
        ("{not json", {"result": "{not json"}),
        ("", {"result": ""}),
    ],
)
def test_tool_response_wrapping(content: str, response: dict) -> None:
    req = chat(user("q"), assistant("", call("id1", "get_weather")), tool("id1", content))
    assert gemini.build_generate_request(req)["contents"][-1] == u(fr("get_weather", response, call_id="id1"))


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        pytest.param(
            [user("q"), assistant("", call("a", "f")), tool("a", "1"), tool("b", "2")],
            "2 tool result message(s) follow an assistant turn with 1 tool call(s); "
            "send exactly one tool message per tool call",
            id="too-many-results",
        ),
        pytest.param(
            [user("q"), assistant("", call("a", "f"), call("b", "f")), tool("a", "1"), user("next")],
            "1 tool result message(s) follow an assistant turn with 2 tool call(s); "
            "send exactly one tool message per tool call",
            id="too-few-results",
        ),
        pytest.param(
            [user("q"), tool("a", "1")],
            "1 tool result message(s) follow an assistant turn with 0 tool call(s); "
            "send exactly one tool message per tool call",
            id="result-without-call",
        ),
        pytest.param(
            [tool("a", "1")],
            "1 tool result message(s) follow an assistant turn with 0 tool call(s); "
            "send exactly one tool message per tool call",
            id="result-first",
        ),
        pytest.param(
            [user("q"), assistant("", call("a", "f")), tool("zzz", "1", name=None)],
            "tool result 'zzz' names no function",
            id="unresolvable-name",
        ),
    ],
)
def test_tool_result_errors(messages: list[Message], message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        gemini.build_generate_request(chat(*messages))
    assert (info.value.status, info.value.param, info.value.message) == (400, "messages", message)


@pytest.mark.parametrize(
    ("message", "text"),
    [
        pytest.param(
            Message(role="user", parts=[Part(type="media_url", url="https://x/a.png")]),
            "media URLs are not supported here; send the data inline",
            id="media-url",
        ),
        pytest.param(
            Message(role="user", parts=[Part(type="media", data="iVBO")]),
            "inline media needs a MIME type",
            id="media-without-mime",
        ),
        pytest.param(
            Message(role="system", parts=[Part(type="media", mime_type="image/png", data="iVBO")]),
            "system messages may only contain text",
            id="system-media",
        ),
        pytest.param(
            Message(role="assistant", tool_calls=[ToolCall(id="a", name="f", arguments=[1])]),  # type: ignore[arg-type]
            "invalid tool call arguments: must be a JSON object",
            id="arguments-not-object",
        ),
    ],
)
def test_invalid_message_parts(message: Message, text: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        gemini.build_generate_request(chat(message))
    assert (info.value.param, info.value.message) == ("messages", text)


# ------------------------------------------------------------------------------------------------
# thought signatures


TWO_STEP_HISTORY = [
    user("q"),
    assistant("", call("a", "f"), call("b", "f")),
    tool("a", "1", name="f"),
    tool("b", "2", name="f"),
    assistant("", call("c", "f", sig="real-sig"), call("d", "f")),
    tool("c", "3", name="f"),
    tool("d", "4", name="f"),
]


@pytest.mark.parametrize(
    ("upstream_model", "first_step_sig"),
    [
        ("gemini-3-pro-preview", SKIP),
        ("gemini-3-flash-preview", SKIP),
        ("models/gemini-3.1-flash-lite", SKIP),
        ("gemini-2.5-flash", None),
        ("gemini-2.5-pro", None),
        ("gemini-2.0-flash", None),
    ],
)
def test_thought_signatures(upstream_model: str, first_step_sig: str | None) -> None:
    body = gemini.build_generate_request(chat(*TWO_STEP_HISTORY, upstream_model=upstream_model))
    models = [c for c in body["contents"] if c["role"] == "model"]
    assert models == [
        m(fc("f", call_id="a", sig=first_step_sig), fc("f", call_id="b")),  # siblings stay unsigned
        m(fc("f", call_id="c", sig="real-sig"), fc("f", call_id="d")),  # real signatures always win
    ]


def test_gemini3_signs_the_first_call_even_after_text() -> None:
    req = chat(user("q"), assistant("thinking out loud", call("a", "f")), tool("a", "1", name="f"),
               upstream_model="gemini-3-pro-preview")
    contents = gemini.build_generate_request(req)["contents"]
    assert contents[1] == m(t("thinking out loud"), fc("f", call_id="a", sig=SKIP))


# ------------------------------------------------------------------------------------------------
# generationConfig


@pytest.mark.parametrize(
    ("fields", "config"),
    [
        ({}, None),
        ({"max_tokens": 256}, {"maxOutputTokens": 256}),
        ({"temperature": 0.0}, {"temperature": 0.0}),
        ({"temperature": 1.3}, {"temperature": 1.3}),
        ({"top_p": 0.9}, {"topP": 0.9}),
        ({"top_k": 40}, {"topK": 40}),
        ({"n": 1}, None),
        ({"n": 3}, {"candidateCount": 3}),
        ({"stop": []}, None),
        ({"stop": ["END", "", "STOP"]}, {"stopSequences": ["END", "STOP"]}),
        ({"seed": 0}, {"seed": 0}),
        ({"seed": 42}, {"seed": 42}),
        ({"presence_penalty": 0.5}, {"presencePenalty": 0.5}),
        ({"frequency_penalty": -0.5}, {"frequencyPenalty": -0.5}),
        ({"logprobs": True}, {"responseLogprobs": True}),
        ({"logprobs": True, "top_logprobs": 5}, {"responseLogprobs": True, "logprobs": 5}),
        ({"logprobs": True, "top_logprobs": 0}, {"responseLogprobs": True, "logprobs": 0}),
        ({"response_format": ResponseFormat(type="text")}, None),
        ({"response_format": ResponseFormat(type="json_object")}, {"responseMimeType": "application/json"}),
        (
            {"response_format": ResponseFormat(type="json_schema", schema={
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {"$schema": {"type": "string"}},
                "additionalProperties": False,
            })},
            {"responseMimeType": "application/json", "responseJsonSchema": {
                "type": "object", "properties": {"$schema": {"type": "string"}}, "additionalProperties": False,
            }},
        ),
        ({"response_format": ResponseFormat(type="json_schema")}, {"responseMimeType": "application/json"}),
        ({"thinking_config": {"includeThoughts": True, "thinkingBudget": 2048}},
         {"thinkingConfig": {"includeThoughts": True, "thinkingBudget": 2048}}),
        ({"thinking_config": {"thinkingLevel": "HIGH"}, "upstream_model": "gemma-3-27b-it"},
         {"thinkingConfig": {"thinkingLevel": "HIGH"}}),
        ({"thinking_config": {}, "reasoning_effort": "low"}, {"thinkingConfig": {"thinkingBudget": 1024}}),
        (
            {"max_tokens": 100, "temperature": 0.2, "top_p": 0.8, "top_k": 10, "n": 2, "stop": ["x"],
             "seed": 7, "presence_penalty": 0.1, "frequency_penalty": 0.2, "logprobs": True, "top_logprobs": 3,
             "response_format": ResponseFormat(type="json_object"), "reasoning_effort": "high"},
            {"maxOutputTokens": 100, "temperature": 0.2, "topP": 0.8, "topK": 10, "candidateCount": 2,
             "stopSequences": ["x"], "seed": 7, "presencePenalty": 0.1, "frequencyPenalty": 0.2,
             "responseLogprobs": True, "logprobs": 3, "responseMimeType": "application/json",
             "thinkingConfig": {"thinkingBudget": 24576}},
        ),
    ],
)
def test_generation_config(fields: dict[str, Any], config: dict | None) -> None:
    body = gemini.build_generate_request(chat(user("hi"), **fields))
    expected: dict[str, Any] = {"contents": [u(t("hi"))]}
    if config is not None:
        expected["generationConfig"] = config
    assert body == expected


G3_PRO, G3_FLASH, G25_FLASH, G25_PRO = (
    "gemini-3-pro-preview", "gemini-3-flash-preview", "gemini-2.5-flash", "gemini-2.5-pro",
)


def level(value: str) -> dict[str, str]:
    return {"thinkingLevel": value}


def budget(value: int) -> dict[str, int]:
    return {"thinkingBudget": value}


@pytest.mark.parametrize(
    ("upstream_model", "effort", "thinking"),
    [
        (G3_PRO, "none", level("LOW")),
        (G3_PRO, "minimal", level("LOW")),
        (G3_PRO, "low", level("LOW")),
        (G3_PRO, "medium", level("MEDIUM")),
        (G3_PRO, "high", level("HIGH")),
        (G3_PRO, "xhigh", level("HIGH")),
        (G3_PRO, "max", level("HIGH")),
        ("gemini-3.1-pro-preview", "minimal", level("LOW")),
        (G3_FLASH, "none", level("MINIMAL")),
        (G3_FLASH, "minimal", level("MINIMAL")),
        (G3_FLASH, "low", level("LOW")),
        (G3_FLASH, "medium", level("MEDIUM")),
        (G3_FLASH, "high", level("HIGH")),
        (G3_FLASH, "xhigh", level("HIGH")),
        (G3_FLASH, "max", level("HIGH")),
        ("gemini-3.1-flash-lite", "none", level("MINIMAL")),
        (G25_FLASH, "none", budget(0)),
        (G25_FLASH, "minimal", budget(1024)),
        (G25_FLASH, "low", budget(1024)),
        (G25_FLASH, "medium", budget(8192)),
        (G25_FLASH, "high", budget(24576)),
        (G25_FLASH, "xhigh", budget(24576)),
        (G25_FLASH, "max", budget(24576)),
        ("gemini-2.5-flash-lite", "none", budget(0)),
        (G25_PRO, "none", budget(128)),
        (G25_PRO, "minimal", budget(1024)),
        (G25_PRO, "low", budget(1024)),
        (G25_PRO, "medium", budget(8192)),
        (G25_PRO, "high", budget(24576)),
        (G25_PRO, "xhigh", budget(32768)),
        (G25_PRO, "max", budget(32768)),
        ("models/gemini-2.5-pro", "max", budget(32768)),
        ("gemini-2.0-flash", "high", None),
        ("gemma-3-27b-it", "low", None),
        ("learnlm-2.0-flash", "none", None),
    ],
)
def test_reasoning_effort_table(upstream_model: str, effort: str, thinking: dict | None) -> None:
    body = gemini.build_generate_request(chat(user("hi"), reasoning_effort=effort, upstream_model=upstream_model))
    assert body.get("generationConfig") == (None if thinking is None else {"thinkingConfig": thinking})


@pytest.mark.parametrize(
    ("fields", "param", "message"),
    [
        (
            {"reasoning_effort": "low", "thinking_config": {"thinkingBudget": 10}},
            "reasoning_effort",
            "use either reasoning_effort or thinking_config, not both",
        ),
        (
            {"reasoning_effort": "extreme"},
            "reasoning_effort",
            "unsupported reasoning_effort 'extreme'; use one of none, minimal, low, medium, high, xhigh, max",
        ),
        ({"top_logprobs": 3}, "top_logprobs", "top_logprobs requires logprobs to be true"),
        (
            {"response_format": ResponseFormat(type="yaml")},  # type: ignore[arg-type]
            "response_format",
            "unsupported response_format type 'yaml'",
        ),
    ],
)
def test_generation_config_errors(fields: dict[str, Any], param: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        gemini.build_generate_request(chat(user("hi"), **fields))
    assert (info.value.status, info.value.param, info.value.message) == (400, param, message)


# ------------------------------------------------------------------------------------------------
# tools, tool_choice, pass-through settings


@pytest.mark.parametrize(
    ("fields", "tools"),
    [
        ({}, None),
        ({"tools": []}, None),
        (
            {"tools": [WEATHER, TIME]},
            [{"functionDeclarations": [
                {"name": "get_weather", "description": "Weather for a city",
                 "parametersJsonSchema": {"type": "object"}},
                {"name": "get_time", "description": ""},
            ]}],
        ),
        (
            {"tools": [Tool(name="f", parameters={
                "$schema": "http://json-schema.org/draft-07/schema#", "strict": True, "type": "object",
                "properties": {"strict": {"type": "boolean"}}, "additionalProperties": False,
                "$defs": {"x": {"type": "string"}},
            })]},
            [{"functionDeclarations": [{"name": "f", "description": "", "parametersJsonSchema": {
                "type": "object", "properties": {"strict": {"type": "boolean"}}, "additionalProperties": False,
                "$defs": {"x": {"type": "string"}},
            }}]}],
        ),
        ({"grounding": True}, [{"googleSearch": {}}]),
        (
            {"tools": [TIME], "grounding": True},
            [{"functionDeclarations": [{"name": "get_time", "description": ""}]}, {"googleSearch": {}}],
        ),
    ],
)
def test_tools(fields: dict[str, Any], tools: list | None) -> None:
    assert gemini.build_generate_request(chat(user("hi"), **fields)).get("tools") == tools


@pytest.mark.parametrize("name", ["a.b:c-d_1", "x" * 64, "get_weather", "A"])
def test_good_function_names(name: str) -> None:
    body = gemini.build_generate_request(chat(user("hi"), tools=[Tool(name=name)]))
    assert body["tools"] == [{"functionDeclarations": [{"name": name, "description": ""}]}]


@pytest.mark.parametrize("name", ["has space", "a/b", "", "x" * 65, "naïve", "f()"])
def test_bad_function_names(name: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        gemini.build_generate_request(chat(user("hi"), tools=[WEATHER, Tool(name=name)]))
    assert (info.value.param, info.value.message) == (
        "tools",
        f"invalid function name {name!r}: Gemini allows 1-64 characters from a-z, A-Z, 0-9, '_', '.', ':' and '-'",
    )


@pytest.mark.parametrize(
    ("choice", "tools", "config"),
    [
        (None, [WEATHER], None),
        (ToolChoice(mode="auto"), [WEATHER], {"mode": "AUTO"}),
        (ToolChoice(mode="none"), [WEATHER], {"mode": "NONE"}),
        (ToolChoice(mode="required"), [WEATHER], {"mode": "ANY"}),
        (
            ToolChoice(mode="required", names=["get_time"]),
            [WEATHER, TIME],
            {"mode": "ANY", "allowedFunctionNames": ["get_time"]},
        ),
        (
            ToolChoice(mode="auto", names=["get_weather", "get_time"]),
            [WEATHER, TIME],
            {"mode": "VALIDATED", "allowedFunctionNames": ["get_weather", "get_time"]},
        ),
        (ToolChoice(mode="auto"), [], None),
        (ToolChoice(mode="none"), [], None),
    ],
)
def test_tool_choice(choice: ToolChoice | None, tools: list[Tool], config: dict | None) -> None:
    body = gemini.build_generate_request(chat(user("hi"), tools=tools, tool_choice=choice))
    assert body.get("toolConfig") == (None if config is None else {"functionCallingConfig": config})


NOT_DECLARED = "tool_choice names function 'nope', which is not in tools"


@pytest.mark.parametrize(
    ("choice", "tools", "message"),
    [
        (ToolChoice(mode="required", names=["nope"]), [WEATHER], NOT_DECLARED),
        (ToolChoice(mode="auto", names=["nope"]), [WEATHER], NOT_DECLARED),
        (ToolChoice(mode="required"), [], "tool_choice requires at least one tool in tools"),
        (ToolChoice(mode="required", names=["get_weather"]), [], "tool_choice requires at least one tool in tools"),
        (ToolChoice(mode="sometimes"), [WEATHER], "unsupported tool_choice mode 'sometimes'"),  # type: ignore[arg-type]
    ],
)
def test_tool_choice_errors(choice: ToolChoice, tools: list[Tool], message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        gemini.build_generate_request(chat(user("hi"), tools=tools, tool_choice=choice))
    assert (info.value.status, info.value.param, info.value.message) == (400, "tool_choice", message)


def test_pass_through_settings_and_no_model_key() -> None:
    safety = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    req = chat(user("hi"), cached_content="cachedContents/abc", safety_settings=safety, upstream_model="gemini-2.5-pro")
    assert gemini.build_generate_request(req) == {
        "contents": [u(t("hi"))],
        "cachedContent": "cachedContents/abc",
        "safetySettings": safety,
    }


# ------------------------------------------------------------------------------------------------
# GenerateContentResponse → hub


def candidate(*parts: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"content": {"role": "model", "parts": list(parts)}, **fields}


def test_parse_full_response() -> None:
    body = {
        "candidates": [
            candidate(
                {"text": "Let me think", "thought": True},
                {"text": " more.", "thought": True},
                {"text": "Hel"},
                {"text": "lo"},
                {"text": "!", "thought": False},
                finishReason="STOP",
                index=0,
            )
        ],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 3, "thoughtsTokenCount": 7,
                          "totalTokenCount": 20},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp-1",
    }
    assert gemini.parse_generate_response(body) == ChatResponse(
        choices=[Choice(index=0, text="Hello!", reasoning="Let me think more.", finish_reason="stop")],
        usage=Usage(prompt_tokens=10, completion_tokens=10, reasoning_tokens=7),
        response_id="resp-1",
    )


def test_parse_function_calls() -> None:
    body = {"candidates": [candidate(
        {"functionCall": {"id": "call_real", "name": "get_weather", "args": {"city": "Paris"}},
         "thoughtSignature": "c2ln"},
        {"functionCall": {"name": "get_time"}},
        {"functionCall": {"name": "get_time"}},
        finishReason="STOP",
    )]}
    choice = gemini.parse_generate_response(body).choices[0]
    first, second, third = choice.tool_calls
    assert first == ToolCall(id="call_real", name="get_weather", arguments={"city": "Paris"}, thought_signature="c2ln")
    assert (second.name, second.arguments, second.thought_signature) == ("get_time", {}, None)
    assert SYNTHETIC_ID.fullmatch(second.id) and SYNTHETIC_ID.fullmatch(third.id)
    assert second.id != third.id
    assert (choice.text, choice.finish_reason, choice.finish_message) == ("", "tool_calls", "")


NO_SIGNAL = "the model produced a malformed function call"


@pytest.mark.parametrize(
    ("reason", "parts", "extra", "finish", "message"),
    [
        ("STOP", [{"text": "hi"}], {}, "stop", ""),
        ("STOP", [{"functionCall": {"id": "x", "name": "f"}}], {}, "tool_calls", ""),
        (None, [{"functionCall": {"id": "x", "name": "f"}}], {}, "tool_calls", ""),
        ("MAX_TOKENS", [{"text": "cut"}], {}, "length", ""),
        ("MAX_TOKENS", [], {}, "length", ""),
        *[(r, [], {}, "content_filter", "") for r in (
            "SAFETY", "RECITATION", "LANGUAGE", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
            "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION",
        )],
        ("MALFORMED_FUNCTION_CALL", [], {}, "error", NO_SIGNAL),
        ("MALFORMED_FUNCTION_CALL", [], {"finishMessage": "Malformed function call: print(x"}, "error",
         "Malformed function call: print(x"),
        ("UNEXPECTED_TOOL_CALL", [], {}, "error", "the model called a tool that was not enabled"),
        ("TOO_MANY_TOOL_CALLS", [], {}, "error", "the model made too many tool calls"),
        ("OTHER", [{"text": "x"}], {}, "stop", ""),
        ("FINISH_REASON_UNSPECIFIED", [], {}, "stop", ""),
        ("IMAGE_OTHER", [], {}, "stop", ""),
        ("NO_IMAGE", [], {}, "stop", ""),
        ("SOMETHING_NEW", [], {}, "stop", ""),
        (None, [{"text": "x"}], {}, "stop", ""),
    ],
)
def test_finish_reasons(reason: str | None, parts: list, extra: dict, finish: str, message: str) -> None:
    raw = candidate(*parts, **extra)
    if reason is not None:
        raw["finishReason"] = reason
    choice = gemini.parse_generate_response({"candidates": [raw]}).choices[0]
    assert (choice.finish_reason, choice.finish_message) == (finish, message)


@pytest.mark.parametrize(
    "body",
    [
        {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 8}},
        {"candidates": [], "promptFeedback": {"blockReason": "PROHIBITED_CONTENT", "safetyRatings": []},
         "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}},
    ],
)
def test_blocked_prompt(body: dict) -> None:
    assert gemini.parse_generate_response(body) == ChatResponse(
        choices=[Choice(index=0, finish_reason="content_filter")],
        usage=Usage(prompt_tokens=8),
    )


@pytest.mark.parametrize(
    ("raw", "choice"),
    [
        ({"finishReason": "SAFETY", "index": 0}, Choice(index=0, finish_reason="content_filter")),
        ({"content": {"role": "model"}, "finishReason": "MAX_TOKENS"}, Choice(index=0, finish_reason="length")),
        ({"content": {}, "finishReason": "STOP"}, Choice(index=0)),
        ({}, Choice(index=0)),
        ({"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "x"}}, {"text": "ok"}]}},
         Choice(index=0, text="ok")),
        (
            candidate(
                {"text": "Computing:"},
                {"executableCode": {"language": "PYTHON", "code": "print(1+1)"}},
                {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "2\n"}},
                {"text": "The answer is 2."},
            ),
            Choice(index=0, text="Computing:\n```python\nprint(1+1)\n```\n\n```output\n2\n\n```\nThe answer is 2."),
        ),
        (candidate({"executableCode": {"code": "x"}}), Choice(index=0, text="\n```\nx\n```\n")),
    ],
)
def test_candidate_defaults(raw: dict, choice: Choice) -> None:
    response = gemini.parse_generate_response({"candidates": [raw]})
    assert response == ChatResponse(choices=[choice], usage=Usage(source="estimated"))


def test_missing_index_means_position() -> None:
    body = {"candidates": [candidate({"text": "a"}), candidate({"text": "b"}, index=1), candidate({"text": "c"})]}
    assert [(c.index, c.text) for c in gemini.parse_generate_response(body).choices] == [(0, "a"), (1, "b"), (2, "c")]


@pytest.mark.parametrize(
    ("meta", "usage"),
    [
        (None, Usage(source="estimated")),
        ({}, Usage()),
        ({"promptTokenCount": 12, "candidatesTokenCount": 5, "totalTokenCount": 17}, Usage(12, 5)),
        (
            {"promptTokenCount": 1294, "candidatesTokenCount": 125, "thoughtsTokenCount": 1071,
             "totalTokenCount": 2490},
            Usage(prompt_tokens=1294, completion_tokens=1196, reasoning_tokens=1071),
        ),
        (
            {"promptTokenCount": 100, "toolUsePromptTokenCount": 40, "candidatesTokenCount": 10,
             "cachedContentTokenCount": 64, "totalTokenCount": 150},
            Usage(prompt_tokens=140, completion_tokens=10, cached_tokens=64),
        ),
        ({"promptTokenCount": "7"}, Usage(prompt_tokens=7)),
    ],
)
def test_usage(meta: dict | None, usage: Usage) -> None:
    assert gemini.parse_usage(meta) == usage


def test_usage_total_matches_gemini_total() -> None:
    meta = {"promptTokenCount": 100, "toolUsePromptTokenCount": 40, "candidatesTokenCount": 10,
            "thoughtsTokenCount": 5, "totalTokenCount": 155}
    assert gemini.parse_usage(meta).total_tokens == 155


def test_logprobs() -> None:
    raw = candidate({"text": "Hi!"}, finishReason="STOP", logprobsResult={
        "topCandidates": [
            {"candidates": [{"token": "Hi", "tokenId": 1, "logProbability": -0.1},
                            {"token": "Hello", "logProbability": -2.5}]},
            {"candidates": [{"token": "!"}]},
        ],
        "chosenCandidates": [
            {"token": "Hi", "tokenId": 1, "logProbability": -0.1},
            {"token": "!"},
            {"token": "\n", "logProbability": -3},
        ],
        "logProbabilitySum": -3.1,
    })
    choice = gemini.parse_generate_response({"candidates": [raw]}).choices[0]
    assert choice.logprobs == [
        TokenLogprob("Hi", -0.1, [("Hi", -0.1), ("Hello", -2.5)]),
        TokenLogprob("!", 0.0, [("!", 0.0)]),
        TokenLogprob("\n", -3.0, []),
    ]


def test_no_logprobs_result_means_none_and_empty_result_means_empty_list() -> None:
    without, empty = gemini.parse_generate_response(
        {"candidates": [candidate({"text": "a"}), candidate({"text": "b"}, logprobsResult={})]}
    ).choices
    assert (without.logprobs, empty.logprobs) == (None, [])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "malformed Gemini reply: response should be an object"),
        ({"candidates": {}}, "malformed Gemini reply: candidates should be a list"),
        ({"candidates": ["x"]}, "malformed Gemini reply: candidate should be an object"),
        ({"candidates": [{"content": {"parts": "hi"}}]},
         "malformed Gemini reply: candidate.content.parts should be a list"),
        ({"candidates": [candidate({"text": 5})]}, "malformed Gemini reply: part.text should be a string"),
        ({"candidates": [candidate({"functionCall": {"name": "f", "args": [1]}})]},
         "malformed Gemini reply: functionCall.args should be an object"),
        ({"candidates": [{"index": True}]}, "malformed Gemini reply: candidate.index should be an integer"),
        ({"candidates": [{"finishReason": 1}]}, "malformed Gemini reply: finishReason should be a string"),
        ({"candidates": [{}], "usageMetadata": {"promptTokenCount": "many"}},
         "malformed Gemini reply: usageMetadata.promptTokenCount should be an integer"),
        ({"candidates": [{}], "usageMetadata": []}, "malformed Gemini reply: usageMetadata should be an object"),
        ({"candidates": [{"logprobsResult": {"chosenCandidates": [{"logProbability": "x"}]}}]},
         "malformed Gemini reply: logProbability should be a number"),
        ({"promptFeedback": "blocked"}, "malformed Gemini reply: promptFeedback should be an object"),
        ({}, "Gemini returned no candidates and no block reason"),
        ({"candidates": []}, "Gemini returned no candidates and no block reason"),
    ],
)
def test_malformed_response(body: Any, message: str) -> None:
    with pytest.raises(UpstreamError) as info:
        gemini.parse_generate_response(body)
    assert (type(info.value), info.value.status, info.value.message) == (UpstreamError, 502, message)


# ------------------------------------------------------------------------------------------------
# stream chunks


@pytest.mark.parametrize(
    ("chunk", "event"),
    [
        pytest.param(
            {"candidates": [candidate({"text": "Hel"}, index=0)], "modelVersion": "x"},
            StreamEvent(deltas=[ChoiceDelta(index=0, text="Hel")]),
            id="text-no-usage",
        ),
        pytest.param(
            {"candidates": [candidate({"text": "Hel"})], "usageMetadata": {"promptTokenCount": 4}},
            StreamEvent(deltas=[ChoiceDelta(index=0, text="Hel")], usage=Usage(prompt_tokens=4)),
            id="text-running-usage",
        ),
        pytest.param(
            {"candidates": [candidate({"text": "hmm", "thought": True})]},
            StreamEvent(deltas=[ChoiceDelta(index=0, reasoning="hmm")]),
            id="thought",
        ),
        pytest.param(
            {"candidates": [candidate({"text": ""}, finishReason="STOP")],
             "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2}},
            StreamEvent(deltas=[ChoiceDelta(index=0, finish_reason="stop")], usage=Usage(4, 2)),
            id="final-stop",
        ),
        pytest.param(
            {"candidates": [candidate({"functionCall": {"id": "c1", "name": "f", "args": {"a": 1}},
                                       "thoughtSignature": "sig"})]},
            StreamEvent(deltas=[ChoiceDelta(index=0, tool_calls=[ToolCall("c1", "f", {"a": 1}, "sig")])]),
            id="call-without-finish",
        ),
        pytest.param(
            {"candidates": [candidate({"functionCall": {"id": "c1", "name": "f"}}, finishReason="STOP")]},
            StreamEvent(deltas=[ChoiceDelta(0, tool_calls=[ToolCall("c1", "f", {})], finish_reason="tool_calls")]),
            id="call-and-stop-same-chunk",
        ),
        pytest.param(
            {"candidates": [{"finishReason": "STOP", "index": 0}]},
            StreamEvent(deltas=[ChoiceDelta(index=0, finish_reason="stop")]),
            id="stop-after-earlier-call-caller-upgrades",
        ),
        pytest.param(
            {"candidates": [{"finishReason": "MAX_TOKENS"}]},
            StreamEvent(deltas=[ChoiceDelta(index=0, finish_reason="length")]),
            id="max-tokens-no-parts",
        ),
        pytest.param(
            {"candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL", "finishMessage": "bad call"}]},
            StreamEvent(deltas=[ChoiceDelta(index=0, finish_reason="error", finish_message="bad call")]),
            id="malformed-call",
        ),
        pytest.param(
            {"candidates": [candidate({"text": "a"}), candidate({"text": "b"}, index=1, finishReason="SAFETY")]},
            StreamEvent(deltas=[ChoiceDelta(index=0, text="a"),
                                ChoiceDelta(index=1, text="b", finish_reason="content_filter")]),
            id="two-candidates",
        ),
        pytest.param(
            {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}},
            StreamEvent(deltas=[ChoiceDelta(index=0, finish_reason="content_filter")], usage=Usage(prompt_tokens=3)),
            id="blocked-prompt",
        ),
        pytest.param(
            {"usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 9}},
            StreamEvent(usage=Usage(3, 9)),
            id="usage-only",
        ),
        pytest.param({}, StreamEvent(), id="empty"),
    ],
)
def test_stream_chunks(chunk: dict, event: StreamEvent) -> None:
    assert gemini.parse_stream_chunk(chunk) == event


@pytest.mark.parametrize(
    ("chunk", "error_type", "status", "message", "retry_after"),
    [
        (
            {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}},
            UpstreamUnavailable, 503, "The model is overloaded.", None,
        ),
        (
            [{"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED", "details": [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "9s"}]}}],
            RateLimited, 429, "quota", 9,
        ),
        (
            {"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}},
            UpstreamError, 502, "Internal error", None,
        ),
        ({"error": {"message": "no code"}}, UpstreamError, 502, "no code", None),
        ({"error": "boom"}, UpstreamError, 502, "malformed Gemini reply: error should be an object", None),
    ],
)
def test_stream_error_chunks(chunk: Any, error_type: type, status: int, message: str, retry_after: int | None) -> None:
    with pytest.raises(GatewayError) as info:
        gemini.parse_stream_chunk(chunk)
    assert (type(info.value), info.value.status, info.value.message, info.value.retry_after) == (
        error_type, status, message, retry_after,
    )


# ------------------------------------------------------------------------------------------------
# embeddings and models


@pytest.mark.parametrize(
    ("req", "inputs", "body"),
    [
        (
            EmbedRequest(model="emb", inputs=[], upstream_model="gemini-embedding-001"),
            ["a", "b"],
            {"requests": [
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}},
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}},
            ]},
        ),
        (
            EmbedRequest(model="emb", inputs=[], dimensions=768, task_type="RETRIEVAL_QUERY",
                         upstream_model="models/text-embedding-004"),
            ["q"],
            {"requests": [{"model": "models/text-embedding-004", "content": {"parts": [{"text": "q"}]},
                           "outputDimensionality": 768, "taskType": "RETRIEVAL_QUERY"}]},
        ),
    ],
)
def test_build_batch_embed_request(req: EmbedRequest, inputs: list[str], body: dict) -> None:
    assert gemini.build_batch_embed_request(req, inputs) == body


def test_batch_embed_limit() -> None:
    req = EmbedRequest(model="emb", inputs=[], upstream_model="gemini-embedding-001")
    assert gemini.EMBED_BATCH_LIMIT == 100
    assert len(gemini.build_batch_embed_request(req, ["x"] * 100)["requests"]) == 100
    with pytest.raises(ValueError):
        gemini.build_batch_embed_request(req, ["x"] * 101)


@pytest.mark.parametrize(
    ("body", "vectors"),
    [
        ({"embeddings": [{"values": [0.1, -2, 3.5]}, {"values": [1]}]}, [[0.1, -2.0, 3.5], [1.0]]),
        ({"embeddings": [{}]}, [[]]),
        ({}, []),
    ],
)
def test_parse_batch_embed_response(body: dict, vectors: list) -> None:
    assert gemini.parse_batch_embed_response(body) == vectors


@pytest.mark.parametrize(
    "body",
    [{"embeddings": {"values": [1]}}, {"embeddings": [{"values": ["1"]}]}, {"embeddings": [[1.0]]}, "nope"],
)
def test_parse_batch_embed_response_malformed(body: Any) -> None:
    with pytest.raises(UpstreamError):
        gemini.parse_batch_embed_response(body)


@pytest.mark.parametrize(
    ("raw", "info"),
    [
        (
            {"name": "models/gemini-2.5-flash", "baseModelId": "gemini-2.5-flash", "version": "001",
             "displayName": "Gemini 2.5 Flash", "inputTokenLimit": 1048576, "outputTokenLimit": 65536,
             "supportedGenerationMethods": ["generateContent", "countTokens"], "thinking": True},
            ModelInfo(id="gemini-2.5-flash", owned_by="google", display_name="Gemini 2.5 Flash",
                      input_token_limit=1048576, output_token_limit=65536,
                      methods=["generateContent", "countTokens"]),
        ),
        ({"name": "models/x"}, ModelInfo(id="x", owned_by="google")),
    ],
)
def test_parse_model(raw: dict, info: ModelInfo) -> None:
    assert gemini.parse_model(raw) == info


@pytest.mark.parametrize("raw", [{}, {"name": 3}, {"name": "models/x", "inputTokenLimit": "big"}, []])
def test_parse_model_malformed(raw: Any) -> None:
    with pytest.raises(UpstreamError):
        gemini.parse_model(raw)


# ------------------------------------------------------------------------------------------------
# errors (mapping.md §12.2)


def google(code: int, status: str, message: str, *details: dict) -> dict:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return {"error": error}


def retry_info(delay: str) -> dict:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


KEY_INVALID = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
               "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}
NO_CONTENTS = "* GenerateContentRequest.contents: contents is not specified"
BAD_KEY = "API key not valid. Please pass a valid API key."
QUOTA = "You exceeded your current quota, please check your plan and billing details."
AUTH = "upstream authentication failed"


@pytest.mark.parametrize(
    ("status", "body", "header", "expected"),
    [
        pytest.param(400, google(400, "INVALID_ARGUMENT", NO_CONTENTS), None,
                     (InvalidRequest, 400, None, NO_CONTENTS, None), id="400-invalid-argument"),
        pytest.param(400, google(400, "OUT_OF_RANGE", "seed out of range"), None,
                     (InvalidRequest, 400, None, "seed out of range", None), id="400-out-of-range"),
        pytest.param(400, google(400, "INVALID_ARGUMENT", BAD_KEY, KEY_INVALID),
                     None, (UpstreamError, 502, "bad_gateway", AUTH, None), id="400-api-key-invalid"),
        pytest.param(400, google(400, "INVALID_ARGUMENT", BAD_KEY),
                     None, (UpstreamError, 502, "bad_gateway", AUTH, None), id="400-api-key-invalid-no-details"),
        pytest.param(401, google(401, "UNAUTHENTICATED", "Request had invalid authentication credentials AIzaXYZ"),
                     None, (UpstreamError, 502, "bad_gateway", AUTH, None), id="401"),
        pytest.param(403, google(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers"), None,
                     (UpstreamError, 502, "bad_gateway", AUTH, None), id="403"),
        pytest.param(403, "Forbidden", None, (UpstreamError, 502, "bad_gateway", AUTH, None), id="403-non-json"),
        pytest.param(400, google(400, "FAILED_PRECONDITION", "User location is not supported for the API use."), None,
                     (UpstreamError, 502, "bad_gateway", "User location is not supported for the API use.", None),
                     id="400-failed-precondition"),
        pytest.param(404, google(404, "NOT_FOUND", "models/gemini-9 is not found for API version v1beta"), None,
                     (NotFound, 404, "model_not_found", "models/gemini-9 is not found for API version v1beta", None),
                     id="404"),
        pytest.param(429, google(429, "RESOURCE_EXHAUSTED", QUOTA,
                                 {"@type": "type.googleapis.com/google.rpc.QuotaFailure"}, retry_info("37s")), "5",
                     (RateLimited, 429, "rate_limit_exceeded", QUOTA, 37), id="429-retry-info-wins"),
        pytest.param(429, google(429, "RESOURCE_EXHAUSTED", QUOTA, retry_info("1.2s")), None,
                     (RateLimited, 429, "rate_limit_exceeded", QUOTA, 2), id="429-fraction-rounds-up"),
        pytest.param(429, google(429, "RESOURCE_EXHAUSTED", QUOTA), "12",
                     (RateLimited, 429, "rate_limit_exceeded", QUOTA, 12), id="429-header"),
        pytest.param(429, google(429, "RESOURCE_EXHAUSTED", QUOTA), "Wed, 21 Oct 2015 07:28:00 GMT",
                     (RateLimited, 429, "rate_limit_exceeded", QUOTA, 30), id="429-http-date-header-ignored"),
        pytest.param(429, google(429, "RESOURCE_EXHAUSTED", QUOTA), None,
                     (RateLimited, 429, "rate_limit_exceeded", QUOTA, 30), id="429-default"),
        pytest.param(429, "Too Many Requests", None,
                     (RateLimited, 429, "rate_limit_exceeded", "Gemini upstream answered HTTP 429", 30),
                     id="429-non-json"),
        pytest.param(500, google(500, "INTERNAL", "An internal error has occurred."), None,
                     (UpstreamError, 502, "bad_gateway", "An internal error has occurred.", None), id="500"),
        pytest.param(500, google(500, "UNKNOWN", "Unknown error"), None,
                     (UpstreamError, 502, "bad_gateway", "Unknown error", None), id="500-unknown"),
        pytest.param(501, google(501, "UNIMPLEMENTED", "nope"), None, (UpstreamError, 502, "bad_gateway", "nope", None),
                     id="501"),
        pytest.param(503, google(503, "UNAVAILABLE", "The model is overloaded. Please try again later."), None,
                     (UpstreamUnavailable, 503, "service_unavailable",
                      "The model is overloaded. Please try again later.", None), id="503"),
        pytest.param(504, google(504, "DEADLINE_EXCEEDED", "Deadline expired"), None,
                     (UpstreamTimeout, 504, "timeout", "Deadline expired", None), id="504"),
        pytest.param(400, [google(400, "INVALID_ARGUMENT", "bad schema")], None,
                     (InvalidRequest, 400, None, "bad schema", None), id="list-wrapped"),
        pytest.param(400, "<html>Bad Request</html>", None,
                     (UpstreamError, 502, "bad_gateway", "Gemini upstream answered HTTP 400", None), id="400-non-json"),
        pytest.param(404, "Not Found", None,
                     (UpstreamError, 502, "bad_gateway", "Gemini upstream answered HTTP 404", None), id="404-non-json"),
        pytest.param(400, {"error": "boom"}, None,
                     (UpstreamError, 502, "bad_gateway", "Gemini upstream answered HTTP 400", None),
                     id="400-odd-shape"),
        pytest.param(502, None, None,
                     (UpstreamError, 502, "bad_gateway", "Gemini upstream answered HTTP 502", None), id="502-no-body"),
        pytest.param(503, "Service Unavailable", None,
                     (UpstreamUnavailable, 503, "service_unavailable", "Gemini upstream answered HTTP 503", None),
                     id="503-non-json"),
        pytest.param(504, "", None, (UpstreamTimeout, 504, "timeout", "Gemini upstream answered HTTP 504", None),
                     id="504-non-json"),
        pytest.param(409, google(409, "ABORTED", "conflict"), None,
                     (UpstreamError, 502, "bad_gateway", "conflict", None), id="409"),
        pytest.param(200, "not json", None,
                     (UpstreamError, 502, "bad_gateway", "Gemini upstream answered HTTP 200", None),
                     id="200-unparseable"),
    ],
)
def test_parse_error(status: int, body: Any, header: str | None, expected: tuple) -> None:
    error = gemini.parse_error(status, body, header)
    assert (type(error), error.status, error.code, error.message, error.retry_after) == expected
    assert error.param is None
    assert "AIza" not in error.message


def test_assistant_text_then_separate_tool_call_message_is_one_model_turn():
    req = ChatRequest(
        model="m",
        upstream_model="gemini-2.5-flash",
        messages=[
            Message(role="user", parts=[Part(type="text", text="q")]),
            Message(role="assistant", parts=[Part(type="text", text="Let me check.")]),
            Message(role="assistant", tool_calls=[ToolCall(id="call_1", name="f", arguments={"a": 1})]),
            Message(role="tool", tool_call_id="call_1", name="f", parts=[Part(type="text", text="ok")]),
        ],
    )
    contents = gemini.build_generate_request(req)["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[1]["parts"] == [
        {"text": "Let me check."},
        {"functionCall": {"id": "call_1", "name": "f", "args": {"a": 1}}},
    ]
