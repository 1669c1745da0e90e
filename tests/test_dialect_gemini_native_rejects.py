"""Gemini-native dialect: every generateContent body the codec refuses, with its param and message.

Pure codec tests (no Django, no DB).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.dialect_gemini_native_helpers import PNG, WEATHER, fc, fr, gen, invalid, m, parse, t, u


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
