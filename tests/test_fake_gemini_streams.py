"""The fake Gemini API over raw HTTP: streams (alt=sse and JSON array) and scripted behaviours.

Needs no database.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.fake_gemini_helpers import FLASH, GEMINI_3, HEADERS, body, fake, http, joined_text, sse_events
from tests.fakes.gemini import FakeGemini

# --------------------------------------------------------------------------- raw HTTP: streams


@pytest.mark.asyncio
async def test_sse_stream_frames_usage_and_finish_like_google(http, fake):
    response = await http.post(
        f"{FLASH}:streamGenerateContent", params={"alt": "sse"}, headers=HEADERS, json=body("hi there")
    )

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
    assert events[0]["candidates"][0]["content"]["parts"] == [{"text": "Thinking about it...", "thought": True}]


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
        response = await client.post(f"http://fake{FLASH}:streamGenerateContent", headers=HEADERS, json=body())
    events = json.loads(response.content)
    assert b"\n  " not in response.content and len(events) == 2
    assert joined_text(events) == "Hello from fake Gemini: hi there"


@pytest.mark.asyncio
async def test_stream_is_incremental(fake, http):
    fake.chunk_delay = 0.1
    started = time.monotonic()
    arrivals = []
    async with http.stream(
        "POST", f"{FLASH}:streamGenerateContent?alt=sse", headers=HEADERS, json=body("one two")
    ) as response:
        async for chunk in response.aiter_raw():
            arrivals.append((time.monotonic() - started, chunk))
    assert len(arrivals) == 6
    assert arrivals[0][0] < 0.08  # first token long before the stream ends
    assert arrivals[-1][0] >= 0.5


@pytest.mark.asyncio
async def test_stream_delivers_parallel_function_calls_in_one_chunk(http, fake):
    fake.script(
        "tool_calls", calls=[("get_weather", {"city": "Paris"}), ("get_time", {}, "call-1")], text="Let me check."
    )
    response = await http.post(f"{GEMINI_3}:streamGenerateContent?alt=sse", headers=HEADERS, json=body())

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
    assert error["details"][-1] == {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}
    assert [d["@type"].rsplit(".", 1)[1] for d in error["details"]] == ["QuotaFailure", "Help", "RetryInfo"]
    ok = await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=body())
    assert ok.status_code == 200  # scripts are one-shot


@pytest.mark.asyncio
async def test_scripted_503_in_the_array_stream_is_list_wrapped(http, fake):
    fake.script("error", status=503)
    response = await http.post(f"{FLASH}:streamGenerateContent", headers=HEADERS, json=body())
    assert response.status_code == 503
    assert response.json() == [
        {"error": {"code": 503, "status": "UNAVAILABLE", "message": "The model is overloaded. Please try again later."}}
    ]


@pytest.mark.asyncio
async def test_break_midstream_raises_read_error_after_n_events(http, fake):
    fake.script("break_midstream", after=2)
    received = []
    with pytest.raises(httpx.ReadError):
        async with http.stream(
            "POST", f"{FLASH}:streamGenerateContent?alt=sse", headers=HEADERS, json=body()
        ) as response:
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
    assert events[-1] == {
        "error": {
            "code": 500,
            "status": "INTERNAL",
            "message": (
                "An internal error has occurred. Please retry or report in "
                "https://developers.generativeai.google/guide/troubleshooting"
            ),
        }
    }


@pytest.mark.asyncio
async def test_blocked_prompt_has_no_candidates(http, fake):
    fake.script("blocked")
    reply = (await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=body())).json()
    assert "candidates" not in reply
    assert reply["promptFeedback"]["blockReason"] == "SAFETY"
    assert reply["usageMetadata"] == {
        "promptTokenCount": 2,
        "totalTokenCount": 2,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 2}],
    }


@pytest.mark.asyncio
async def test_finish_and_max_tokens_without_parts(http, fake):
    fake.script("finish", reason="MALFORMED_FUNCTION_CALL", message="Malformed function call: x")
    fake.script("max_tokens_no_parts")
    malformed = (await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=body())).json()
    spent = (
        await http.post(
            f"{FLASH}:generateContent", headers=HEADERS, json=body(generationConfig={"maxOutputTokens": 64})
        )
    ).json()

    assert malformed["candidates"] == [
        {"finishReason": "MALFORMED_FUNCTION_CALL", "finishMessage": "Malformed function call: x"}
    ]
    assert spent["candidates"] == [{"content": {"role": "model"}, "finishReason": "MAX_TOKENS"}]
    assert spent["usageMetadata"]["thoughtsTokenCount"] == 64
    assert "candidatesTokenCount" not in spent["usageMetadata"]


@pytest.mark.asyncio
async def test_logprobs_script(http, fake):
    fake.script("logprobs", top=3, text="a b")
    candidate = (await http.post(f"{FLASH}:generateContent", headers=HEADERS, json=body())).json()["candidates"][0]
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
    embed = await http.post(
        "/v1beta/models/gemini-embedding-001:embedContent",
        headers=HEADERS,
        json={"content": {"parts": [{"text": "a"}]}},
    )
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
