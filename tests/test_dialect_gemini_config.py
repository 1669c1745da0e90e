"""Gemini upstream codec (proxy_app.dialects.gemini): generationConfig, reasoning effort, tools,
tool_choice and pass-through settings. No DB.
"""

from __future__ import annotations

from typing import Any

import pytest

from proxy_app.core.errors import InvalidRequest
from proxy_app.core.hub import ResponseFormat, Tool, ToolChoice
from proxy_app.upstreams.gemini import codec as gemini
from tests.dialect_gemini_helpers import chat, t, u, user

WEATHER = Tool(name="get_weather", description="Weather for a city", parameters={"type": "object"})
TIME = Tool(name="get_time", description="", parameters=None)


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
            {
                "response_format": ResponseFormat(
                    type="json_schema",
                    schema={
                        "$schema": "https://json-schema.org/draft/2020-12/schema",
                        "type": "object",
                        "properties": {"$schema": {"type": "string"}},
                        "additionalProperties": False,
                    },
                )
            },
            {
                "responseMimeType": "application/json",
                "responseJsonSchema": {
                    "type": "object",
                    "properties": {"$schema": {"type": "string"}},
                    "additionalProperties": False,
                },
            },
        ),
        ({"response_format": ResponseFormat(type="json_schema")}, {"responseMimeType": "application/json"}),
        (
            {"thinking_config": {"includeThoughts": True, "thinkingBudget": 2048}},
            {"thinkingConfig": {"includeThoughts": True, "thinkingBudget": 2048}},
        ),
        (
            {"thinking_config": {"thinkingLevel": "HIGH"}, "upstream_model": "gemma-3-27b-it"},
            {"thinkingConfig": {"thinkingLevel": "HIGH"}},
        ),
        ({"thinking_config": {}, "reasoning_effort": "low"}, {"thinkingConfig": {"thinkingBudget": 1024}}),
        (
            {
                "max_tokens": 100,
                "temperature": 0.2,
                "top_p": 0.8,
                "top_k": 10,
                "n": 2,
                "stop": ["x"],
                "seed": 7,
                "presence_penalty": 0.1,
                "frequency_penalty": 0.2,
                "logprobs": True,
                "top_logprobs": 3,
                "response_format": ResponseFormat(type="json_object"),
                "reasoning_effort": "high",
            },
            {
                "maxOutputTokens": 100,
                "temperature": 0.2,
                "topP": 0.8,
                "topK": 10,
                "candidateCount": 2,
                "stopSequences": ["x"],
                "seed": 7,
                "presencePenalty": 0.1,
                "frequencyPenalty": 0.2,
                "responseLogprobs": True,
                "logprobs": 3,
                "responseMimeType": "application/json",
                "thinkingConfig": {"thinkingBudget": 24576},
            },
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
    "gemini-3-pro-preview",
    "gemini-3-flash-preview",
    "gemini-2.5-flash",
    "gemini-2.5-pro",
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
            [
                {
                    "functionDeclarations": [
                        {
                            "name": "get_weather",
                            "description": "Weather for a city",
                            "parametersJsonSchema": {"type": "object"},
                        },
                        {"name": "get_time", "description": ""},
                    ]
                }
            ],
        ),
        (
            {
                "tools": [
                    Tool(
                        name="f",
                        parameters={
                            "$schema": "http://json-schema.org/draft-07/schema#",
                            "strict": True,
                            "type": "object",
                            "properties": {"strict": {"type": "boolean"}},
                            "additionalProperties": False,
                            "$defs": {"x": {"type": "string"}},
                        },
                    )
                ]
            },
            [
                {
                    "functionDeclarations": [
                        {
                            "name": "f",
                            "description": "",
                            "parametersJsonSchema": {
                                "type": "object",
                                "properties": {"strict": {"type": "boolean"}},
                                "additionalProperties": False,
                                "$defs": {"x": {"type": "string"}},
                            },
                        }
                    ]
                }
            ],
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
