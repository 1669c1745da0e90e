"""End to end through the real gateway on a socket, driven by the official openai SDK."""

from __future__ import annotations

import base64
import json
import time

import httpx
import openai
import pytest

from tests.conftest import UPSTREAM_KEY

pytestmark = pytest.mark.django_db(transaction=True)

PNG_1PX = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d4944415478da63f8cfc0f01f0005000201a5f3c1a30000000049454e44ae426082"
    )
).decode()


def generate_requests(fake):
    return [r for r in fake.requests if ":generateContent" in r["path"] or ":streamGenerateContent" in r["path"]]


def test_chat_maps_alias_and_records_usage(openai_client, fake_gemini, mapping, usage_rows, api_key):
    mapping("gpt-4o", "gemini-2.5-flash")
    resp = openai_client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi there"},
            {"role": "developer", "content": "Answer in English."},
        ],
        temperature=0.3,
        max_tokens=50,
    )
    assert resp.model == "gpt-4o"
    assert resp.object == "chat.completion"
    assert resp.choices[0].message.role == "assistant"
    assert "hi there" in resp.choices[0].message.content
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens > 0

    sent = generate_requests(fake_gemini)[-1]
    assert sent["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent["headers"]["x-goog-api-key"] == UPSTREAM_KEY
    assert api_key not in json.dumps({**sent, "body": sent["body"].decode()})
    body = sent["json"]
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief.\n\nAnswer in English."}]}
    assert body["generationConfig"] == {"temperature": 0.3, "maxOutputTokens": 50}

    (row,) = usage_rows()
    assert (row.user.username, row.requested_model, row.upstream_model) == ("alice", "gpt-4o", "gemini-2.5-flash")
    assert (row.prompt_tokens, row.completion_tokens) == (resp.usage.prompt_tokens, resp.usage.completion_tokens)
    assert (row.status, row.token_source, row.streamed, row.dialect) == (200, "reported", False, "openai")
    assert row.key_prefix and api_key.startswith(row.key_prefix)


def test_stream_arrives_incrementally_with_usage_chunk(openai_client, fake_gemini, usage_rows):
    fake_gemini.chunk_delay = 0.15
    fake_gemini.script("text", chunks=["one ", "two ", "three ", "four"])
    started = time.monotonic()
    arrivals, texts, chunks = [], [], []
    stream = openai_client.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        chunks.append(chunk)
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)
            texts.append(chunk.choices[0].delta.content)
    assert "".join(texts) == "one two three four"
    # The first words reach the client while the upstream is still producing the rest.
    assert arrivals[-1] - arrivals[0] >= 0.3
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert len({c.id for c in chunks}) == 1 and {c.model for c in chunks} == {"gemini-2.5-flash"}

    (row,) = usage_rows()
    assert row.streamed and row.status == 200 and row.token_source == "reported"
    assert row.total_tokens == chunks[-1].usage.total_tokens
    assert row.ttft_ms is not None and row.ttft_ms <= row.latency_ms


def test_stream_without_include_usage_has_no_usage_chunk(openai_client, fake_gemini):
    chunks = list(
        openai_client.chat.completions.create(
            model="gemini-2.5-flash", messages=[{"role": "user", "content": "x"}], stream=True
        )
    )
    assert all(c.choices for c in chunks)


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    }
]


def test_parallel_tool_calls_round_trip(openai_client, fake_gemini):
    fake_gemini.script(
        "tool_calls", calls=[("get_weather", {"city": "Paris"}, None), ("get_weather", {"city": "Oslo"}, "abc-1")]
    )
    first = openai_client.chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "weather in Paris and Oslo?"}], tools=TOOLS
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Paris"}, {"city": "Oslo"}]
    assert calls[1].id == "abc-1" and calls[0].id != calls[1].id

    history = [
        {"role": "user", "content": "weather in Paris and Oslo?"},
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny"},
        {"role": "tool", "tool_call_id": calls[1].id, "content": '{"temp": 3}'},
    ]
    second = openai_client.chat.completions.create(model="gemini-2.5-flash", messages=history, tools=TOOLS)
    assert second.choices[0].finish_reason == "stop"
    contents = generate_requests(fake_gemini)[-1]["json"]["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    responses = [p["functionResponse"] for p in contents[2]["parts"]]
    assert responses[0]["name"] == "get_weather" and responses[0]["response"] == {"result": "sunny"}
    assert "id" not in responses[0]  # the gateway's own synthetic id is not sent to Gemini
    assert responses[1] == {"id": "abc-1", "name": "get_weather", "response": {"temp": 3}}
    decl = generate_requests(fake_gemini)[-1]["json"]["tools"][0]["functionDeclarations"][0]
    assert decl["parametersJsonSchema"]["additionalProperties"] is False


def test_streamed_tool_call(openai_client, fake_gemini):
    fake_gemini.script("tool_calls", calls=[("get_weather", {"city": "Rome"}, None)])
    chunks = list(
        openai_client.chat.completions.create(
            model="gemini-2.5-flash",
            messages=[{"role": "user", "content": "Rome?"}],
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            stream=True,
        )
    )
    deltas = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].index == 0 and deltas[0].function.name == "get_weather" and deltas[0].id
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"city": "Rome"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    config = generate_requests(fake_gemini)[-1]["json"]["toolConfig"]
    assert config == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}


def test_json_schema_output(openai_client, fake_gemini):
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name"],
    }
    resp = openai_client.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "user", "content": "a person"}],
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
    )
    assert isinstance(json.loads(resp.choices[0].message.content), dict)
    config = generate_requests(fake_gemini)[-1]["json"]["generationConfig"]
    assert config == {"responseMimeType": "application/json", "responseJsonSchema": schema}


def test_image_data_url_and_audio_become_inline_data(openai_client, fake_gemini):
    openai_client.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_1PX}"}},
                    {
                        "type": "input_audio",
                        "input_audio": {"data": base64.b64encode(b"RIFF0000WAVE").decode(), "format": "wav"},
                    },
                ],
            }
        ],
    )
    parts = generate_requests(fake_gemini)[-1]["json"]["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": PNG_1PX}}
    assert parts[2]["inlineData"]["mimeType"] == "audio/wav"


def test_reasoning_and_thought_text(openai_client, fake_gemini):
    fake_gemini.script("thinking", thought="Let me think.", text="42")
    resp = openai_client.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "user", "content": "answer?"}],
        reasoning_effort="low",
    )
    message = resp.choices[0].message
    assert message.content == "42"
    assert message.model_extra["reasoning_content"] == "Let me think."
    assert resp.usage.completion_tokens_details.reasoning_tokens > 0
    config = generate_requests(fake_gemini)[-1]["json"]["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingBudget": 1024}


def test_extra_body_google_settings(openai_client, fake_gemini):
    openai_client.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "user", "content": "x"}],
        extra_body={
            "extra_body": {
                "google": {
                    "thinking_config": {"thinking_budget": 512, "include_thoughts": True},
                    "safety_settings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_ONLY_HIGH"}],
                }
            }
        },
    )
    body = generate_requests(fake_gemini)[-1]["json"]
    assert body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 512, "includeThoughts": True}
    assert body["safetySettings"] == [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_ONLY_HIGH"}]


def test_search_suffix_enables_grounding(openai_client, fake_gemini):
    openai_client.chat.completions.create(
        model="gemini-2.5-flash:search", messages=[{"role": "user", "content": "news"}]
    )
    sent = generate_requests(fake_gemini)[-1]
    assert sent["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert {"googleSearch": {}} in sent["json"]["tools"]


def test_blocked_prompt_is_content_filter(openai_client, fake_gemini):
    fake_gemini.script("blocked")
    resp = openai_client.chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": "x"}])
    assert resp.choices[0].finish_reason == "content_filter"


def test_malformed_function_call_is_a_visible_error(openai_client, fake_gemini, usage_rows):
    fake_gemini.script("finish", reason="MALFORMED_FUNCTION_CALL", message="Malformed function call: foo(")
    with pytest.raises(openai.InternalServerError) as info:
        openai_client.chat.completions.create(
            model="gemini-2.5-flash", messages=[{"role": "user", "content": "x"}], tools=TOOLS
        )
    assert info.value.status_code == 502
    assert "Malformed function call" in info.value.message
    assert usage_rows()[-1].error_code == "malformed_function_call"


def test_embeddings_default_base64_and_float(openai_client, fake_gemini, mapping, usage_rows):
    mapping("text-embedding-3-small", "gemini-embedding-001")
    resp = openai_client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"], dimensions=4)
    assert [d.index for d in resp.data] == [0, 1]
    assert all(len(d.embedding) == 4 for d in resp.data)
    floats = openai_client.embeddings.create(
        model="text-embedding-3-small", input=["alpha", "beta"], dimensions=4, encoding_format="float"
    )
    for b64_item, float_item in zip(resp.data, floats.data):
        assert b64_item.embedding == pytest.approx(float_item.embedding, abs=1e-6)
    assert resp.usage.prompt_tokens > 0
    sent = [r for r in fake_gemini.requests if "batchEmbedContents" in r["path"]][-1]
    assert sent["path"] == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert sent["json"]["requests"][0]["outputDimensionality"] == 4
    rows = usage_rows()
    assert [r.endpoint for r in rows] == ["embeddings", "embeddings"]
    assert rows[0].token_source == "estimated"


def test_embeddings_are_split_into_batches_of_100(openai_client, fake_gemini):
    resp = openai_client.embeddings.create(model="gemini-embedding-001", input=[f"t{i}" for i in range(250)])
    assert [d.index for d in resp.data] == list(range(250))
    batches = [len(r["json"]["requests"]) for r in fake_gemini.requests if "batchEmbedContents" in r["path"]]
    assert sorted(batches) == [50, 100, 100]


def test_models_list_and_retrieve_with_slash(openai_client, fake_gemini, mapping):
    mapping("gpt-4o")
    mapping("team/flash")
    mapping("secret-model", hidden=True)
    ids = [m.id for m in openai_client.models.list()]
    assert ids[:2] == ["gpt-4o", "team/flash"]
    assert "gemini-2.5-flash" in ids and "secret-model" not in ids
    assert openai_client.models.retrieve("team/flash").id == "team/flash"
    with pytest.raises(openai.NotFoundError):
        openai_client.models.retrieve("nope")


def test_legacy_completions(openai_client, fake_gemini):
    resp = openai_client.completions.create(model="gemini-2.5-flash", prompt="Say hi", max_tokens=20)
    assert resp.object == "text_completion" and "Say hi" in resp.choices[0].text
    chunks = list(openai_client.completions.create(model="gemini-2.5-flash", prompt="Say hi", stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices).startswith("Hello")


def test_search_suffix_on_mapped_alias(openai_client, fake_gemini, mapping):
    mapping("gpt-4o", "gemini-2.5-pro")
    openai_client.chat.completions.create(model="gpt-4o:search", messages=[{"role": "user", "content": "news"}])
    sent = generate_requests(fake_gemini)[-1]
    assert sent["path"] == "/v1beta/models/gemini-2.5-pro:generateContent"
    assert {"googleSearch": {}} in sent["json"]["tools"]


def test_gemini3_thought_signatures_round_trip(openai_client, fake_gemini, usage_rows):
    fake_gemini.script("tool_calls", calls=[("get_weather", {"city": "Lima"}, None)])
    first = openai_client.chat.completions.create(
        model="gemini-3-flash-preview", messages=[{"role": "user", "content": "Lima?"}], tools=TOOLS
    )
    call = first.choices[0].message.tool_calls[0]
    signature = call.model_extra["extra_content"]["google"]["thought_signature"]
    assert signature and signature != "skip_thought_signature_validator"

    def history(tool_call: dict) -> list[dict]:
        return [
            {"role": "user", "content": "Lima?"},
            {"role": "assistant", "content": None, "tool_calls": [tool_call]},
            {"role": "tool", "tool_call_id": call.id, "content": "warm"},
        ]

    # A client that echoes extra_content back.
    openai_client.chat.completions.create(
        model="gemini-3-flash-preview", messages=history(call.model_dump()), tools=TOOLS
    )
    sent = generate_requests(fake_gemini)[-1]["json"]["contents"][1]["parts"][0]
    assert sent["thoughtSignature"] == signature

    # A client that drops unknown fields: the gateway restores the signature it remembered.
    usage_rows()  # lets the background writer store the signature
    bare = {
        "id": call.id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": call.function.arguments},
    }
    openai_client.chat.completions.create(model="gemini-3-flash-preview", messages=history(bare), tools=TOOLS)
    sent = generate_requests(fake_gemini)[-1]["json"]["contents"][1]["parts"][0]
    assert sent["thoughtSignature"] == signature
