"""Gemini-native dialect: generateContent and countTokens bodies -> hub (mapping.md §8).

Contents, generationConfig, tools and toolConfig, schemas, and how function responses pair with
the calls they answer. Pure codec tests (no Django, no DB).
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from proxy_app.core import hub
from proxy_app.dialects.gemini import request as gn
from tests.dialect_gemini_native_helpers import (
    PNG,
    WEATHER,
    fc,
    fr,
    gen,
    invalid,
    m,
    parse,
    sdk_client,
    serve,
    t,
    u,
)


def text_message(role: str, *texts: str, **extra: Any) -> hub.Message:
    return hub.Message(role, [hub.Part("text", text=x) for x in texts], **extra)


# ------------------------------------------------------------------------------------------------
# generateContent -> hub (mapping.md §8)


def test_contents_become_messages():
    body = {
        "systemInstruction": {"role": "user", "parts": [t("be brief"), t("and kind")]},
        "contents": [
            u(t("look"), {"inlineData": {"mimeType": "image/PNG", "data": PNG}}),
            m(t("thinking...", thought=True), t("a cat"), {"thoughtSignature": "c2ln"}),
            {"parts": [t("and this?")]},  # role omitted: user
            m({"executableCode": {"language": "PYTHON", "code": "print(1)"}}, {"codeExecutionResult": {"output": "1"}}),
        ],
    }

    assert parse(body).messages == [
        text_message("system", "be brief", "and kind"),
        hub.Message("user", [hub.Part("text", text="look"), hub.Part("media", mime_type="image/png", data=PNG)]),
        text_message("assistant", "a cat"),
        text_message("user", "and this?"),
        text_message("assistant", "\n```python\nprint(1)\n```\n", "\n```output\n1\n```\n"),
    ]


def test_url_safe_base64_is_made_standard():
    data = base64.urlsafe_b64encode(b"\xfb\xff\xfe").decode().rstrip("=")  # "-__-"
    part = parse(gen(u({"inline_data": {"mime_type": "audio/wav", "data": data}}))).messages[0].parts[0]
    assert part == hub.Part("media", mime_type="audio/wav", data="+//+")


def test_plain_request_defaults():
    req = parse(gen(u(t("hi"))), stream=True)
    assert (req.model, req.stream, req.include_usage, req.n, req.stop, req.tools, req.tool_choice) == (
        "alias",
        True,
        True,
        1,
        [],
        [],
        None,
    )
    assert (req.max_tokens, req.temperature, req.response_format, req.reasoning_effort, req.include_thoughts) == (
        None,
        None,
        None,
        None,
        False,
    )


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param(
            {
                "maxOutputTokens": 100,
                "temperature": 0.5,
                "topP": 0.9,
                "topK": 40.0,
                "candidateCount": 2,
                "stopSequences": ["a", "", "b"],
                "seed": -7,
                "presencePenalty": 0.1,
                "frequencyPenalty": 0.2,
                "responseLogprobs": True,
                "logprobs": 3,
                "mediaResolution": "MEDIA_RESOLUTION_LOW",
            },
            {
                "max_tokens": 100,
                "temperature": 0.5,
                "top_p": 0.9,
                "top_k": 40,
                "n": 2,
                "stop": ["a", "b"],
                "seed": -7,
                "presence_penalty": 0.1,
                "frequency_penalty": 0.2,
                "logprobs": True,
                "top_logprobs": 3,
            },
            id="sampling",
        ),
        pytest.param(
            {"max_output_tokens": "64", "top_k": 0}, {"max_tokens": 64, "top_k": None}, id="snake-and-strings"
        ),
        pytest.param({"responseModalities": ["TEXT"]}, {"response_format": None}, id="text-modality"),
        pytest.param({"responseMimeType": "text/plain"}, {"response_format": None}, id="plain"),
        pytest.param(
            {"responseMimeType": "application/json"}, {"response_format": hub.ResponseFormat("json_object")}, id="json"
        ),
        pytest.param(
            {"response_mime_type": "application/json", "response_json_schema": {"type": "object", "x_y": {}}},
            {"response_format": hub.ResponseFormat("json_schema", schema={"type": "object", "x_y": {}})},
            id="json-schema-untouched",
        ),
        pytest.param(
            {
                "responseMimeType": "application/json",
                "responseSchema": {"type": "ARRAY", "items": {"type": "STRING", "nullable": True}},
            },
            {
                "response_format": hub.ResponseFormat(
                    "json_schema", schema={"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "null"}]}}
                )
            },
            id="openapi-schema-converted",
        ),
        pytest.param({"thinkingConfig": {"thinkingBudget": 0}}, {"reasoning_effort": "none"}, id="budget-0"),
        pytest.param({"thinkingConfig": {"thinkingBudget": 1}}, {"reasoning_effort": "low"}, id="budget-1"),
        pytest.param({"thinkingConfig": {"thinkingBudget": 1024}}, {"reasoning_effort": "low"}, id="budget-1024"),
        pytest.param({"thinkingConfig": {"thinkingBudget": 1025}}, {"reasoning_effort": "medium"}, id="budget-1025"),
        pytest.param({"thinkingConfig": {"thinkingBudget": 8192}}, {"reasoning_effort": "medium"}, id="budget-8192"),
        pytest.param({"thinkingConfig": {"thinking_budget": 24576}}, {"reasoning_effort": "high"}, id="budget-snake"),
        pytest.param(
            {"thinkingConfig": {"thinkingBudget": -1, "includeThoughts": True}},
            {"reasoning_effort": None, "include_thoughts": True},
            id="dynamic-with-thoughts",
        ),
        pytest.param({"thinkingConfig": {"thinkingLevel": "HIGH"}}, {"reasoning_effort": "high"}, id="level-high"),
        pytest.param(
            {"thinkingConfig": {"thinking_level": "minimal"}}, {"reasoning_effort": "minimal"}, id="level-min"
        ),
        pytest.param(
            {"thinkingConfig": {"thinkingLevel": "THINKING_LEVEL_UNSPECIFIED"}},
            {"reasoning_effort": None},
            id="level-unset",
        ),
        pytest.param({"thinkingConfig": {"include_thoughts": False}}, {"include_thoughts": False}, id="no-thoughts"),
    ],
)
def test_generation_config_maps_to_hub_fields(config, expected):
    req = parse(gen(generationConfig=config))
    assert {key: getattr(req, key) for key in expected} == expected


def test_safety_settings_are_ignored():
    req = parse(gen(safetySettings=[{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]))
    assert req.safety_settings is None


TIME = {
    "name": "get_time",
    "parameters": {"type": "OBJECT", "properties": {"tz": {"type": "STRING", "format": "enum", "enum": ["UTC"]}}},
}


def test_function_declarations_become_hub_tools():
    req = parse(gen(tools=[{"function_declarations": [WEATHER, TIME]}, {"functionDeclarations": [{"name": "ping"}]}]))

    assert req.tools == [
        hub.Tool("get_weather", "Weather", WEATHER["parametersJsonSchema"]),
        hub.Tool("get_time", "", {"type": "object", "properties": {"tz": {"type": "string", "enum": ["UTC"]}}}),
        hub.Tool("ping", "", None),
    ]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"mode": "AUTO"}, hub.ToolChoice("auto")),
        ({"mode": "NONE"}, hub.ToolChoice("none")),
        ({"mode": "ANY"}, hub.ToolChoice("required")),
        ({"mode": "ANY", "allowedFunctionNames": ["get_time"]}, hub.ToolChoice("required", ["get_time"])),
        ({"mode": "VALIDATED", "allowed_function_names": ["get_time"]}, hub.ToolChoice("auto", ["get_time"])),
        ({"mode": "VALIDATED"}, hub.ToolChoice("auto")),
        ({}, hub.ToolChoice("auto")),
    ],
)
def test_function_calling_config_becomes_tool_choice(config, expected):
    req = parse(gen(tools=[{"functionDeclarations": [WEATHER, TIME]}], tool_config={"function_calling_config": config}))
    assert req.tool_choice == expected


@pytest.mark.parametrize("mode", ["AUTO", "NONE", "VALIDATED"])
def test_tool_config_without_tools_is_ignored(mode):
    assert parse(gen(toolConfig={"functionCallingConfig": {"mode": mode}})).tool_choice is None


def test_openapi_schema_to_json_schema():
    schema = {
        "type": "OBJECT",
        "description": "a person",
        "nullable": True,
        "propertyOrdering": ["name", "nullable"],
        "required": ["name"],
        "properties": {
            "name": {"type": "STRING", "title": "Name", "nullable": True, "example": "Ann", "minLength": "1"},
            "nullable": {"type": "BOOLEAN"},  # a property NAME, not the keyword
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "maxItems": "5"},
            "pick": {"anyOf": [{"type": "INTEGER", "format": "int32"}, {"type": "NUMBER", "minimum": 0}]},
        },
    }

    assert gn.schema_to_json_schema(schema, "responseSchema") == {
        "description": "a person",
        "anyOf": [
            {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {
                        "title": "Name",
                        "anyOf": [{"type": "string", "examples": ["Ann"], "minLength": 1}, {"type": "null"}],
                    },
                    "nullable": {"type": "boolean"},
                    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
                    "pick": {"anyOf": [{"type": "integer", "format": "int32"}, {"type": "number", "minimum": 0}]},
                },
            },
            {"type": "null"},
        ],
    }


# ------------------------------------------------------------------------------------------------
# function calls and results (mapping.md §8: ids by id, else name, else order)


def tool_ids(messages: list[hub.Message]) -> list[tuple[str, str | None, str | None]]:
    return [(msg.role, msg.tool_call_id, msg.name) for msg in messages if msg.role in ("tool", "assistant")]


def test_function_calls_keep_their_ids_and_results_pair_by_id():
    body = gen(
        u(t("weather in two cities")),
        m(
            fc("get_weather", {"city": "Paris"}, "id-a", thoughtSignature="c2ln"),
            fc("get_weather", {"city": "Rome"}, "id-b"),
        ),
        u(fr("get_weather", {"temp": 20}, "id-b"), fr("get_weather", {"temp": 25}, "id-a")),
    )
    messages = parse(body).messages

    assert messages[1] == hub.Message(
        "assistant",
        [],
        tool_calls=[
            hub.ToolCall("id-a", "get_weather", {"city": "Paris"}),
            hub.ToolCall("id-b", "get_weather", {"city": "Rome"}),
        ],
    )
    assert messages[2:] == [
        text_message("tool", '{"temp":20}', tool_call_id="id-b", name="get_weather"),
        text_message("tool", '{"temp":25}', tool_call_id="id-a", name="get_weather"),
    ]


def test_results_without_ids_pair_by_name_with_deterministic_ids():
    body = gen(
        u(t("q")),
        m(t("let me check"), fc("get_weather"), fc("get_time")),
        u(fr("get_time", {"t": 1}), fr("get_weather", {"w": 2})),
    )
    messages = parse(body).messages

    assert messages[1].tool_calls == [
        hub.ToolCall("call_1_1", "get_weather", {}),
        hub.ToolCall("call_1_2", "get_time", {}),
    ]
    assert messages[1].parts == [hub.Part("text", text="let me check")]
    assert tool_ids(messages[2:]) == [("tool", "call_1_2", "get_time"), ("tool", "call_1_1", "get_weather")]
    assert parse(body).messages == messages  # same ids on every turn


def test_results_with_the_same_name_pair_in_order():
    body = gen(u(t("q")), m(fc("f", {"n": 1}), fc("f", {"n": 2})), u(fr("f", {"r": 1}), fr("f", {"r": 2})))
    assert tool_ids(parse(body).messages[2:]) == [("tool", "call_1_0", "f"), ("tool", "call_1_1", "f")]


def test_an_unknown_id_or_name_falls_back_to_the_next_unanswered_call():
    body = gen(u(t("q")), m(fc("f", call_id="x1"), fc("g", call_id="x2")), u(fr("f", {}, "stale"), fr("renamed", {})))
    assert tool_ids(parse(body).messages[2:]) == [("tool", "x1", "f"), ("tool", "x2", "g")]


def test_text_beside_function_results_becomes_a_following_user_message():
    body = gen(u(t("q")), m(fc("f", call_id="a")), u(t("also: "), fr("f", {"ok": True}, "a"), t("thanks")))
    assert parse(body).messages[2:] == [
        text_message("tool", '{"ok":true}', tool_call_id="a", name="f"),
        text_message("user", "also: ", "thanks"),
    ]


def test_thought_parts_and_signature_only_parts_are_dropped():
    body = gen(
        u(t("q")), m(t("plan", thought=True, thoughtSignature="c2ln"), {"thoughtSignature": "c2ln"}), u(t("next"))
    )
    assert [msg.role for msg in parse(body).messages] == ["user", "user"]


def test_streamed_answers_sent_back_as_history_lose_their_empty_closing_part():
    body = gen(u(t("q")), m(t("Hel"), t("lo")), m(t("")), u(t("next")))
    assert parse(body).messages[1:] == [text_message("assistant", "Hel", "lo"), text_message("user", "next")]


def test_response_to_request_round_trip_keeps_call_ids():
    """What the gateway answered, sent back by a client as history, pairs the results again."""
    answer = hub.ChatResponse(
        [
            hub.Choice(
                tool_calls=[
                    hub.ToolCall("call_up1", "get_weather", {"city": "Oslo"}),
                    hub.ToolCall("call_up2", "get_time", {}),
                ],
                finish_reason="tool_calls",
            )
        ],
        hub.Usage(5, 5),
    )
    reply = gn.build_generate_response(answer, "alias", include_thoughts=False)
    calls = [part["functionCall"] for part in reply["candidates"][0]["content"]["parts"]]
    history = gen(
        u(t("q")),
        reply["candidates"][0]["content"],
        u(*[fr(call["name"], {"ok": call["name"]}, call["id"]) for call in reversed(calls)]),
    )

    messages = parse(history).messages
    assert messages[1].tool_calls == answer.choices[0].tool_calls
    assert tool_ids(messages[2:]) == [("tool", "call_up2", "get_time"), ("tool", "call_up1", "get_weather")]


# ------------------------------------------------------------------------------------------------
# countTokens


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"contents": [u(t("hello")), m(fc("f"))]}, id="contents"),
        pytest.param(
            {"generate_content_request": {"model": "models/x", "contents": [u(t("hello")), m(fc("f"))]}}, id="inner"
        ),
    ],
)
def test_count_tokens_request_forms(body):
    messages = gn.parse_count_tokens_request(body)
    assert [msg.role for msg in messages] == ["user", "assistant"]
    assert hub.estimate_prompt_tokens(messages) > 0


def test_count_tokens_is_lenient_about_what_only_a_model_minds():
    body = {
        "generateContentRequest": {
            "systemInstruction": {"parts": [t("sys")]},
            "contents": [
                u(fr("orphan", {"a": 1})),
                {"role": "user", "parts": []},
                u({"fileData": {"mimeType": "application/pdf", "fileUri": "https://x/files/1"}}),
            ],
        }
    }
    messages = gn.parse_count_tokens_request(body)

    assert [msg.role for msg in messages] == ["system", "tool", "user"]
    assert messages[1].tool_call_id == "call_0_0"
    assert messages[2].parts[0].type == "media"  # counted like an image, never fetched
    assert gn.parse_count_tokens_request({}) == []
    assert gn.parse_count_tokens_request({"contents": []}) == []


def test_count_tokens_rejects_both_forms():
    invalid(
        lambda: gn.parse_count_tokens_request({"contents": [], "generateContentRequest": {}}),
        "generateContentRequest",
        "not both",
    )


def test_count_tokens_response_is_read_by_the_sdk():
    assert gn.count_tokens_response(31) == {
        "totalTokens": 31,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 31}],
    }
    client = sdk_client(serve(gn.count_tokens_response(31)))  # keep a reference: dropping it closes httpx
    result = client.models.count_tokens(model="alias", contents="hello")
    assert result.total_tokens == 31
