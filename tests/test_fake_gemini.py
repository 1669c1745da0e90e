"""The fake Gemini API behaves like Google's: raw HTTP, the official google-genai SDK, a real server.

Run without Django: `pytest tests/test_fake_gemini.py -p no:django`.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from google import genai
from google.genai import errors, types

from tests.fakes.gemini import FakeGemini

KEY = "test-upstream-key"
HEADERS = {"x-goog-api-key": KEY}
FLASH = "/v1beta/models/gemini-2.5-flash"
GEMINI_3 = "/v1beta/models/gemini-3-flash-preview"
PROJECT = Path(__file__).resolve().parent.parent
WEATHER_TOOL = {"functionDeclarations": [{
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "OBJECT", "properties": {
        "city": {"type": "STRING"}, "days": {"type": "INTEGER"},
        "unit": {"type": "STRING", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city"]}}]}


def user(text: str) -> dict:
    return {"role": "user", "parts": [{"text": text}]}


def body(text: str = "hi there", **extra) -> dict:
    return {"contents": [user(text)], **extra}


def sse_events(raw: bytes) -> list[dict]:
    """Parse an alt=sse body strictly: `data: {json}\\r\\n\\r\\n` for every event, last included."""
    assert raw.endswith(b"\r\n\r\n")
    frames = raw.split(b"\r\n\r\n")
    assert frames[-1] == b""
    events = []
    for frame in frames[:-1]:
        assert frame.startswith(b"data: ") and b"\n" not in frame
        events.append(json.loads(frame[len(b"data: "):]))
    return events


def joined_text(events: list[dict]) -> str:
    return "".join(p.get("text", "") for e in events for c in e.get("candidates", [])
                   for p in c.get("content", {}).get("parts", []) if not p.get("thought"))


@pytest.fixture
def fake() -> FakeGemini:
    return FakeGemini()


@pytest.fixture
async def http(fake: FakeGemini):
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handler),
                                 base_url="http://fake") as client:
        yield client


@pytest.fixture
def sdk(fake: FakeGemini) -> genai.Client:
    """The official SDK; a custom httpx transport is passed through `async_client_args`."""
    return genai.Client(api_key=KEY, http_options=types.HttpOptions(
        base_url="http://fake", async_client_args={"transport": httpx.MockTransport(fake.handler)}))


# --------------------------------------------------------------------------- raw HTTP: generate

@pytest.mark.asyncio
async def test_generate_default_reply_is_deterministic_camel_case_json(http, fake):
    response = await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=body("hi there"))

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=UTF-8"
    reply = response.json()
    assert reply.pop("responseId")
    assert reply == {
        "candidates": [{"content": {"parts": [{"text": "Hello from fake Gemini: hi there"}],
                                    "role": "model"}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 8, "totalTokenCount": 10,
                          "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 2}]},
        "modelVersion": "gemini-2.5-flash",
    }
    assert response.text.startswith('{\n  "candidates"')  # Google pretty-prints plain bodies


@pytest.mark.asyncio
async def test_every_request_is_recorded(http, fake):
    await http.post(f"{FLASH}:generateContent?key={KEY}", json=body(),
                    headers={"X-Custom": "yes"})

    record = fake.last_request
    assert record["method"] == "POST"
    assert record["path"] == f"{FLASH}:generateContent"
    assert record["query"] == {"key": KEY}
    assert record["headers"]["x-custom"] == "yes"
    assert record["json"] == body()
    assert (record["model"], record["action"], record["completed"]) == (
        "gemini-2.5-flash", "generateContent", True)
    assert fake.requests_to("generateContent") == [record]


@pytest.mark.asyncio
async def test_snake_case_keys_are_read_and_max_output_tokens_truncates(http):
    request = {"contents": [user("a long question " * 5)],
               "system_instruction": {"parts": [{"text": "be brief"}]},
               "generation_config": {"max_output_tokens": 3, "stop_sequences": ["zzz"]}}
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
    schema = {"type": "object", "properties": {
        "name": {"type": "string"}, "age": {"type": "integer"}, "score": {"type": "number"},
        "ok": {"type": "boolean"}, "tags": {"type": "array", "items": {"type": "string"}},
        "mood": {"type": "string", "enum": ["happy", "sad"]}}}
    config = {"generationConfig": {"responseMimeType": "application/json",
                                   "responseJsonSchema": schema}}
    reply = (await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=body(**config))).json()

    value = json.loads(reply["candidates"][0]["content"]["parts"][0]["text"])
    assert value == {"name": "sample name", "age": 1, "score": 1.5, "ok": True,
                     "tags": ["sample tags"], "mood": "happy"}


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
    assert usage["totalTokenCount"] == (usage["promptTokenCount"] + usage["candidatesTokenCount"]
                                        + usage["thoughtsTokenCount"])


# --------------------------------------------------------------------------- raw HTTP: tools

@pytest.mark.asyncio
async def test_mode_any_calls_the_first_function_with_args_from_its_schema(http):
    request = body("weather please", tools=[WEATHER_TOOL],
                   toolConfig={"functionCallingConfig": {"mode": "ANY"}})
    reply = (await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=request)).json()

    assert reply["candidates"][0]["content"]["parts"] == [{"functionCall": {
        "name": "get_weather", "args": {"city": "sample city", "days": 1, "unit": "celsius"}}}]
    assert reply["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.asyncio
async def test_call_prefix_picks_the_named_function_and_gemini_3_signs_it(http):
    tools = [{"functionDeclarations": [
        {"name": "first", "parametersJsonSchema": {"type": "object", "properties": {}}},
        {"name": "lookup", "parametersJsonSchema": {"type": "object",
                                                    "properties": {"q": {"type": "string"}}}}]}]
    reply = (await http.post(f"{GEMINI_3}:generateContent", headers=HEADERS,
                             json=body("CALL: lookup now", tools=tools))).json()

    part = reply["candidates"][0]["content"]["parts"][0]
    assert part["functionCall"] == {"name": "lookup", "args": {"q": "sample q"}}
    assert part["thoughtSignature"]
    assert "id" not in part["functionCall"]


@pytest.mark.asyncio
async def test_function_responses_are_summarised(http):
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    answer = {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}}
    request = {"contents": [user("CALL: weather"), {"role": "model", "parts": [call]},
                            {"role": "user", "parts": [answer]}], "tools": [WEATHER_TOOL]}
    reply = (await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=request)).json()

    assert reply["candidates"][0]["content"]["parts"] == [{"text": 'Tool said: [{"temp": 21}]'}]


@pytest.mark.asyncio
@pytest.mark.parametrize("signature", ["c2lnbmF0dXJl", "skip_thought_signature_validator"])
async def test_gemini_3_accepts_any_signature_on_the_first_call(http, signature):
    call = {"functionCall": {"name": "get_weather", "args": {}}, "thoughtSignature": signature}
    sibling = {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}
    answers = [{"functionResponse": {"name": "get_weather", "response": {}}}] * 2
    request = {"contents": [user("weather"), {"role": "model", "parts": [call, sibling]},
                            {"role": "user", "parts": answers}]}
    response = await http.post(f"{GEMINI_3}:generateContent", headers=HEADERS, json=request)
    assert response.status_code == 200


# --------------------------------------------------------------------------- raw HTTP: validation

UNSIGNED = [user("weather"), {"role": "model", "parts": [{"functionCall": {"name": "get_weather"}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {}}}]}]
UNPAIRED = [user("weather"), {"role": "model", "parts": [{"functionCall": {"name": "a"}},
                                                          {"functionCall": {"name": "b"}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "a", "response": {}}}]}]


@pytest.mark.asyncio
@pytest.mark.parametrize(("path", "request_body", "message"), [
    (FLASH, {"contents": []}, "* GenerateContentRequest.contents: contents is not specified"),
    (FLASH, {}, "* GenerateContentRequest.contents: contents is not specified"),
    (FLASH, {"contents": [user("a"), {"role": "model", "parts": []}]},
     "* GenerateContentRequest.contents[1].parts: contents.parts must not be empty."),
    (FLASH, {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]},
     "Please use a valid role: user, model."),
    (FLASH, {"contents": [{"parts": [{}]}]},
     "* GenerateContentRequest.contents[0].parts[0].data: required oneof field 'data' must have "
     "one initialized field"),
    (FLASH, {"contents": UNPAIRED},
     "Please ensure that the number of function response parts is equal to the number of "
     "function call parts of the function call turn."),
    (FLASH, body(generationConfig={"seed": 2**31}),
     "Invalid value at 'generation_config.seed' (TYPE_INT32), 2147483648"),
    (FLASH, body(generationConfig={"stopSequences": list("abcdef")}),
     "Unable to submit request because it has a stopSequences value of 6 but the supported range "
     "is from 1 (inclusive) to 6 (exclusive). Update the value and try again."),
    (GEMINI_3, body(generationConfig={"thinkingConfig": {"thinkingBudget": 10, "thinkingLevel": "LOW"}}),
     "thinking_budget and thinking_level are not supported together."),
    (FLASH, body(foo=1), 'Invalid JSON payload received. Unknown name "foo": Cannot find field.'),
    (FLASH, body(generationConfig={"bar": 1}),
     'Invalid JSON payload received. Unknown name "bar" at \'generation_config\': Cannot find field.'),
    (GEMINI_3, {"contents": UNSIGNED},
     "Function call is missing a thought_signature in functionCall parts. This is required for "
     "tools to work correctly, and missing thought_signature may lead to degraded model "
     "performance. Additional data, function call `default_api:get_weather` , position 2. Please "
     "refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details."),
])
async def test_invalid_requests_get_googles_400(http, path, request_body, message):
    response = await http.post(f"{path}:generateContent", headers=HEADERS, json=request_body)

    assert response.status_code == 400
    assert response.json() == {"error": {"code": 400, "message": message,
                                         "status": "INVALID_ARGUMENT"}}


@pytest.mark.asyncio
async def test_unsigned_history_is_fine_outside_gemini_3(http):
    response = await http.post(f"{FLASH}:generateContent", headers=HEADERS, json={"contents": UNSIGNED})
    assert response.status_code == 200


@pytest.mark.asyncio
async def test_a_body_of_the_wrong_shape_is_a_400_not_a_crash(http, fake):
    response = await http.post(f"{FLASH}:generateContent", headers=HEADERS,
                               json={"contents": "not a list"})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Request contains an invalid argument."
    non_json = await http.post(f"{FLASH}:generateContent", headers=HEADERS, content=b"{nope")
    assert non_json.json()["error"]["message"] == "Invalid JSON payload received. Unexpected token."


# --------------------------------------------------------------------------- raw HTTP: auth, 404

@pytest.mark.asyncio
async def test_wrong_key_is_googles_400_api_key_invalid(http):
    response = await http.post(f"{FLASH}:generateContent", headers={"x-goog-api-key": "nope"},
                               json=body())
    assert response.status_code == 400
    assert response.json() == {"error": {
        "code": 400, "message": "API key not valid. Please pass a valid API key.",
        "status": "INVALID_ARGUMENT", "details": [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
             "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
            {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
             "message": "API key not valid. Please pass a valid API key."}]}}


@pytest.mark.asyncio
async def test_missing_key_is_403_and_a_bearer_token_is_401(http):
    missing = await http.post(f"{FLASH}:generateContent", json=body())
    assert missing.status_code == 403
    assert missing.json()["error"]["status"] == "PERMISSION_DENIED"
    bearer = await http.post(f"{FLASH}:generateContent", json=body(),
                             headers={"authorization": f"Bearer {KEY}"})
    assert bearer.status_code == 401
    assert bearer.json()["error"]["status"] == "UNAUTHENTICATED"


@pytest.mark.asyncio
async def test_key_in_query_string_is_accepted(http):
    response = await http.post(f"{FLASH}:generateContent", params={"key": KEY}, json=body())
    assert response.status_code == 200


@pytest.mark.asyncio
@pytest.mark.parametrize(("path", "message"), [
    ("/v1beta/models/gemini-9:generateContent",
     "models/gemini-9 is not found for API version v1beta, or is not supported for "
     "generateContent. Call ListModels to see the list of available models and their supported "
     "methods."),
    ("/v1beta/models/gemini-embedding-001:generateContent",
     "models/gemini-embedding-001 is not found for API version v1beta, or is not supported for "
     "generateContent. Call ListModels to see the list of available models and their supported "
     "methods."),
    ("/v1beta/models/gemini-2.5-flash:embedContent",
     "models/gemini-2.5-flash is not found for API version v1beta, or is not supported for "
     "embedContent. Call ListModels to see the list of available models and their supported "
     "methods."),
])
async def test_unknown_or_unsupported_model_is_404(http, path, message):
    response = await http.post(path, headers=HEADERS, json=body())
    assert response.status_code == 404
    assert response.json() == {"error": {"code": 404, "message": message, "status": "NOT_FOUND"}}


# --------------------------------------------------------------------------- raw HTTP: streams

@pytest.mark.asyncio
async def test_sse_stream_frames_usage_and_finish_like_google(http, fake):
    response = await http.post(f"{FLASH}:streamGenerateContent", params={"alt": "sse"},
                               headers=HEADERS, json=body("hi there"))

    assert response.headers["content-type"] == "text/event-stream"
    events = sse_events(response.content)
    assert len(events) == 6  # one word per event by default
    assert b"[DONE]" not in response.content
    assert joined_text(events) == "Hello from fake Gemini: hi there"
    assert [e["usageMetadata"]["promptTokenCount"] for e in events] == [2] * 6
    counts = [e["usageMetadata"].get("candidatesTokenCount", 0) for e in events]
    assert counts == sorted(counts) and counts[-1] == 8
    assert [("finishReason" in e["candidates"][0]) for e in events] == [False] * 5 + [True]
    assert len({e["responseId"] for e in events}) == 1
    assert {e["modelVersion"] for e in events} == {"gemini-2.5-flash"}
    assert fake.last_request["completed"] is True


@pytest.mark.asyncio
async def test_sse_stream_usage_ends_equal_to_the_unary_reply(http):
    request = body("count me", generationConfig={"thinkingConfig": {"includeThoughts": True}})
    unary = (await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=request)).json()
    streamed = await http.post(f"{FLASH}:streamGenerateContent?alt=sse", headers=HEADERS, json=request)

    events = sse_events(streamed.content)
    assert events[-1]["usageMetadata"] == unary["usageMetadata"]
    assert events[0]["candidates"][0]["content"]["parts"] == [
        {"text": "Thinking about it...", "thought": True}]


@pytest.mark.asyncio
async def test_json_array_stream_without_alt(http):
    response = await http.post(f"{FLASH}:streamGenerateContent", headers=HEADERS, json=body())

    assert response.headers["content-type"] == "application/json; charset=UTF-8"
    raw = response.content
    assert raw.startswith(b"[{\n") and raw.endswith(b"}]")
    assert raw.count(b"\n},\r\n{") == 5
    events = json.loads(raw)
    assert joined_text(events) == "Hello from fake Gemini: hi there"


@pytest.mark.asyncio
async def test_compact_json_array_stream():
    fake = FakeGemini(pretty_arrays=False, words_per_chunk=3)
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handler)) as client:
        response = await client.post(f"http://fake{FLASH}:streamGenerateContent",
                                     headers=HEADERS, json=body())
    events = json.loads(response.content)
    assert b"\n  " not in response.content and len(events) == 2
    assert joined_text(events) == "Hello from fake Gemini: hi there"


@pytest.mark.asyncio
async def test_stream_is_incremental(fake, http):
    fake.chunk_delay = 0.1
    started = time.monotonic()
    arrivals = []
    async with http.stream("POST", f"{FLASH}:streamGenerateContent?alt=sse", headers=HEADERS,
                           json=body("one two")) as response:
        async for chunk in response.aiter_raw():
            arrivals.append((time.monotonic() - started, chunk))
    assert len(arrivals) == 6
    assert arrivals[0][0] < 0.08  # first token long before the stream ends
    assert arrivals[-1][0] >= 0.5


@pytest.mark.asyncio
async def test_stream_delivers_parallel_function_calls_in_one_chunk(http, fake):
    fake.script("tool_calls", calls=[("get_weather", {"city": "Paris"}), ("get_time", {}, "call-1")],
                text="Let me check.")
    response = await http.post(f"{GEMINI_3}:streamGenerateContent?alt=sse", headers=HEADERS,
                               json=body())

    events = sse_events(response.content)
    calls = events[-1]["candidates"][0]["content"]["parts"]
    assert [p["functionCall"]["name"] for p in calls] == ["get_weather", "get_time"]
    assert "thoughtSignature" in calls[0] and "thoughtSignature" not in calls[1]
    assert calls[1]["functionCall"]["id"] == "call-1" and "id" not in calls[0]["functionCall"]
    assert joined_text(events) == "Let me check."


@pytest.mark.asyncio
async def test_script_text_chunks_control_the_stream_split(http, fake):
    fake.script("text", chunks=["Hel", "lo", "!"])
    response = await http.post(f"{FLASH}:streamGenerateContent?alt=sse", headers=HEADERS, json=body())
    events = sse_events(response.content)
    assert [e["candidates"][0]["content"]["parts"][0]["text"] for e in events] == ["Hel", "lo", "!"]
    assert [e["usageMetadata"]["candidatesTokenCount"] for e in events] == [1, 2, 2]


# --------------------------------------------------------------------------- raw HTTP: scripts

@pytest.mark.asyncio
async def test_scripted_429_carries_retry_info(http, fake):
    fake.script("error", status=429, retry_delay="12s")
    response = await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=body())

    assert response.status_code == 429
    error = response.json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert error["message"].startswith("You exceeded your current quota")
    assert error["details"][-1] == {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                    "retryDelay": "12s"}
    assert [d["@type"].rsplit(".", 1)[1] for d in error["details"]] == [
        "QuotaFailure", "Help", "RetryInfo"]
    ok = await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=body())
    assert ok.status_code == 200  # scripts are one-shot


@pytest.mark.asyncio
async def test_scripted_503_in_the_array_stream_is_list_wrapped(http, fake):
    fake.script("error", status=503)
    response = await http.post(f"{FLASH}:streamGenerateContent", headers=HEADERS, json=body())
    assert response.status_code == 503
    assert response.json() == [{"error": {"code": 503, "status": "UNAVAILABLE",
                                          "message": "The model is overloaded. Please try again later."}}]


@pytest.mark.asyncio
async def test_break_midstream_raises_read_error_after_n_events(http, fake):
    fake.script("break_midstream", after=2)
    received = []
    with pytest.raises(httpx.ReadError):
        async with http.stream("POST", f"{FLASH}:streamGenerateContent?alt=sse", headers=HEADERS,
                               json=body()) as response:
            async for chunk in response.aiter_raw():
                received.append(chunk)
    assert len(received) == 2
    assert fake.last_request["completed"] is False


@pytest.mark.asyncio
async def test_break_midstream_can_look_like_a_truncated_body(http, fake):
    fake.script("break_midstream", error="protocol")
    with pytest.raises(httpx.RemoteProtocolError):
        await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=body())


@pytest.mark.asyncio
async def test_error_midstream_sends_an_error_event(http, fake):
    fake.script("error_midstream", after=1, status=500)
    response = await http.post(f"{FLASH}:streamGenerateContent?alt=sse", headers=HEADERS, json=body())

    events = sse_events(response.content)
    assert response.status_code == 200 and len(events) == 2
    assert events[-1] == {"error": {"code": 500, "status": "INTERNAL", "message": (
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting")}}


@pytest.mark.asyncio
async def test_blocked_prompt_has_no_candidates(http, fake):
    fake.script("blocked")
    reply = (await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=body())).json()
    assert "candidates" not in reply
    assert reply["promptFeedback"]["blockReason"] == "SAFETY"
    assert reply["usageMetadata"] == {"promptTokenCount": 2, "totalTokenCount": 2,
                                      "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 2}]}


@pytest.mark.asyncio
async def test_finish_and_max_tokens_without_parts(http, fake):
    fake.script("finish", reason="MALFORMED_FUNCTION_CALL", message="Malformed function call: x")
    fake.script("max_tokens_no_parts")
    malformed = (await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=body())).json()
    spent = (await http.post(f"{FLASH}:generateContent", headers=HEADERS,
                             json=body(generationConfig={"maxOutputTokens": 64}))).json()

    assert malformed["candidates"] == [{"finishReason": "MALFORMED_FUNCTION_CALL",
                                        "finishMessage": "Malformed function call: x"}]
    assert spent["candidates"] == [{"content": {"role": "model"}, "finishReason": "MAX_TOKENS"}]
    assert spent["usageMetadata"]["thoughtsTokenCount"] == 64
    assert "candidatesTokenCount" not in spent["usageMetadata"]


@pytest.mark.asyncio
async def test_logprobs_script(http, fake):
    fake.script("logprobs", top=3, text="a b")
    candidate = (await http.post(f"{FLASH}:generateContent", headers=HEADERS,
                                 json=body())).json()["candidates"][0]
    result = candidate["logprobsResult"]
    assert [c["token"] for c in result["chosenCandidates"]] == ["a ", "b"]
    assert len(result["topCandidates"][0]["candidates"]) == 3
    assert candidate["avgLogprobs"] == pytest.approx(-0.075)


@pytest.mark.asyncio
async def test_raw_script_sends_anything(http, fake):
    fake.script("raw", status=200, body="<html>not json</html>", content_type="text/html")
    response = await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=body())
    assert response.status_code == 200 and response.text == "<html>not json</html>"
    assert response.headers["content-type"] == "text/html"


@pytest.mark.asyncio
async def test_slow_script_delays_the_response(http, fake):
    fake.script("slow", delay=0.2)
    started = time.monotonic()
    await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=body())
    assert time.monotonic() - started >= 0.2


@pytest.mark.asyncio
async def test_scripts_target_one_operation(http, fake):
    fake.script("error", status=500, on="embed")
    generate = await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=body())
    embed = await http.post("/v1beta/models/gemini-embedding-001:embedContent", headers=HEADERS,
                            json={"content": {"parts": [{"text": "a"}]}})
    assert (generate.status_code, embed.status_code) == (200, 500)


@pytest.mark.asyncio
async def test_keep_requests_bounds_the_record():
    fake = FakeGemini(keep_requests=2)
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handler)) as client:
        for model in ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash"):
            await client.get(f"http://fake/v1beta/models/{model}", headers=HEADERS)
    assert [r["model"] for r in fake.requests] == ["gemini-2.5-pro", "gemini-2.0-flash"]


def test_unknown_script_kind_is_refused(fake):
    with pytest.raises(ValueError, match="unknown script kind"):
        fake.script("explode")


# --------------------------------------------------------------------------- raw HTTP: other endpoints

@pytest.mark.asyncio
@pytest.mark.parametrize("request_body", [
    {"contents": [user("twelve chars")]},
    {"generateContentRequest": {"model": "models/gemini-2.5-flash", "contents": [user("twelve chars")]}},
])
async def test_count_tokens_accepts_both_forms(http, request_body):
    response = await http.post(f"{FLASH}:countTokens", headers=HEADERS, json=request_body)
    assert response.json() == {"totalTokens": 3,
                               "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 3}]}


@pytest.mark.asyncio
async def test_embeddings_are_deterministic_and_have_no_usage(http):
    url = "/v1beta/models/gemini-embedding-001"
    one = (await http.post(f"{url}:embedContent", headers=HEADERS,
                           json={"content": {"parts": [{"text": "hello"}]}})).json()
    batch = (await http.post(f"{url}:batchEmbedContents", headers=HEADERS, json={"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "hello"}]}},
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "bye"}]},
         "outputDimensionality": 3}]})).json()

    assert list(one) == ["embedding"] and len(one["embedding"]["values"]) == 8
    assert all(-1 <= v <= 1 for v in one["embedding"]["values"])
    assert batch["embeddings"][0] == one["embedding"]
    assert len(batch["embeddings"][1]["values"]) == 3


@pytest.mark.asyncio
@pytest.mark.parametrize(("requests", "message"), [
    ([{"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "x"}]}}] * 101,
     "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch"),
    ([{"model": "models/other", "content": {"parts": [{"text": "x"}]}}],
     "* BatchEmbedContentsRequest.requests[0].model: model must be models/gemini-embedding-001, "
     "the model named in the URL"),
])
async def test_batch_embed_limits(http, requests, message):
    response = await http.post("/v1beta/models/gemini-embedding-001:batchEmbedContents",
                               headers=HEADERS, json={"requests": requests})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == message


@pytest.mark.asyncio
async def test_models_list_pages_and_get(http):
    first = (await http.get("/v1beta/models", params={"pageSize": 3}, headers=HEADERS)).json()
    second = (await http.get("/v1beta/models", headers=HEADERS,
                             params={"pageSize": 3, "pageToken": first["nextPageToken"]})).json()
    one = (await http.get("/v1beta/models/gemini-2.5-pro", headers=HEADERS)).json()
    missing = await http.get("/v1beta/models/nope", headers=HEADERS)

    names = [m["name"] for m in first["models"] + second["models"]]
    assert names == ["models/gemini-2.5-flash", "models/gemini-2.5-pro",
                     "models/gemini-3-flash-preview", "models/gemini-2.0-flash",
                     "models/gemini-embedding-001"]
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


# --------------------------------------------------------------------------- the ASGI app

def http_scope(path: str, query: bytes = b"") -> dict:
    return {"type": "http", "method": "POST", "path": path, "query_string": query,
            "headers": [(b"x-goog-api-key", KEY.encode()), (b"content-type", b"application/json")]}


@pytest.mark.asyncio
async def test_asgi_app_answers_lifespan(fake):
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent = []

    async def receive():
        return next(incoming)

    async def send(message):
        sent.append(message["type"])

    await fake.asgi({"type": "lifespan"}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


@pytest.mark.asyncio
async def test_asgi_app_streams_one_body_message_per_event(fake):
    request = [{"type": "http.request", "body": json.dumps(body()).encode(), "more_body": False}]
    sent = []

    async def receive():
        if request:
            return request.pop()
        await asyncio.sleep(3600)  # the client never leaves

    async def send(message):
        sent.append(message)

    await fake.asgi(http_scope(f"{FLASH}:streamGenerateContent", b"alt=sse"), receive, send)

    start, *bodies, end = sent
    assert start["status"] == 200 and (b"content-type", b"text/event-stream") in start["headers"]
    assert len(bodies) == 6 and all(m["more_body"] for m in bodies)
    assert end == {"type": "http.response.body", "body": b"", "more_body": False}
    assert joined_text(sse_events(b"".join(m["body"] for m in bodies))) == \
        "Hello from fake Gemini: hi there"


@pytest.mark.asyncio
async def test_asgi_app_stops_streaming_when_the_client_leaves(fake):
    fake.chunk_delay = 0.02
    request = [{"type": "http.request", "body": json.dumps(body()).encode(), "more_body": False}]
    two_sent = asyncio.Event()
    bodies = []

    async def receive():
        if request:
            return request.pop()
        await two_sent.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.body":
            bodies.append(message)
            if len(bodies) == 2:
                two_sent.set()

    await fake.asgi(http_scope(f"{FLASH}:streamGenerateContent", b"alt=sse"), receive, send)

    assert 2 <= len(bodies) < 6
    assert fake.last_request["completed"] is False


# --------------------------------------------------------------------------- the official SDK

@pytest.mark.asyncio
async def test_sdk_generate(sdk, fake):
    response = await sdk.aio.models.generate_content(
        model="gemini-2.5-flash", contents="hello",
        config=types.GenerateContentConfig(system_instruction="be nice"))

    assert response.text == "Hello from fake Gemini: hello"
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.usage_metadata.prompt_token_count == 3
    assert response.usage_metadata.candidates_token_count == 8
    assert response.model_version == "gemini-2.5-flash" and response.response_id
    record = fake.last_request
    assert record["headers"]["x-goog-api-key"] == KEY
    # google-genai 3.x defaults to the v1 surface (2.x used v1beta); the fake serves both.
    assert record["path"] == "/v1/models/gemini-2.5-flash:generateContent"
    assert record["json"]["systemInstruction"] == {"parts": [{"text": "be nice"}], "role": "user"}


@pytest.mark.asyncio
async def test_sdk_stream(sdk, fake):
    chunks = [chunk async for chunk in await sdk.aio.models.generate_content_stream(
        model="gemini-2.5-flash", contents="hello world")]

    assert len(chunks) == 6
    assert "".join(c.text for c in chunks) == "Hello from fake Gemini: hello world"
    assert chunks[-1].usage_metadata.candidates_token_count == 9
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert fake.last_request["query"] == {"alt": "sse"}


@pytest.mark.asyncio
async def test_sdk_tool_call_round_trip_on_gemini_3(sdk, fake):
    tool = types.Tool(function_declarations=[types.FunctionDeclaration(
        name="get_weather", parameters_json_schema={
            "type": "object", "properties": {"city": {"type": "string"}}})])
    config = types.GenerateContentConfig(tools=[tool], automatic_function_calling=
                                         types.AutomaticFunctionCallingConfig(disable=True))
    first = await sdk.aio.models.generate_content(
        model="gemini-3-flash-preview", contents="CALL: get_weather", config=config)
    call = first.function_calls[0]
    history = [types.Content(role="user", parts=[types.Part(text="CALL: get_weather")]),
               first.candidates[0].content,
               types.Content(role="user", parts=[types.Part.from_function_response(
                   name=call.name, response={"temp": 21})])]
    second = await sdk.aio.models.generate_content(
        model="gemini-3-flash-preview", contents=history, config=config)

    assert (call.name, call.args, call.id) == ("get_weather", {"city": "sample city"}, None)
    assert first.candidates[0].content.parts[0].thought_signature  # bytes, echoed back by the SDK
    assert second.text == 'Tool said: [{"temp": 21}]'


@pytest.mark.asyncio
async def test_sdk_parallel_scripted_calls(sdk, fake):
    fake.script("tool_calls", calls=[("a", {"x": 1}), ("b", {"y": 2}, "id-b")])
    response = await sdk.aio.models.generate_content(model="gemini-2.5-flash", contents="go")
    assert [(c.name, c.args, c.id) for c in response.function_calls] == [
        ("a", {"x": 1}, None), ("b", {"y": 2}, "id-b")]


@pytest.mark.asyncio
async def test_sdk_thinking(sdk, fake):
    response = await sdk.aio.models.generate_content(
        model="gemini-2.5-flash", contents="think",
        config=types.GenerateContentConfig(thinking_config=types.ThinkingConfig(
            include_thoughts=True, thinking_budget=128)))

    thought, answer = response.candidates[0].content.parts
    assert thought.thought is True and thought.text == "Thinking about it..."
    assert answer.text == "Hello from fake Gemini: think"
    assert response.usage_metadata.thoughts_token_count == 5
    # the SDK mixes casings inside thinkingConfig; the fake reads both
    assert fake.last_request["json"]["generationConfig"]["thinkingConfig"] == {
        "include_thoughts": True, "thinking_budget": 128}


@pytest.mark.asyncio
async def test_sdk_scripted_thinking_and_blocked(sdk, fake):
    fake.script("thinking", thought="Deep thought", text="42", thoughts_tokens=99)
    fake.script("blocked")
    thinking = await sdk.aio.models.generate_content(model="gemini-2.5-pro", contents="?")
    blocked = await sdk.aio.models.generate_content(model="gemini-2.5-pro", contents="?")

    assert thinking.text == "42" and thinking.usage_metadata.thoughts_token_count == 99
    assert blocked.candidates is None and blocked.text is None
    assert blocked.prompt_feedback.block_reason == types.BlockedReason.SAFETY


@pytest.mark.asyncio
async def test_sdk_count_tokens_embed_and_models(sdk, fake):
    counted = await sdk.aio.models.count_tokens(model="gemini-2.5-flash", contents="twelve chars")
    embedded = await sdk.aio.models.embed_content(
        model="gemini-embedding-001", contents=["a", "b"],
        config=types.EmbedContentConfig(output_dimensionality=4))
    pager = await sdk.aio.models.list(config={"page_size": 2})
    names = [model.name async for model in pager]
    model = await sdk.aio.models.get(model="gemini-2.5-pro")

    assert counted.total_tokens == 3
    assert [len(e.values) for e in embedded.embeddings] == [4, 4]
    assert fake.requests_to("batchEmbedContents")[0]["json"]["requests"][0]["model"] == \
        "models/gemini-embedding-001"
    assert len(names) == 5 and len(fake.requests_to("list")) == 3
    assert model.display_name == "Gemini 2.5 Pro" and "generateContent" in model.supported_actions


@pytest.mark.asyncio
@pytest.mark.parametrize(("script", "error_class", "code", "status"), [
    ({"status": 429}, errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
    ({"status": 500}, errors.ServerError, 500, "INTERNAL"),
    ({"status": 503}, errors.ServerError, 503, "UNAVAILABLE"),
])
async def test_sdk_raises_on_scripted_errors(sdk, fake, script, error_class, code, status):
    fake.script("error", **script)
    with pytest.raises(error_class) as caught:
        await sdk.aio.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert (caught.value.code, caught.value.status) == (code, status)


@pytest.mark.asyncio
async def test_sdk_bad_key_and_unknown_model(fake):
    bad = genai.Client(api_key="wrong", http_options=types.HttpOptions(
        base_url="http://fake", async_client_args={"transport": httpx.MockTransport(fake.handler)}))
    with pytest.raises(errors.ClientError) as caught:
        await bad.aio.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert caught.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"

    good = genai.Client(api_key=KEY, http_options=types.HttpOptions(
        base_url="http://fake", async_client_args={"transport": httpx.MockTransport(fake.handler)}))
    with pytest.raises(errors.ClientError) as missing:
        await good.aio.models.generate_content(model="gemini-9", contents="x")
    assert missing.value.code == 404 and missing.value.message.startswith("models/gemini-9 is not found")


@pytest.mark.asyncio
async def test_sdk_raises_on_an_error_event_mid_stream(sdk, fake):
    fake.script("error_midstream", after=2)
    seen = []
    with pytest.raises(errors.ServerError) as caught:
        async for chunk in await sdk.aio.models.generate_content_stream(
                model="gemini-2.5-flash", contents="hello"):
            seen.append(chunk.text)
    assert seen == ["Hello ", "from "]
    assert (caught.value.code, caught.value.message) == (
        503, "The model is overloaded. Please try again later.")


# --------------------------------------------------------------------------- a real server

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"fake Gemini did not listen on {port}")


@pytest.fixture
def served_fake():
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.gemini", "--port", str(port), "--api-key", "served-key",
         "--chunk-delay", "0.05"],
        cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        assert f"http://127.0.0.1:{port}" in process.stdout.read().decode()
        process.stdout.close()
        process.stderr.close()


@pytest.mark.asyncio
async def test_standalone_server_generates_and_streams(served_fake):
    headers = {"x-goog-api-key": "served-key"}
    async with httpx.AsyncClient(base_url=served_fake, timeout=10) as client:
        unary = await client.post(f"{FLASH}:generateContent", headers=headers, json=body())
        started, arrivals = time.monotonic(), []
        async with client.stream("POST", f"{FLASH}:streamGenerateContent?alt=sse", headers=headers,
                                 json=body()) as stream:
            raw = b""
            async for chunk in stream.aiter_raw():
                arrivals.append(time.monotonic() - started)
                raw += chunk
        wrong_key = await client.post(f"{FLASH}:generateContent", json=body(),
                                      headers={"x-goog-api-key": KEY})

    assert unary.status_code == 200
    assert unary.json()["candidates"][0]["content"]["parts"][0]["text"] == "Hello from fake Gemini: hi there"
    assert stream.headers["content-type"] == "text/event-stream"
    assert joined_text(sse_events(raw)) == "Hello from fake Gemini: hi there"
    assert len(arrivals) > 1 and arrivals[0] < arrivals[-1] - 0.2  # chunk by chunk
    assert wrong_key.status_code == 400


@pytest.mark.asyncio
async def test_standalone_server_drops_the_connection_mid_stream(served_fake):
    headers = {"x-goog-api-key": "served-key"}
    async with httpx.AsyncClient(base_url=served_fake, timeout=10) as client:
        await client.post("/_fake/script", json={"kind": "break_midstream", "after": 2})
        received = []
        with pytest.raises(httpx.TransportError):
            async with client.stream("POST", f"{FLASH}:streamGenerateContent?alt=sse",
                                     headers=headers, json=body()) as stream:
                async for chunk in stream.aiter_raw():
                    received.append(chunk)
        after = await client.get("/v1beta/models", headers=headers)

    assert len(sse_events(b"".join(received))) == 2
    assert after.status_code == 200  # the server survives
