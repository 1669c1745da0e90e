"""Tables for the Gemini-native client codec (proxy_app.dialects.gemini_native): no DB, no network.

Outputs are also read back by the installed google-genai SDK (its own response converters, and a
real client over httpx.MockTransport), so unmodified SDK clients are known to parse them.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import models as genai_models
from google.genai import types

from proxy_app import errors, hub
from proxy_app.dialects import gemini_native as gn

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 8).decode()


# ------------------------------------------------------------------------------------------------
# builders


def u(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "parts": list(parts)}


def m(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "model", "parts": list(parts)}


def t(text: str, **extra: Any) -> dict[str, Any]:
    return {"text": text, **extra}


def fc(name: str, args: dict[str, Any] | None = None, call_id: str | None = None, **extra: Any) -> dict[str, Any]:
    call: dict[str, Any] = {"name": name, "args": args or {}}
    if call_id is not None:
        call["id"] = call_id
    return {"functionCall": call, **extra}


def fr(name: str, response: Any, call_id: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"name": name, "response": response}
    if call_id is not None:
        result["id"] = call_id
    return {"functionResponse": result}


def gen(*contents: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"contents": list(contents) or [u(t("hi"))], **extra}


def parse(body: dict[str, Any], stream: bool = False) -> hub.ChatRequest:
    return gn.parse_generate_request(body, "alias", stream=stream)


def text_message(role: str, *texts: str, **extra: Any) -> hub.Message:
    return hub.Message(role, [hub.Part("text", text=x) for x in texts], **extra)


def sdk_client(handler) -> genai.Client:
    return genai.Client(
        api_key="k",
        http_options=types.HttpOptions(
            base_url="http://gateway", client_args={"transport": httpx.MockTransport(handler)}
        ),
    )


def serve(body: bytes | dict[str, Any], status: int = 200, media: str = "application/json"):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return lambda request: httpx.Response(status, content=content, headers={"content-type": media})


def sdk_response(body: dict[str, Any]) -> types.GenerateContentResponse:
    """What google-genai makes of a generateContent body (it maps camelCase keys only)."""
    converted = genai_models._GenerateContentResponse_from_mldev(json.loads(json.dumps(body)))
    return types.GenerateContentResponse._from_response(response=converted, kwargs={})


def snake_keys(value: Any, path: str = "") -> list[str]:
    """Keys with an underscore anywhere in a response, except inside functionCall.args."""
    if isinstance(value, list):
        return [k for item in value for k in snake_keys(item, path)]
    if not isinstance(value, dict):
        return []
    found = [f"{path}.{key}" for key in value if "_" in key]
    return found + [k for key, item in value.items() if key != "args" for k in snake_keys(item, f"{path}.{key}")]


def invalid(call, param: str | None, fragment: str) -> None:
    with pytest.raises(errors.InvalidRequest) as caught:
        call()
    assert caught.value.status == 400
    assert caught.value.param == param
    assert fragment in caught.value.message


# ------------------------------------------------------------------------------------------------
# normalise: casing (gemini.md §2)


def test_normalise_rewrites_snake_case_keys_at_every_depth():
    body = {
        "system_instruction": {"parts": [{"text": "be brief"}]},
        "contents": [{"role": "user", "parts": [{"inline_data": {"mime_type": "image/png", "data": PNG}}]}],
        "generationConfig": {"max_output_tokens": 5, "thinkingConfig": {"thinking_budget": 0, "includeThoughts": True}},
        "tool_config": {"function_calling_config": {"mode": "ANY", "allowed_function_names": ["f"]}},
        "safety_settings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}],
    }

    assert gn.normalise(body) == {
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": PNG}}]}],
        "generationConfig": {"maxOutputTokens": 5, "thinkingConfig": {"thinkingBudget": 0, "includeThoughts": True}},
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}},
        "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}],
    }


def test_normalise_leaves_free_form_values_alone():
    free = {"snake_key": {"inner_key": [{"deep_key": 1}]}}
    body = {
        "contents": [
            {"role": "model", "parts": [{"function_call": {"name": "f", "args": free}}]},
            {"role": "user", "parts": [{"function_response": {"name": "f", "response": free}}]},
        ],
        "tools": [
            {
                "function_declarations": [
                    {"name": "a", "parameters_json_schema": {"type": "object", "additional_properties": False}},
                    {
                        "name": "b",
                        "parameters": {
                            "type": "OBJECT",
                            "property_ordering": ["user_id"],
                            "properties": {
                                "user_id": {"type": "STRING", "max_length": "5", "example": free, "default": free},
                                "properties": {"type": "OBJECT", "properties": {"min_items": {"type": "INTEGER"}}},
                            },
                        },
                    },
                ]
            }
        ],
        "generation_config": {"response_json_schema": {"min_items": 1, "properties": {"a_b": {}}}},
    }

    assert gn.normalise(body) == {
        "contents": [
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": free}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": free}}]},
        ],
        "tools": [
            {
                "functionDeclarations": [
                    {"name": "a", "parametersJsonSchema": {"type": "object", "additional_properties": False}},
                    {
                        "name": "b",
                        "parameters": {
                            "type": "OBJECT",
                            "propertyOrdering": ["user_id"],
                            "properties": {
                                "user_id": {"type": "STRING", "maxLength": "5", "example": free, "default": free},
                                "properties": {"type": "OBJECT", "properties": {"min_items": {"type": "INTEGER"}}},
                            },
                        },
                    },
                ]
            }
        ],
        "generationConfig": {"responseJsonSchema": {"min_items": 1, "properties": {"a_b": {}}}},
    }


def test_normalise_returns_a_copy():
    body = {"generation_config": {"top_k": 3}}
    gn.normalise(body)
    assert body == {"generation_config": {"top_k": 3}}


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        pytest.param([], None, "must be a JSON object", id="list"),
        pytest.param("hi", None, "must be a JSON object", id="string"),
        pytest.param(None, None, "must be a JSON object", id="null"),
        pytest.param({"systemInstruction": {}, "system_instruction": {}}, "systemInstruction", "given twice", id="dup"),
    ],
)
def test_normalise_rejects(body, param, fragment):
    invalid(lambda: gn.normalise(body), param, fragment)


def test_normalise_rejects_absurd_nesting_with_400():
    body: dict[str, Any] = {}
    for _ in range(5000):
        body = {"a_b": body}
    invalid(lambda: gn.normalise(body), None, "nested too deeply")


# ------------------------------------------------------------------------------------------------
# model paths and pass-through helpers (mapping.md §8b, §14.2)


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        ("gemini-2.5-flash:generateContent", ("gemini-2.5-flash", "generateContent")),
        ("gemini-2.5-flash:streamGenerateContent", ("gemini-2.5-flash", "streamGenerateContent")),
        ("llama3:8b:countTokens", ("llama3:8b", "countTokens")),
        ("openai/gpt-4o:generateContent", ("openai/gpt-4o", "generateContent")),
        ("team/qwen:7b:batchEmbedContents", ("team/qwen:7b", "batchEmbedContents")),
        ("gemini-2.5-flash", ("gemini-2.5-flash", "")),
        ("llama3:8b", ("llama3:8b", "")),
        ("qwen:latest", ("qwen:latest", "")),
        ("team/a:b:c", ("team/a:b:c", "")),
    ],
)
def test_split_model_path_splits_on_the_last_colon(tail, expected):
    assert gn.split_model_path(tail) == expected


CONTENTS = [u(t("hi"))]


@pytest.mark.parametrize(
    ("method", "body", "expected"),
    [
        pytest.param("generateContent", {"model": "x", "contents": CONTENTS}, {"contents": CONTENTS}, id="generate"),
        pytest.param("streamGenerateContent", {"contents": CONTENTS}, {"contents": CONTENTS}, id="stream"),
        pytest.param(
            "countTokens",
            {"generateContentRequest": {"model": "models/alias", "contents": CONTENTS}},
            {"generateContentRequest": {"model": "models/gemini-2.5-flash", "contents": CONTENTS}},
            id="count-inner",
        ),
        pytest.param(
            "countTokens",
            {"generate_content_request": {"contents": CONTENTS}},
            {"generate_content_request": {"model": "models/gemini-2.5-flash", "contents": CONTENTS}},
            id="count-inner-snake-added",
        ),
        pytest.param("countTokens", {"contents": CONTENTS}, {"contents": CONTENTS}, id="count-contents"),
        pytest.param(
            "embedContent",
            {"model": "models/alias", "content": {"parts": [t("a")]}},
            {"model": "models/gemini-2.5-flash", "content": {"parts": [t("a")]}},
            id="embed",
        ),
        pytest.param(
            "embedContent", {"content": {"parts": [t("a")]}}, {"content": {"parts": [t("a")]}}, id="embed-nomodel"
        ),
        pytest.param(
            "batchEmbedContents",
            {
                "requests": [
                    {"model": "models/alias", "content": {"parts": [t("a")]}, "task_type": "X"},
                    {"content": {}},
                ]
            },
            {
                "requests": [
                    {"model": "models/gemini-2.5-flash", "content": {"parts": [t("a")]}, "task_type": "X"},
                    {"content": {}, "model": "models/gemini-2.5-flash"},
                ]
            },
            id="batch",
        ),
    ],
)
def test_rewrite_models_per_method(method, body, expected):
    before = json.dumps(body)
    assert gn.rewrite_models(body, method, "gemini-2.5-flash") == expected
    assert json.dumps(body) == before  # the client's body is not mutated
    assert gn.rewrite_models(body, method, "models/gemini-2.5-flash") == expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ({"candidates": []}, None),
        ({"usageMetadata": {}}, hub.Usage()),
        (
            {
                "usageMetadata": {
                    "promptTokenCount": 10,
                    "toolUsePromptTokenCount": 2,
                    "candidatesTokenCount": 5,
                    "thoughtsTokenCount": 7,
                    "cachedContentTokenCount": 3,
                    "totalTokenCount": 24,
                }
            },
            hub.Usage(prompt_tokens=12, completion_tokens=12, reasoning_tokens=7, cached_tokens=3),
        ),
        ({"usageMetadata": {"promptTokenCount": "x"}}, None),
        ({"usageMetadata": "nonsense"}, None),
    ],
)
def test_usage_of_reads_usage_metadata(reply, expected):
    assert gn.usage_of(reply) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(gen(u(t("abcdefgh"))), 2, id="text"),
        pytest.param(gen(u(t("abcdefghi"))), 3, id="rounds-up"),
        pytest.param(
            gen(u(t("abcd"), {"inline_data": {"mime_type": "image/png", "data": PNG * 50}})), 1 + 258, id="media"
        ),
        pytest.param(
            {"system_instruction": {"parts": [t("abcd")]}, "contents": [u(t("abcd"), {"fileData": {"fileUri": "x"}})]},
            2 + 258,
            id="system-and-file",
        ),
        pytest.param(gen(m(fc("f", {"a": 1}))), 7, id="call-as-json"),  # {"name":"f","args":{"a":1}}: 27 chars
        pytest.param({"generateContentRequest": {"contents": [u(t("abcdefgh"))]}}, 2, id="count-inner"),
        pytest.param({"requests": [{"content": {"parts": [t("abcd")]}}] * 3}, 3, id="batch-embed"),
        pytest.param({"contents": "nonsense", "x": [1, None, {"text": 5}]}, 0, id="garbage-never-raises"),
    ],
)
def test_estimate_prompt(body, expected):
    assert gn.estimate_prompt(body) == expected


def test_rename_model_version():
    assert gn.rename_model_version({"modelVersion": "gemini-2.5-flash", "a": 1}, "alias") == {
        "modelVersion": "alias",
        "a": 1,
    }
    assert gn.rename_model_version({"a": 1}, "alias") == {"a": 1}


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


WEATHER = {
    "name": "get_weather",
    "description": "Weather",
    "parametersJsonSchema": {
        "type": "object",
        "properties": {"city_name": {"type": "string"}},
        "additionalProperties": False,
    },
}
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


def bad_part(part: dict[str, Any]) -> dict[str, Any]:
    return gen(u(part))


GC = "generationConfig"
FUNCS = [{"functionDeclarations": [WEATHER]}]


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        # contents and parts
        pytest.param({}, "contents", "at least one content", id="no-contents"),
        pytest.param({"contents": []}, "contents", "at least one content", id="empty-contents"),
        pytest.param({"contents": {}}, "contents", "must be an array", id="contents-object"),
        pytest.param({"contents": ["hi"]}, "contents[0]", "must be an object", id="content-string"),
        pytest.param(gen({"role": "assistant", "parts": [t("x")]}), "contents[0].role", "valid role", id="bad-role"),
        pytest.param(gen({"role": "user", "parts": []}), "contents[0].parts", "must not be empty", id="no-parts"),
        pytest.param(bad_part({"text": 5}), "contents[0].parts[0].text", "must be a string", id="text-number"),
        pytest.param(bad_part({"text": "a", "inlineData": {}}), "contents[0].parts[0]", "exactly one", id="two-kinds"),
        pytest.param(bad_part({"blob": {}}), "contents[0].parts[0].blob", "unsupported part field", id="unknown-part"),
        pytest.param(
            bad_part({"fileData": {"mimeType": "application/pdf", "fileUri": "https://x/files/1"}}),
            "contents[0].parts[0].fileData",
            "not supported",
            id="file-data",
        ),
        pytest.param(
            bad_part({"inlineData": {"data": PNG}}),
            "contents[0].parts[0].inlineData.mimeType",
            "must be a string",
            id="no-mime",
        ),
        pytest.param(
            bad_part({"inlineData": {"mimeType": "image/png", "data": "!!"}}),
            "contents[0].parts[0].inlineData.data",
            "not valid base64",
            id="bad-base64",
        ),
        pytest.param(
            gen(u(t("q")), m({"inlineData": {"mimeType": "image/png", "data": PNG}})),
            "contents[1].parts[0].inlineData",
            "model turns",
            id="model-media",
        ),
        pytest.param(
            gen(u(t("q")), m(fr("f", {}))), "contents[1].parts[0].functionResponse", "user turns", id="fr-in-model"
        ),
        pytest.param(gen(u(fc("f"))), "contents[0].parts[0].functionCall", "model turns", id="fc-in-user"),
        pytest.param(
            gen(u(t("q")), m(fc("f", call_id="a")), u(fr("g", {}, "b")), u(fr("h", {}))),
            "contents[3].parts[0].functionResponse",
            "answers no functionCall",
            id="unmatched-response",
        ),
        pytest.param(
            gen(u(t("q")), m(fc("f")), u(fr("f", "sunny"))),
            "contents[2].parts[0].functionResponse.response",
            "must be an object",
            id="response-string",
        ),
        pytest.param(
            gen(u(t("q")), m(fc("f")), u({"functionResponse": {"name": "f", "response": {}, "parts": [{}]}})),
            "contents[2].parts[0].functionResponse.parts",
            "not supported",
            id="response-parts",
        ),
        pytest.param(
            gen(u(t("q")), m({"functionCall": {"name": "f", "args": [1]}})),
            "contents[1].parts[0].functionCall.args",
            "must be an object",
            id="args-list",
        ),
        pytest.param(
            gen(u(t("q")), m({"functionCall": {"args": {}}})),
            "contents[1].parts[0].functionCall.name",
            "must be a string",
            id="call-no-name",
        ),
        # systemInstruction, cachedContent
        pytest.param(gen(systemInstruction="be brief"), "systemInstruction", "must be an object", id="system-string"),
        pytest.param(
            gen(systemInstruction={"parts": [{"inlineData": {"mimeType": "image/png", "data": PNG}}]}),
            "systemInstruction.parts[0].inlineData",
            "only contain text",
            id="system-media",
        ),
        pytest.param(gen(cached_content="cachedContents/abc"), "cachedContent", "not supported", id="cached-content"),
        # generationConfig
        pytest.param(gen(generationConfig=[]), GC, "must be an object", id="config-list"),
        pytest.param(
            gen(generationConfig={"responseMimeType": "text/x.enum"}), f"{GC}.responseMimeType", "x.enum", id="enum"
        ),
        pytest.param(
            gen(generationConfig={"responseMimeType": "text/xml"}), f"{GC}.responseMimeType", "must be", id="mime"
        ),
        pytest.param(
            gen(generationConfig={"responseSchema": {"type": "STRING"}}),
            f"{GC}.responseMimeType",
            "requires responseMimeType application/json",
            id="schema-plain",
        ),
        pytest.param(
            gen(
                generationConfig={
                    "responseMimeType": "application/json",
                    "responseSchema": {},
                    "responseJsonSchema": {},
                }
            ),
            f"{GC}.responseSchema",
            "not both",
            id="two-schemas",
        ),
        pytest.param(
            gen(generationConfig={"responseMimeType": "application/json", "responseJsonSchema": True}),
            f"{GC}.responseJsonSchema",
            "must be an object",
            id="schema-bool",
        ),
        pytest.param(
            gen(generationConfig={"responseMimeType": "application/json", "responseSchema": {"type": 1}}),
            f"{GC}.responseSchema.type",
            "must be a string",
            id="schema-type",
        ),
        pytest.param(
            gen(generationConfig={"responseModalities": ["IMAGE"]}), f"{GC}.responseModalities", "text", id="image"
        ),
        pytest.param(
            gen(generationConfig={"response_modalities": ["TEXT", "IMAGE"]}),
            f"{GC}.responseModalities",
            "text",
            id="text-image",
        ),
        pytest.param(
            gen(generationConfig={"responseModalities": ["AUDIO"]}), f"{GC}.responseModalities", "text", id="audio"
        ),
        pytest.param(gen(generationConfig={"speechConfig": {}}), f"{GC}.speechConfig", "not supported", id="speech"),
        pytest.param(
            gen(generationConfig={"image_config": {}}), f"{GC}.imageConfig", "not supported", id="image-config"
        ),
        pytest.param(
            gen(generationConfig={"temperature": 3}), f"{GC}.temperature", "between 0 and 2", id="temperature"
        ),
        pytest.param(
            gen(generationConfig={"temperature": "hot"}), f"{GC}.temperature", "must be a number", id="temp-type"
        ),
        pytest.param(gen(generationConfig={"seed": 2**31}), f"{GC}.seed", "between", id="seed-int32"),
        pytest.param(gen(generationConfig={"maxOutputTokens": 0}), f"{GC}.maxOutputTokens", "at least 1", id="max-0"),
        pytest.param(
            gen(generationConfig={"maxOutputTokens": 1.5}), f"{GC}.maxOutputTokens", "integer", id="max-float"
        ),
        pytest.param(gen(generationConfig={"candidateCount": 9}), f"{GC}.candidateCount", "between 1 and 8", id="n-9"),
        pytest.param(
            gen(generationConfig={"stopSequences": list("abcdef")}), f"{GC}.stopSequences", "at most 5", id="stops"
        ),
        pytest.param(gen(generationConfig={"logprobs": 2}), f"{GC}.logprobs", "responseLogprobs", id="logprobs-alone"),
        pytest.param(
            gen(generationConfig={"thinkingConfig": {"thinkingBudget": 10, "thinkingLevel": "LOW"}}),
            f"{GC}.thinkingConfig",
            "not both",
            id="budget-and-level",
        ),
        pytest.param(
            gen(generationConfig={"thinkingConfig": {"thinkingLevel": "ULTRA"}}),
            f"{GC}.thinkingConfig.thinkingLevel",
            "MINIMAL",
            id="bad-level",
        ),
        pytest.param(
            gen(generationConfig={"thinkingConfig": {"thinkingBudget": -2}}),
            f"{GC}.thinkingConfig.thinkingBudget",
            "at least -1",
            id="bad-budget",
        ),
        # tools
        pytest.param(gen(tools=[{"googleSearch": {}}]), "tools[0].googleSearch", "not supported", id="google-search"),
        pytest.param(
            gen(tools=[{"code_execution": {}}]), "tools[0].codeExecution", "not supported", id="code-execution"
        ),
        pytest.param(gen(tools=[{"urlContext": {}}]), "tools[0].urlContext", "not supported", id="url-context"),
        pytest.param(
            gen(tools=[{"googleSearchRetrieval": {}}]), "tools[0].googleSearchRetrieval", "not supported", id="gsr"
        ),
        pytest.param(
            gen(tools=[{"functionDeclarations": [{"name": "get weather"}]}]),
            "tools[0].functionDeclarations[0].name",
            "function names",
            id="bad-name",
        ),
        pytest.param(
            gen(tools=[{"functionDeclarations": [WEATHER]}, {"functionDeclarations": [WEATHER]}]),
            "tools[1].functionDeclarations[0].name",
            "duplicate",
            id="duplicate",
        ),
        pytest.param(
            gen(tools=[{"functionDeclarations": [{"name": "f", "parameters": {}, "parametersJsonSchema": {}}]}]),
            "tools[0].functionDeclarations[0].parameters",
            "not both",
            id="two-parameter-kinds",
        ),
        pytest.param(
            gen(tools=[{"functionDeclarations": [{"name": "f", "parametersJsonSchema": "object"}]}]),
            "tools[0].functionDeclarations[0].parametersJsonSchema",
            "must be an object",
            id="schema-string",
        ),
        pytest.param(gen(tools={"functionDeclarations": []}), "tools", "must be an array", id="tools-object"),
        # toolConfig
        pytest.param(
            gen(tools=FUNCS, toolConfig={"functionCallingConfig": {"mode": "SOMETIMES"}}),
            "toolConfig.functionCallingConfig.mode",
            "AUTO, ANY",
            id="bad-mode",
        ),
        pytest.param(
            gen(toolConfig={"functionCallingConfig": {"mode": "ANY"}}),
            "toolConfig.functionCallingConfig.mode",
            "at least one function",
            id="any-without-tools",
        ),
        pytest.param(
            gen(
                tools=FUNCS,
                toolConfig={"functionCallingConfig": {"mode": "AUTO", "allowedFunctionNames": ["get_weather"]}},
            ),
            "toolConfig.functionCallingConfig.allowedFunctionNames",
            "ANY or VALIDATED",
            id="names-with-auto",
        ),
        pytest.param(
            gen(tools=FUNCS, toolConfig={"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["nope"]}}),
            "toolConfig.functionCallingConfig.allowedFunctionNames",
            "not declared",
            id="undeclared-name",
        ),
        pytest.param(
            gen(toolConfig={"functionCallingConfig": "ANY"}), "toolConfig.functionCallingConfig", "object", id="fcc"
        ),
    ],
)
def test_generate_request_errors(body, param, fragment):
    invalid(lambda: parse(body), param, fragment)


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


# ------------------------------------------------------------------------------------------------
# hub -> GenerateContentResponse


def choice(**fields: Any) -> hub.Choice:
    return hub.Choice(**fields)


def test_text_response_shape_and_sdk_parse():
    resp = hub.ChatResponse([choice(text="Hello!")], hub.Usage(prompt_tokens=4, completion_tokens=2))
    body = gn.build_generate_response(resp, "my-alias", include_thoughts=False)

    response_id = body.pop("responseId")
    assert isinstance(response_id, str) and len(response_id) >= 16
    assert body == {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "Hello!"}]}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2, "totalTokenCount": 6},
        "modelVersion": "my-alias",
    }
    parsed = sdk_response({**body, "responseId": response_id})
    assert parsed.text == "Hello!"
    assert parsed.candidates[0].finish_reason == types.FinishReason.STOP
    assert parsed.usage_metadata.candidates_token_count == 2
    assert parsed.model_version == "my-alias" and parsed.response_id == response_id


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("stop", "STOP"), ("length", "MAX_TOKENS"), ("tool_calls", "STOP"), ("content_filter", "SAFETY")],
)
def test_reverse_finish_reasons(reason, expected):
    body = gn.build_generate_response(
        hub.ChatResponse([choice(text="x", finish_reason=reason)], hub.Usage()), "a", include_thoughts=False
    )
    assert body["candidates"][0]["finishReason"] == expected
    assert sdk_response(body).candidates[0].finish_reason == types.FinishReason(expected)


def test_error_finish_becomes_malformed_function_call():
    resp = hub.ChatResponse([choice(finish_reason="error", finish_message="bad JSON in arguments")], hub.Usage())
    candidate = gn.build_generate_response(resp, "a", include_thoughts=False)["candidates"][0]
    assert candidate == {
        "content": {"role": "model"},
        "finishReason": "MALFORMED_FUNCTION_CALL",
        "finishMessage": "bad JSON in arguments",
        "index": 0,
    }


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        pytest.param(hub.Usage(), {}, id="all-zero-omitted"),
        pytest.param(hub.Usage(prompt_tokens=5), {"promptTokenCount": 5, "totalTokenCount": 5}, id="prompt-only"),
        pytest.param(
            hub.Usage(prompt_tokens=10, completion_tokens=30, reasoning_tokens=12, cached_tokens=4),
            {
                "promptTokenCount": 10,
                "candidatesTokenCount": 18,
                "totalTokenCount": 40,
                "cachedContentTokenCount": 4,
                "thoughtsTokenCount": 12,
            },
            id="reverse-usage",
        ),
        pytest.param(
            hub.Usage(prompt_tokens=3, completion_tokens=7, reasoning_tokens=7),
            {"promptTokenCount": 3, "totalTokenCount": 10, "thoughtsTokenCount": 7},
            id="all-thoughts",
        ),
    ],
)
def test_usage_metadata_reverse_and_zero_omission(usage, expected):
    body = gn.build_generate_response(hub.ChatResponse([choice(text="x")], usage), "a", include_thoughts=False)
    assert body["usageMetadata"] == expected
    sdk = sdk_response(body).usage_metadata
    assert (sdk.prompt_token_count, sdk.thoughts_token_count) == (
        expected.get("promptTokenCount"),
        expected.get("thoughtsTokenCount"),
    )


def test_reasoning_is_a_leading_thought_part_only_when_asked():
    resp = hub.ChatResponse([choice(text="42", reasoning="think think")], hub.Usage(1, 9, 6))

    shown = gn.build_generate_response(resp, "a", include_thoughts=True)["candidates"][0]["content"]["parts"]
    hidden = gn.build_generate_response(resp, "a", include_thoughts=False)["candidates"][0]["content"]["parts"]

    assert shown == [{"text": "think think", "thought": True}, {"text": "42"}]
    assert hidden == [{"text": "42"}]


def test_tool_calls_become_function_call_parts_read_by_the_sdk():
    calls = [
        hub.ToolCall("call_1", "get_weather", {"city": "Paris", "unit_name": "c"}),
        hub.ToolCall("call_2", "ping", {}),
    ]
    resp = hub.ChatResponse(
        [choice(text="Checking.", reasoning="r", tool_calls=calls, finish_reason="tool_calls")], hub.Usage(8, 20, 5)
    )
    body = gn.build_generate_response(resp, "alias", include_thoughts=True)

    assert body["candidates"][0]["content"]["parts"] == [
        {"text": "r", "thought": True},
        {"text": "Checking."},
        {"functionCall": {"id": "call_1", "name": "get_weather", "args": {"city": "Paris", "unit_name": "c"}}},
        {"functionCall": {"id": "call_2", "name": "ping", "args": {}}},
    ]
    assert snake_keys(body) == []
    parsed = sdk_response(body)
    assert [(c.id, c.name, c.args) for c in parsed.function_calls] == [
        ("call_1", "get_weather", {"city": "Paris", "unit_name": "c"}),
        ("call_2", "ping", {}),
    ]
    assert parsed.usage_metadata.candidates_token_count == 15


def test_no_output_gives_a_candidate_without_parts():
    resp = hub.ChatResponse([choice(finish_reason="length", reasoning="spent it all")], hub.Usage(3, 100, 100))
    body = gn.build_generate_response(resp, "a", include_thoughts=False)
    assert body["candidates"] == [{"content": {"role": "model"}, "finishReason": "MAX_TOKENS", "index": 0}]
    assert sdk_response(body).text is None


def test_several_candidates_and_logprobs():
    logprobs = [hub.TokenLogprob("Hi", -0.5, [("Hi", -0.5), ("Yo", -1.5)]), hub.TokenLogprob("!", -1.5)]
    resp = hub.ChatResponse(
        [choice(index=0, text="Hi!", logprobs=logprobs), choice(index=1, text="Yo")], hub.Usage(1, 2)
    )
    body = gn.build_generate_response(resp, "a", include_thoughts=False)

    first, second = body["candidates"]
    assert (first["index"], second["index"]) == (0, 1)
    assert first["avgLogprobs"] == -1.0
    assert first["logprobsResult"] == {
        "topCandidates": [
            {"candidates": [{"token": "Hi", "logProbability": -0.5}, {"token": "Yo", "logProbability": -1.5}]},
            {"candidates": []},
        ],
        "chosenCandidates": [{"token": "Hi", "logProbability": -0.5}, {"token": "!", "logProbability": -1.5}],
    }
    parsed = sdk_response(body)
    assert parsed.candidates[0].logprobs_result.chosen_candidates[1].log_probability == -1.5
    assert parsed.candidates[1].content.parts[0].text == "Yo"


def test_the_sdk_client_reads_a_whole_response():
    resp = hub.ChatResponse([choice(text="Hi there")], hub.Usage(2, 3))
    body = gn.build_generate_response(resp, "alias", include_thoughts=False)
    client = sdk_client(serve(body))
    result = client.models.generate_content(model="alias", contents="hello")
    assert (result.text, result.usage_metadata.total_token_count) == ("Hi there", 5)


# ------------------------------------------------------------------------------------------------
# streams (gemini.md §9, mapping.md §12.3)


def event(*deltas: hub.ChoiceDelta, usage: hub.Usage | None = None) -> hub.StreamEvent:
    return hub.StreamEvent(deltas=list(deltas), usage=usage)


def delta(**fields: Any) -> hub.ChoiceDelta:
    return hub.ChoiceDelta(**fields)


def sse_events(raw: bytes) -> list[dict[str, Any]]:
    """Strict alt=sse reading: `data: {json}\\r\\n\\r\\n` for every event, the last one included."""
    assert raw.endswith(b"\r\n\r\n")
    frames = raw.split(b"\r\n\r\n")
    assert frames[-1] == b""
    for frame in frames[:-1]:
        assert frame.startswith(b"data: ") and b"\n" not in frame
    return [json.loads(frame[len(b"data: ") :]) for frame in frames[:-1]]


def run_stream(encoder: gn.GenerateStreamEncoder, events: list[hub.StreamEvent], usage: hub.Usage) -> list[bytes]:
    frames = [frame for e in events for frame in encoder.encode(e)]
    return frames + encoder.finish(usage)


STORY = [
    event(delta(reasoning="hmm")),
    event(delta(text="Hel")),
    event(delta(text="lo", tool_calls=[hub.ToolCall("c1", "get_weather", {"city": "Oslo"})])),
    event(delta(finish_reason="tool_calls")),
]


def test_sse_frames_exactly():
    encoder = gn.GenerateStreamEncoder("alias", sse=True, include_thoughts=False)
    frames = run_stream(encoder, STORY, hub.Usage(prompt_tokens=3, completion_tokens=9, reasoning_tokens=4))

    assert len(frames) == 3  # the thought-only event sends nothing without includeThoughts
    assert all(f.startswith(b"data: {") and f.endswith(b"}\r\n\r\n") for f in frames)
    events = sse_events(b"".join(frames))
    response_id = events[0]["responseId"]
    tail = {"modelVersion": "alias", "responseId": response_id}
    assert events == [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}, "index": 0}], **tail},
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {"text": "lo"},
                            {"functionCall": {"id": "c1", "name": "get_weather", "args": {"city": "Oslo"}}},
                        ],
                    },
                    "index": 0,
                }
            ],
            **tail,
        },
        {
            "candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {
                "promptTokenCount": 3,
                "candidatesTokenCount": 5,
                "totalTokenCount": 12,
                "thoughtsTokenCount": 4,
            },
            **tail,
        },
    ]
    assert frames[-1].endswith(b"\r\n\r\n") and b"[DONE]" not in b"".join(frames)


def test_thoughts_stream_as_thought_parts_when_asked():
    encoder = gn.GenerateStreamEncoder("alias", sse=True, include_thoughts=True)
    first = sse_events(encoder.encode(STORY[0])[0])[0]
    assert first["candidates"][0]["content"]["parts"] == [{"text": "hmm", "thought": True}]


def test_json_array_stream_is_one_valid_json_array():
    encoder = gn.GenerateStreamEncoder("alias", sse=False, include_thoughts=True)
    frames = run_stream(encoder, STORY, hub.Usage(1, 1))

    assert frames[0].startswith(b"[{") and frames[1].startswith(b",\r\n{") and frames[-1] == b"]"
    elements = json.loads(b"".join(frames))
    assert [e["candidates"][0]["content"]["parts"][0] for e in elements] == [
        {"text": "hmm", "thought": True},
        {"text": "Hel"},
        {"text": "lo"},
        {"text": ""},
    ]
    assert elements[-1]["candidates"][0]["finishReason"] == "STOP"
    assert elements[-1]["usageMetadata"] == {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2}
    assert encoder.media_type == "application/json"


def test_an_empty_stream_still_ends_with_a_finish_chunk():
    for sse in (True, False):
        encoder = gn.GenerateStreamEncoder("a", sse=sse, include_thoughts=False)
        raw = b"".join(encoder.finish(hub.Usage()))
        chunks = sse_events(raw) if sse else json.loads(raw)
        assert chunks[0]["candidates"] == [
            {"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP", "index": 0}
        ]
        assert chunks[0]["usageMetadata"] == {}


def test_finish_uses_the_last_event_usage_when_given_none():
    encoder = gn.GenerateStreamEncoder("a", sse=True, include_thoughts=False)
    encoder.encode(event(delta(text="x"), usage=hub.Usage(1, 1)))
    encoder.encode(event(usage=hub.Usage(2, 5)))
    assert sse_events(encoder.finish(None)[0])[0]["usageMetadata"]["totalTokenCount"] == 7


def test_several_candidates_finish_in_one_last_chunk():
    encoder = gn.GenerateStreamEncoder("a", sse=True, include_thoughts=False)
    frames = encoder.encode(event(delta(index=0, text="a"), delta(index=1, text="b", finish_reason="length")))
    frames += encoder.encode(
        event(delta(index=1, text="ignored after finish"), delta(index=0, finish_reason="content_filter"))
    )
    frames += encoder.finish(hub.Usage())
    chunks = sse_events(b"".join(frames))

    assert [c["index"] for c in chunks[0]["candidates"]] == [0, 1]
    assert len(chunks) == 2
    assert [(c["index"], c["finishReason"]) for c in chunks[1]["candidates"]] == [(0, "SAFETY"), (1, "MAX_TOKENS")]


def test_error_finish_raises_and_emits_nothing():
    encoder = gn.GenerateStreamEncoder("a", sse=True, include_thoughts=False)
    with pytest.raises(errors.UpstreamError) as caught:
        encoder.encode(event(delta(text="partial", finish_reason="error", finish_message="bad call")))
    assert caught.value.message == "bad call" and caught.value.status == 502


@pytest.mark.parametrize(
    ("sse", "sent_before", "expected"),
    [
        (True, False, b'data: {"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}\r\n\r\n'),
        (True, True, b'data: {"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}\r\n\r\n'),
        (False, False, b'[{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}]'),
        (False, True, b',\r\n{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}]'),
    ],
)
def test_in_band_error_frames(sse, sent_before, expected):
    encoder = gn.GenerateStreamEncoder("a", sse=sse, include_thoughts=False)
    frames = encoder.encode(event(delta(text="Hi"))) if sent_before else []

    frames.append(encoder.error(errors.UpstreamUnavailable("overloaded")))

    assert frames[-1] == expected
    assert encoder.finish(hub.Usage()) == [] and encoder.encode(event(delta(text="more"))) == []
    raw = b"".join(frames)
    elements = sse_events(raw) if sse else json.loads(raw)
    assert elements[-1] == {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}


def test_pass_through_chunks_are_reframed():
    native = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}}], "modelVersion": "gemini-2.5-flash"},
        {
            "candidates": [{"content": {"role": "model", "parts": [{"text": "!"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 2, "totalTokenCount": 3},
            "modelVersion": "gemini-2.5-flash",
        },
    ]
    for sse in (True, False):
        encoder = gn.GenerateStreamEncoder("alias", sse=sse, include_thoughts=False)
        frames = [encoder.frame(gn.rename_model_version(chunk, "alias")) for chunk in native] + encoder.close()
        raw = b"".join(frames)
        chunks = sse_events(raw) if sse else json.loads(raw)
        assert [c["modelVersion"] for c in chunks] == ["alias", "alias"]
        assert gn.usage_of(chunks[-1]) == hub.Usage(1, 2)
        assert encoder.close() == []
    assert gn.GenerateStreamEncoder("a", sse=False, include_thoughts=False).close() == [b"[]"]


def test_the_sdk_client_reads_the_sse_stream():
    encoder = gn.GenerateStreamEncoder("alias", sse=True, include_thoughts=True)
    raw = b"".join(run_stream(encoder, STORY, hub.Usage(prompt_tokens=3, completion_tokens=9, reasoning_tokens=4)))
    client = sdk_client(serve(raw, media="text/event-stream"))

    chunks = list(client.models.generate_content_stream(model="alias", contents="hello"))

    assert "".join(p.text for c in chunks for p in c.candidates[0].content.parts if p.text and not p.thought) == "Hello"
    assert [p.thought for p in chunks[0].candidates[0].content.parts] == [True]
    assert [(fc_.id, fc_.name, fc_.args) for c in chunks for fc_ in c.function_calls or []] == [
        ("c1", "get_weather", {"city": "Oslo"})
    ]
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.thoughts_token_count == 4
    assert chunks[-1].usage_metadata.candidates_token_count == 5


def test_the_sdk_client_raises_an_in_band_stream_error():
    encoder = gn.GenerateStreamEncoder("alias", sse=True, include_thoughts=False)
    raw = b"".join(encoder.encode(event(delta(text="Hel")))) + encoder.error(errors.UpstreamError("upstream broke"))
    client = sdk_client(serve(raw, media="text/event-stream"))

    seen = []
    with pytest.raises(genai_errors.ServerError) as caught:
        for chunk in client.models.generate_content_stream(model="alias", contents="hello"):
            seen.append(chunk.text)
    assert seen == ["Hel"]
    assert (caught.value.code, caught.value.status, caught.value.message) == (502, "UNAVAILABLE", "upstream broke")


# ------------------------------------------------------------------------------------------------
# embeddings (gemini.md §11, mapping.md §10)


def embed_item(*parts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"content": {"parts": list(parts)}, **extra}


def test_embed_content_request():
    body = {
        "model": "models/whatever",
        "content": {"parts": [t("hello"), t(""), t("world")]},
        "task_type": "RETRIEVAL_DOCUMENT",
        "title": "Doc",
        "output_dimensionality": 256,
    }
    assert gn.parse_embed_request(body, "emb", "embedContent") == hub.EmbedRequest(
        model="emb", inputs=["hello\nworld"], dimensions=256, task_type="RETRIEVAL_DOCUMENT", title="Doc"
    )


def test_batch_embed_request_as_the_sdk_sends_it():
    body = {
        "requests": [
            {
                "content": {"parts": [t("a")], "role": "user"},
                "taskType": "RETRIEVAL_QUERY",
                "outputDimensionality": 2,
                "model": "models/emb",
            },
            {
                "content": {"parts": [t("b")], "role": "user"},
                "taskType": "RETRIEVAL_QUERY",
                "outputDimensionality": 2,
                "model": "emb",
            },
        ]
    }
    assert gn.parse_embed_request(body, "emb", "batchEmbedContents") == hub.EmbedRequest(
        model="emb", inputs=["a", "b"], dimensions=2, task_type="RETRIEVAL_QUERY"
    )


def test_mixed_task_types_and_titles_are_not_carried():
    body = {"requests": [embed_item(t("a"), taskType="RETRIEVAL_DOCUMENT", title="A"), embed_item(t("b"), title="B")]}
    req = gn.parse_embed_request(body, "emb", "batchEmbedContents")
    assert (req.task_type, req.title, req.dimensions) == (None, None, None)


@pytest.mark.parametrize(
    ("body", "method", "param", "fragment"),
    [
        pytest.param({"requests": []}, "batchEmbedContents", "requests", "between 1 and 100", id="empty-batch"),
        pytest.param(
            {"requests": [embed_item(t("a"))] * 101}, "batchEmbedContents", "requests", "between 1 and 100", id="101"
        ),
        pytest.param({}, "batchEmbedContents", "requests", "must be an array", id="no-requests"),
        pytest.param(
            {"requests": [embed_item(t("a"), outputDimensionality=2), embed_item(t("b"))]},
            "batchEmbedContents",
            "requests",
            "same outputDimensionality",
            id="dims-differ",
        ),
        pytest.param(
            {"requests": [embed_item(t("a"), model="models/other")]},
            "batchEmbedContents",
            "requests[0].model",
            "models/emb",
            id="model-mismatch",
        ),
        pytest.param(
            embed_item({"inlineData": {"mimeType": "image/png", "data": PNG}}),
            "embedContent",
            "content.parts[0].inlineData",
            "only text",
            id="image",
        ),
        pytest.param(embed_item(t("")), "embedContent", "content.parts", "no text", id="empty-text"),
        pytest.param({"content": "hello"}, "embedContent", "content", "must be an object", id="content-string"),
        pytest.param(
            embed_item(t("a"), outputDimensionality=0),
            "embedContent",
            "outputDimensionality",
            "at least 1",
            id="dims-0",
        ),
        pytest.param(embed_item(t("a")), "embedStuff", None, "unsupported embedding method", id="method"),
    ],
)
def test_embed_request_errors(body, method, param, fragment):
    invalid(lambda: gn.parse_embed_request(body, "emb", method), param, fragment)


def test_embed_responses_and_the_sdk():
    resp = hub.EmbedResponse([[0.1, 0.2], [0.3, 0.4]], hub.Usage(2))
    assert gn.build_embed_response(resp, "batchEmbedContents") == {
        "embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}]
    }
    single = hub.EmbedResponse([[0.5]], hub.Usage(1))
    assert gn.build_embed_response(single, "embedContent") == {"embedding": {"values": [0.5]}}
    with pytest.raises(errors.UpstreamError):
        gn.build_embed_response(resp, "embedContent")

    client = sdk_client(serve(gn.build_embed_response(resp, "batchEmbedContents")))
    result = client.models.embed_content(model="emb", contents=["a", "b"])
    assert [e.values for e in result.embeddings] == [[0.1, 0.2], [0.3, 0.4]]


# ------------------------------------------------------------------------------------------------
# models (mapping.md §11)


def test_build_model_defaults_and_explicit_methods():
    chat = hub.ModelInfo(id="team/llama3:8b", input_token_limit=8192, output_token_limit=2048)
    assert gn.build_model(chat) == {
        "name": "models/team/llama3:8b",
        "baseModelId": "team/llama3:8b",
        "version": "1",
        "displayName": "team/llama3:8b",
        "description": "team/llama3:8b, served by the gateway",
        "inputTokenLimit": 8192,
        "outputTokenLimit": 2048,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    }
    embedder = gn.build_model(hub.ModelInfo(id="text-embedding-3-small", display_name="Small"))
    assert "inputTokenLimit" not in embedder and embedder["displayName"] == "Small"
    assert embedder["supportedGenerationMethods"] == ["embedContent", "batchEmbedContents"]
    explicit = gn.build_model(hub.ModelInfo(id="g", methods=["generateContent", "createCachedContent"]))
    assert explicit["supportedGenerationMethods"] == ["generateContent", "createCachedContent"]


INFOS = [hub.ModelInfo(id=f"m{k:03}") for k in range(120)]


def names(page: dict[str, Any]) -> list[str]:
    return [model["baseModelId"] for model in page["models"]]


def test_model_list_pages_with_opaque_tokens():
    first = gn.build_model_list(INFOS, None, None)
    second = gn.build_model_list(INFOS, None, first["nextPageToken"])
    last = gn.build_model_list(INFOS, None, second["nextPageToken"])

    assert names(first) == [f"m{k:03}" for k in range(50)]
    assert names(second) == [f"m{k:03}" for k in range(50, 100)]
    assert names(last) == [f"m{k:03}" for k in range(100, 120)] and "nextPageToken" not in last
    assert "offset" not in first["nextPageToken"]


@pytest.mark.parametrize(
    ("size", "count", "more"), [(0, 50, True), (7, 7, True), (120, 120, False), (5000, 120, False)]
)
def test_model_list_page_size(size, count, more):
    page = gn.build_model_list(INFOS, size, None)
    assert (len(page["models"]), "nextPageToken" in page) == (count, more)


def test_model_list_page_size_is_capped_at_1000():
    many = [hub.ModelInfo(id=f"m{k}") for k in range(1500)]
    page = gn.build_model_list(many, 5000, None)
    assert len(page["models"]) == 1000 and "nextPageToken" in page


def token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize("bad", ["!!!", "abc", token("offset:-1"), token("page:3"), token("offset:"), "é"])
def test_bad_page_token_is_400(bad):
    invalid(lambda: gn.build_model_list(INFOS, None, bad), "pageToken", "invalid pageToken")


def test_negative_page_size_is_400():
    invalid(lambda: gn.build_model_list(INFOS, -1, None), "pageSize", "non-negative")


def test_the_sdk_lists_every_page():
    def handler(request: httpx.Request) -> httpx.Response:
        size = int(request.url.params.get("pageSize", 0)) or None
        page = gn.build_model_list(INFOS, size, request.url.params.get("pageToken") or None)
        return httpx.Response(200, json=page)

    client = sdk_client(handler)
    listed = list(client.models.list(config={"page_size": 40}))
    assert [model.name for model in listed] == [f"models/m{k:03}" for k in range(120)]
    assert listed[0].supported_actions == ["generateContent", "countTokens"]


# ------------------------------------------------------------------------------------------------
# errors (mapping.md §12.1)


@pytest.mark.parametrize(
    ("err", "status", "name"),
    [
        (errors.InvalidRequest("bad field"), 400, "INVALID_ARGUMENT"),
        (errors.Unauthorized("bad key"), 401, "UNAUTHENTICATED"),
        (errors.Forbidden("not for you"), 403, "PERMISSION_DENIED"),
        (errors.NotFound("no such model"), 404, "NOT_FOUND"),
        (errors.GatewayError("method not allowed", status=405), 405, "INVALID_ARGUMENT"),
        (errors.PayloadTooLarge("too big"), 413, "INVALID_ARGUMENT"),
        (errors.RateLimited("slow down", retry_after=3), 429, "RESOURCE_EXHAUSTED"),
        (errors.GatewayError("boom"), 500, "INTERNAL"),
        (errors.UpstreamError("bad reply"), 502, "UNAVAILABLE"),
        (errors.UpstreamUnavailable("down"), 503, "UNAVAILABLE"),
        (errors.UpstreamTimeout("slow"), 504, "DEADLINE_EXCEEDED"),
        (errors.GatewayError("teapot", status=418), 418, "INVALID_ARGUMENT"),
    ],
)
def test_error_bodies(err, status, name):
    assert gn.build_error(err) == {"error": {"code": status, "message": err.message, "status": name}}


@pytest.mark.parametrize(
    ("err", "kind"),
    [
        (errors.NotFound("models/x is not found"), genai_errors.ClientError),
        (errors.UpstreamTimeout("slow"), genai_errors.ServerError),
    ],
)
def test_the_sdk_raises_error_bodies_with_code_and_status(err, kind):
    client = sdk_client(serve(gn.build_error(err), status=err.status))
    with pytest.raises(kind) as caught:
        client.models.generate_content(model="alias", contents="hello")
    assert (caught.value.code, caught.value.status, caught.value.message) == (
        err.status,
        gn.build_error(err)["error"]["status"],
        err.message,
    )
