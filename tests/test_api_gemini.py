"""The Gemini-native dialect end to end with the official google-genai SDK, against both upstream
kinds: pass-through to Gemini, translation to an OpenAI-compatible server."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from google.genai import errors as genai_errors
from google.genai import types

pytestmark = pytest.mark.django_db(transaction=True)

WEATHER = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="get_weather",
            description="Weather for a city",
            parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        )
    ]
)


def gemini_calls(fake):
    return [r for r in fake.requests if r.get("action") in ("generateContent", "streamGenerateContent")]


def test_generate_passes_through_to_gemini(genai_client, fake_gemini, mapping, usage_rows, api_key):
    mapping("team-flash", "gemini-2.5-flash")
    resp = genai_client.models.generate_content(
        model="team-flash",
        contents="hello there",
        config=types.GenerateContentConfig(
            system_instruction="be brief",
            temperature=0.2,
            thinking_config=types.ThinkingConfig(thinking_budget=0),
            safety_settings=[types.SafetySetting(category="HARM_CATEGORY_HATE_SPEECH", threshold="BLOCK_ONLY_HIGH")],
        ),
    )
    assert "hello there" in resp.text and resp.model_version == "team-flash"
    sent = gemini_calls(fake_gemini)[-1]
    assert sent["path"].endswith("/models/gemini-2.5-flash:generateContent")
    assert sent["headers"]["x-goog-api-key"] == "test-upstream-key" and api_key not in json.dumps(sent["json"])
    assert sent["json"]["safetySettings"] == [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_ONLY_HIGH"}]
    assert sent["json"]["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0}
    (row,) = usage_rows()
    assert (row.dialect, row.endpoint, row.requested_model, row.upstream_model) == (
        "gemini",
        "generateContent",
        "team-flash",
        "gemini-2.5-flash",
    )
    assert row.total_tokens == resp.usage_metadata.total_token_count


def test_stream_and_tools_with_thought_signatures_pass_through(genai_client, fake_gemini, usage_rows):
    fake_gemini.chunk_delay = 0.05
    chunks = list(genai_client.models.generate_content_stream(model="gemini-2.5-flash", contents="count to three"))
    assert len(chunks) > 2 and "".join(c.text or "" for c in chunks).startswith("Hello")
    assert chunks[-1].usage_metadata.total_token_count > 0

    fake_gemini.script("tool_calls", calls=[("get_weather", {"city": "Oslo"}, None)])
    config = types.GenerateContentConfig(tools=[WEATHER])
    first = genai_client.models.generate_content(model="gemini-3-flash-preview", contents="Oslo?", config=config)
    call_part = first.candidates[0].content.parts[0]
    assert call_part.function_call.name == "get_weather" and call_part.thought_signature
    history = [
        types.Content(role="user", parts=[types.Part(text="Oslo?")]),
        first.candidates[0].content,
        types.Content(role="user", parts=[types.Part.from_function_response(name="get_weather", response={"t": -3})]),
    ]
    genai_client.models.generate_content(model="gemini-3-flash-preview", contents=history, config=config)
    sent = gemini_calls(fake_gemini)[-1]["json"]["contents"][1]["parts"][0]
    # the SDK re-encodes the bytes it got (URL-safe alphabet): compare the bytes
    assert base64.urlsafe_b64decode(sent["thoughtSignature"]) == call_part.thought_signature
    rows = usage_rows()
    assert rows[0].streamed and rows[0].status == 200


def test_count_tokens_embed_and_models(genai_client, fake_gemini, mapping):
    mapping("team-embed", "gemini-embedding-001")
    counted = genai_client.models.count_tokens(model="gemini-2.5-flash", contents="some words to count")
    assert counted.total_tokens > 0
    emb = genai_client.models.embed_content(
        model="team-embed", contents=["a", "b"], config=types.EmbedContentConfig(output_dimensionality=4)
    )
    assert [len(e.values) for e in emb.embeddings] == [4, 4]
    sent = [r for r in fake_gemini.requests if r.get("action") == "batchEmbedContents"][-1]["json"]
    assert {r["model"] for r in sent["requests"]} == {"models/gemini-embedding-001"}
    names = [m.name for m in genai_client.models.list(config={"page_size": 2})]
    assert "models/team-embed" in names and "models/gemini-2.5-flash" in names
    assert genai_client.models.get(model="team-embed").name == "models/team-embed"


def test_v1beta_and_query_key(gateway_url, api_key, fake_gemini):
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    resp = httpx.post(f"{gateway_url}/v1beta/models/gemini-2.5-flash:generateContent?key={api_key}", json=body)
    assert resp.status_code == 200 and resp.json()["candidates"][0]["content"]["parts"][0]["text"]
    # JSON-array stream when alt=sse is absent
    streamed = httpx.post(
        f"{gateway_url}/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        headers={"x-goog-api-key": api_key},
        json=body,
    )
    elements = json.loads(streamed.text)
    assert isinstance(elements, list) and elements[-1]["candidates"][0]["finishReason"] == "STOP"
    # snake_case request bodies are read too
    snake = {"contents": [{"parts": [{"text": "hi"}]}], "generation_config": {"max_output_tokens": 5}}
    httpx.post(
        f"{gateway_url}/v1beta/models/gemini-2.5-flash:generateContent", headers={"x-goog-api-key": api_key}, json=snake
    )
    assert gemini_calls(fake_gemini)[-1]["json"]["generationConfig"] == {"maxOutputTokens": 5}


def test_errors_in_gemini_shape(genai_client, gateway_url, fake_gemini):
    from google import genai

    bad = genai.Client(api_key="gw-nope_nope-nope-nope-nope", http_options=types.HttpOptions(base_url=gateway_url))
    with pytest.raises(genai_errors.ClientError) as info:
        bad.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert info.value.code == 401 and info.value.status == "UNAUTHENTICATED"
    with pytest.raises(genai_errors.ClientError) as info:
        genai_client.models.generate_content(model="unknown-model", contents="x")
    assert info.value.code == 404 and info.value.status == "NOT_FOUND"
    fake_gemini.script("error", status=503)
    with pytest.raises(genai_errors.ServerError) as info:
        genai_client.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert info.value.code == 503
    fake_gemini.script("error_midstream", after=1, status=503)
    with pytest.raises(genai_errors.APIError):
        list(genai_client.models.generate_content_stream(model="gemini-2.5-flash", contents="a long answer please"))
    resp = httpx.post(
        f"{gateway_url}/v1beta/models/gemini-2.5-flash:generateContent",
        headers={"x-goog-api-key": genai_client._api_client.api_key},
        content=b"{nope",
    )
    assert resp.status_code == 400 and resp.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_gemini_client_on_openai_compatible_upstream(genai_client, fake_openai, mapping, usage_rows):
    mapping("deepseek-chat", "gpt-4o-mini", upstream="compat")
    resp = genai_client.models.generate_content(
        model="deepseek-chat", contents="hi there", config=types.GenerateContentConfig(system_instruction="terse")
    )
    assert "hi there" in resp.text and resp.usage_metadata.total_token_count > 0
    sent = fake_openai.requests[-1]["json"]
    assert sent["model"] == "gpt-4o-mini" and sent["messages"][0] == {"role": "system", "content": "terse"}
    assert fake_openai.requests[-1]["headers"]["authorization"] == "Bearer test-openai-key"

    chunks = list(genai_client.models.generate_content_stream(model="deepseek-chat", contents="stream please"))
    assert "".join(c.text or "" for c in chunks).startswith("Hello from fake OpenAI")

    fake_openai.script("tool_calls", calls=[("get_weather", {"city": "Rome"})])
    call = genai_client.models.generate_content(
        model="deepseek-chat", contents="Rome?", config=types.GenerateContentConfig(tools=[WEATHER])
    )
    assert call.function_calls[0].name == "get_weather" and call.function_calls[0].args == {"city": "Rome"}
    assert genai_client.models.count_tokens(model="deepseek-chat", contents="four words here now").total_tokens > 0
    rows = usage_rows()
    assert {r.upstream_name for r in rows} == {"compat"} and all(r.dialect == "gemini" for r in rows)


def test_pass_through_stream_broken_upstream(genai_client, fake_gemini, usage_rows):
    fake_gemini.script("break_midstream", after=1)
    received = []
    with pytest.raises(genai_errors.APIError):
        for chunk in genai_client.models.generate_content_stream(model="gemini-2.5-flash", contents="a long answer"):
            received.append(chunk)
    assert received  # the first chunk arrived before the break
    row = usage_rows()[-1]
    assert row.streamed and row.status == 502 and row.total_tokens > 0
