"""Gemini-native dialect: key casing (normalise), model paths and the pass-through helpers.

Pure codec tests (no Django, no DB).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from proxy_app.core import hub
from proxy_app.dialects.gemini import request as gn
from tests.dialect_gemini_native_helpers import PNG, fc, gen, invalid, m, t, u

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
