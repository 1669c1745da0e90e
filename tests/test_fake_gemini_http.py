"""The fake Gemini API over raw HTTP: generate, tools, request validation, auth and 404s, the other
endpoints (countTokens, embeddings, models).

Needs no database.
"""

from __future__ import annotations

import json

import pytest

from tests.fake_gemini_helpers import FLASH, GEMINI_3, HEADERS, KEY, body, fake, http, user

WEATHER_TOOL = {
    "functionDeclarations": [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "OBJECT",
                "properties": {
                    "city": {"type": "STRING"},
                    "days": {"type": "INTEGER"},
                    "unit": {"type": "STRING", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city"],
            },
        }
    ]
}


# --------------------------------------------------------------------------- raw HTTP: generate


@pytest.mark.asyncio
async def test_generate_default_reply_is_deterministic_camel_case_json(http, fake):
    response = await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=body("hi there"))

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=UTF-8"
    reply = response.json()
    assert reply.pop("responseId")
    assert reply == {
        "candidates": [
            {
                "content": {"parts": [{"text": "Hello from fake Gemini: hi there"}], "role": "model"},
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 2,
            "candidatesTokenCount": 8,
            "totalTokenCount": 10,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 2}],
        },
        "modelVersion": "gemini-2.5-flash",
    }
    assert response.text.startswith('{\n  "candidates"')  # Google pretty-prints plain bodies


@pytest.mark.asyncio
async def test_every_request_is_recorded(http, fake):
    await http.post(f"{FLASH}:generateContent?key={KEY}", json=body(), headers={"X-Custom": "yes"})

    record = fake.last_request
    assert record["method"] == "POST"
    assert record["path"] == f"{FLASH}:generateContent"
    assert record["query"] == {"key": KEY}
    assert record["headers"]["x-custom"] == "yes"
    assert record["json"] == body()
    assert (record["model"], record["action"], record["completed"]) == ("gemini-2.5-flash", "generateContent", True)
    assert fake.requests_to("generateContent") == [record]


@pytest.mark.asyncio
async def test_snake_case_keys_are_read_and_max_output_tokens_truncates(http):
    request = {
        "contents": [user("a long question " * 5)],
        "system_instruction": {"parts": [{"text": "be brief"}]},
        "generation_config": {"max_output_tokens": 3, "stop_sequences": ["zzz"]},
    }
    reply = (await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=request)).json()

    candidate = reply["candidates"][0]
    assert candidate["finishReason"] == "MAX_TOKENS"
    assert candidate["content"]["parts"][0]["text"] == "Hello from f"
    assert reply["usageMetadata"]["candidatesTokenCount"] == 3
    assert reply["usageMetadata"]["promptTokenCount"] == 22  # ceil((80 + 8) / 4)


@pytest.mark.asyncio
async def test_stop_sequence_cuts_the_reply(http):
    config = {"generationConfig": {"stopSequences": ["fake"]}}
    reply = (await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=body(**config))).json()
    assert reply["candidates"][0]["content"]["parts"] == [{"text": "Hello from "}]
    assert reply["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.asyncio
async def test_json_mode_follows_the_response_schema(http):
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "score": {"type": "number"},
            "ok": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "mood": {"type": "string", "enum": ["happy", "sad"]},
        },
    }
    config = {"generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": schema}}
    reply = (await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=body(**config))).json()

    value = json.loads(reply["candidates"][0]["content"]["parts"][0]["text"])
    assert value == {
        "name": "sample name",
        "age": 1,
        "score": 1.5,
        "ok": True,
        "tags": ["sample tags"],
        "mood": "happy",
    }


@pytest.mark.asyncio
async def test_json_mode_without_schema_still_returns_an_object(http):
    config = {"generationConfig": {"responseMimeType": "application/json"}}
    reply = (await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=body(**config))).json()
    assert json.loads(reply["candidates"][0]["content"]["parts"][0]["text"]) == {"text": "hi there"}


@pytest.mark.asyncio
async def test_candidate_count_returns_indexed_candidates(http):
    config = {"generationConfig": {"candidateCount": 2}}
    reply = (await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=body(**config))).json()

    first, second = reply["candidates"]
    assert "index" not in first  # proto3 omits the default 0
    assert second["index"] == 1
    assert second["content"]["parts"][0]["text"].endswith("(candidate 2)")


@pytest.mark.asyncio
async def test_include_thoughts_adds_a_thought_part_and_counts_it(http):
    config = {"generationConfig": {"thinkingConfig": {"includeThoughts": True, "thinkingBudget": 512}}}
    reply = (await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=body(**config))).json()

    parts = reply["candidates"][0]["content"]["parts"]
    assert parts[0] == {"text": "Thinking about it...", "thought": True}
    usage = reply["usageMetadata"]
    assert usage["thoughtsTokenCount"] == 5
    assert usage["totalTokenCount"] == (
        usage["promptTokenCount"] + usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]
    )


# --------------------------------------------------------------------------- raw HTTP: tools


@pytest.mark.asyncio
async def test_mode_any_calls_the_first_function_with_args_from_its_schema(http):
    request = body("weather please", tools=[WEATHER_TOOL], toolConfig={"functionCallingConfig": {"mode": "ANY"}})
    reply = (await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=request)).json()

    assert reply["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {"city": "sample city", "days": 1, "unit": "celsius"}}}
    ]
    assert reply["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.asyncio
async def test_call_prefix_picks_the_named_function_and_gemini_3_signs_it(http):
    tools = [
        {
            "functionDeclarations": [
                {"name": "first", "parametersJsonSchema": {"type": "object", "properties": {}}},
                {"name": "lookup", "parametersJsonSchema": {"type": "object", "properties": {"q": {"type": "string"}}}},
            ]
        }
    ]
    reply = (
        await http.post(f"{GEMINI_3}:generateContent", headers=HEADERS, json=body("CALL: lookup now", tools=tools))
    ).json()

    part = reply["candidates"][0]["content"]["parts"][0]
    assert part["functionCall"] == {"name": "lookup", "args": {"q": "sample q"}}
    assert part["thoughtSignature"]
    assert "id" not in part["functionCall"]


@pytest.mark.asyncio
async def test_function_responses_are_summarised(http):
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    answer = {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}}
    request = {
        "contents": [user("CALL: weather"), {"role": "model", "parts": [call]}, {"role": "user", "parts": [answer]}],
        "tools": [WEATHER_TOOL],
    }
    reply = (await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=request)).json()

    assert reply["candidates"][0]["content"]["parts"] == [{"text": 'Tool said: [{"temp": 21}]'}]


@pytest.mark.asyncio
@pytest.mark.parametrize("signature", ["c2lnbmF0dXJl", "skip_thought_signature_validator"])
async def test_gemini_3_accepts_any_signature_on_the_first_call(http, signature):
    call = {"functionCall": {"name": "get_weather", "args": {}}, "thoughtSignature": signature}
    sibling = {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}
    answers = [{"functionResponse": {"name": "get_weather", "response": {}}}] * 2
    request = {
        "contents": [user("weather"), {"role": "model", "parts": [call, sibling]}, {"role": "user", "parts": answers}]
    }
    response = await http.post(f"{GEMINI_3}:generateContent", headers=HEADERS, json=request)
    assert response.status_code == 200


# --------------------------------------------------------------------------- raw HTTP: validation

UNSIGNED = [
    user("weather"),
    {"role": "model", "parts": [{"functionCall": {"name": "get_weather"}}]},
    {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {}}}]},
]
UNPAIRED = [
    user("weather"),
    {"role": "model", "parts": [{"functionCall": {"name": "a"}}, {"functionCall": {"name": "b"}}]},
    {"role": "user", "parts": [{"functionResponse": {"name": "a", "response": {}}}]},
]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "request_body", "message"),
    [
        (FLASH, {"contents": []}, "* GenerateContentRequest.contents: contents is not specified"),
        (FLASH, {}, "* GenerateContentRequest.contents: contents is not specified"),
        (
            FLASH,
            {"contents": [user("a"), {"role": "model", "parts": []}]},
            "* GenerateContentRequest.contents[1].parts: contents.parts must not be empty.",
        ),
        (
            FLASH,
            {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]},
            "Please use a valid role: user, model.",
        ),
        (
            FLASH,
            {"contents": [{"parts": [{}]}]},
            "* GenerateContentRequest.contents[0].parts[0].data: required oneof field 'data' must have "
            "one initialized field",
        ),
        (
            FLASH,
            {"contents": UNPAIRED},
            "Please ensure that the number of function response parts is equal to the number of "
            "function call parts of the function call turn.",
        ),
        (
            FLASH,
            body(generationConfig={"seed": 2**31}),
            "Invalid value at 'generation_config.seed' (TYPE_INT32), 2147483648",
        ),
        (
            FLASH,
            body(generationConfig={"stopSequences": list("abcdef")}),
            "Unable to submit request because it has a stopSequences value of 6 but the supported range "
            "is from 1 (inclusive) to 6 (exclusive). Update the value and try again.",
        ),
        (
            GEMINI_3,
            body(generationConfig={"thinkingConfig": {"thinkingBudget": 10, "thinkingLevel": "LOW"}}),
            "thinking_budget and thinking_level are not supported together.",
        ),
        (FLASH, body(foo=1), 'Invalid JSON payload received. Unknown name "foo": Cannot find field.'),
        (
            FLASH,
            body(generationConfig={"bar": 1}),
            "Invalid JSON payload received. Unknown name \"bar\" at 'generation_config': Cannot find field.",
        ),
        (
            GEMINI_3,
            {"contents": UNSIGNED},
            "Function call is missing a thought_signature in functionCall parts. This is required for "
            "tools to work correctly, and missing thought_signature may lead to degraded model "
            "performance. Additional data, function call `default_api:get_weather` , position 2. Please "
            "refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.",
        ),
    ],
)
async def test_invalid_requests_get_googles_400(http, path, request_body, message):
    response = await http.post(f"{path}:generateContent", headers=HEADERS, json=request_body)

    assert response.status_code == 400
    assert response.json() == {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}


@pytest.mark.asyncio
async def test_unsigned_history_is_fine_outside_gemini_3(http):
    response = await http.post(f"{FLASH}:generateContent", headers=HEADERS, json={"contents": UNSIGNED})
    assert response.status_code == 200


@pytest.mark.asyncio
async def test_a_body_of_the_wrong_shape_is_a_400_not_a_crash(http, fake):
    response = await http.post(f"{FLASH}:generateContent", headers=HEADERS, json={"contents": "not a list"})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Request contains an invalid argument."
    non_json = await http.post(f"{FLASH}:generateContent", headers=HEADERS, content=b"{nope")
    assert non_json.json()["error"]["message"] == "Invalid JSON payload received. Unexpected token."


# --------------------------------------------------------------------------- raw HTTP: auth, 404


@pytest.mark.asyncio
async def test_wrong_key_is_googles_400_api_key_invalid(http):
    response = await http.post(f"{FLASH}:generateContent", headers={"x-goog-api-key": "nope"}, json=body())
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                },
                {
                    "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                    "locale": "en-US",
                    "message": "API key not valid. Please pass a valid API key.",
                },
            ],
        }
    }


@pytest.mark.asyncio
async def test_missing_key_is_403_and_a_bearer_token_is_401(http):
    missing = await http.post(f"{FLASH}:generateContent", json=body())
    assert missing.status_code == 403
    assert missing.json()["error"]["status"] == "PERMISSION_DENIED"
    bearer = await http.post(f"{FLASH}:generateContent", json=body(), headers={"authorization": f"Bearer {KEY}"})
    assert bearer.status_code == 401
    assert bearer.json()["error"]["status"] == "UNAUTHENTICATED"


@pytest.mark.asyncio
async def test_key_in_query_string_is_accepted(http):
    response = await http.post(f"{FLASH}:generateContent", params={"key": KEY}, json=body())
    assert response.status_code == 200


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "/v1beta/models/gemini-9:generateContent",
            "models/gemini-9 is not found for API version v1beta, or is not supported for "
            "generateContent. Call ListModels to see the list of available models and their supported "
            "methods.",
        ),
        (
            "/v1beta/models/gemini-embedding-001:generateContent",
            "models/gemini-embedding-001 is not found for API version v1beta, or is not supported for "
            "generateContent. Call ListModels to see the list of available models and their supported "
            "methods.",
        ),
        (
            "/v1beta/models/gemini-2.5-flash:embedContent",
            "models/gemini-2.5-flash is not found for API version v1beta, or is not supported for "
            "embedContent. Call ListModels to see the list of available models and their supported "
            "methods.",
        ),
    ],
)
async def test_unknown_or_unsupported_model_is_404(http, path, message):
    response = await http.post(path, headers=HEADERS, json=body())
    assert response.status_code == 404
    assert response.json() == {"error": {"code": 404, "message": message, "status": "NOT_FOUND"}}


# --------------------------------------------------------------------------- raw HTTP: other endpoints


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "request_body",
    [
        {"contents": [user("twelve chars")]},
        {"generateContentRequest": {"model": "models/gemini-2.5-flash", "contents": [user("twelve chars")]}},
    ],
)
async def test_count_tokens_accepts_both_forms(http, request_body):
    response = await http.post(f"{FLASH}:countTokens", headers=HEADERS, json=request_body)
    assert response.json() == {"totalTokens": 3, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 3}]}


@pytest.mark.asyncio
async def test_embeddings_are_deterministic_and_have_no_usage(http):
    url = "/v1beta/models/gemini-embedding-001"
    one = (
        await http.post(f"{url}:embedContent", headers=HEADERS, json={"content": {"parts": [{"text": "hello"}]}})
    ).json()
    batch = (
        await http.post(
            f"{url}:batchEmbedContents",
            headers=HEADERS,
            json={
                "requests": [
                    {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "hello"}]}},
                    {
                        "model": "models/gemini-embedding-001",
                        "content": {"parts": [{"text": "bye"}]},
                        "outputDimensionality": 3,
                    },
                ]
            },
        )
    ).json()

    assert list(one) == ["embedding"] and len(one["embedding"]["values"]) == 8
    assert all(-1 <= v <= 1 for v in one["embedding"]["values"])
    assert batch["embeddings"][0] == one["embedding"]
    assert len(batch["embeddings"][1]["values"]) == 3


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("requests", "message"),
    [
        (
            [{"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "x"}]}}] * 101,
            "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch",
        ),
        (
            [{"model": "models/other", "content": {"parts": [{"text": "x"}]}}],
            "* BatchEmbedContentsRequest.requests[0].model: model must be models/gemini-embedding-001, "
            "the model named in the URL",
        ),
    ],
)
async def test_batch_embed_limits(http, requests, message):
    response = await http.post(
        "/v1beta/models/gemini-embedding-001:batchEmbedContents", headers=HEADERS, json={"requests": requests}
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == message


@pytest.mark.asyncio
async def test_models_list_pages_and_get(http):
    first = (await http.get("/v1beta/models", params={"pageSize": 3}, headers=HEADERS)).json()
    second = (
        await http.get("/v1beta/models", headers=HEADERS, params={"pageSize": 3, "pageToken": first["nextPageToken"]})
    ).json()
    one = (await http.get("/v1beta/models/gemini-2.5-pro", headers=HEADERS)).json()
    missing = await http.get("/v1beta/models/nope", headers=HEADERS)

    names = [m["name"] for m in first["models"] + second["models"]]
    assert names == [
        "models/gemini-2.5-flash",
        "models/gemini-2.5-pro",
        "models/gemini-3-flash-preview",
        "models/gemini-2.0-flash",
        "models/gemini-embedding-001",
    ]
    assert "nextPageToken" not in second
    assert one["inputTokenLimit"] == 1048576 and "generateContent" in one["supportedGenerationMethods"]
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"


@pytest.mark.asyncio
async def test_control_endpoints_script_and_inspect_over_http(http, fake):
    queued = await http.post("/_fake/script", json={"kind": "error", "status": 500})
    failed = await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=body())
    seen = (await http.get("/_fake/requests")).json()

    assert queued.json() == {"queued": 1} and failed.status_code == 500
    assert [r["action"] for r in seen] == ["generateContent"]
    await http.post("/_fake/reset")
    assert fake.requests == [] and fake.scripts == []
