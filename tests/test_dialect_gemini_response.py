"""Gemini upstream codec (proxy_app.dialects.gemini): GenerateContentResponse and stream chunks -> hub.
No DB.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from proxy_app.core.errors import GatewayError, RateLimited, UpstreamError, UpstreamUnavailable
from proxy_app.core.hub import ChatResponse, Choice, ChoiceDelta, StreamEvent, TokenLogprob, ToolCall, Usage
from proxy_app.upstreams.gemini import codec as gemini

SYNTHETIC_ID = re.compile(r"call_gw_[A-Za-z0-9]{20}")


# ------------------------------------------------------------------------------------------------
# GenerateContentResponse → hub


def candidate(*parts: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"content": {"role": "model", "parts": list(parts)}, **fields}


def test_parse_full_response() -> None:
    body = {
        "candidates": [
            candidate(
                {"text": "Let me think", "thought": True},
                {"text": " more.", "thought": True},
                {"text": "Hel"},
                {"text": "lo"},
                {"text": "!", "thought": False},
                finishReason="STOP",
                index=0,
            )
        ],
        "usageMetadata": {
            "promptTokenCount": 10,
            "candidatesTokenCount": 3,
            "thoughtsTokenCount": 7,
            "totalTokenCount": 20,
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp-1",
    }
    assert gemini.parse_generate_response(body) == ChatResponse(
        choices=[Choice(index=0, text="Hello!", reasoning="Let me think more.", finish_reason="stop")],
        usage=Usage(prompt_tokens=10, completion_tokens=10, reasoning_tokens=7),
        response_id="resp-1",
    )


def test_parse_function_calls() -> None:
    body = {
        "candidates": [
            candidate(
                {
                    "functionCall": {"id": "call_real", "name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": "c2ln",
                },
                {"functionCall": {"name": "get_time"}},
                {"functionCall": {"name": "get_time"}},
                finishReason="STOP",
            )
        ]
    }
    choice = gemini.parse_generate_response(body).choices[0]
    first, second, third = choice.tool_calls
    assert first == ToolCall(id="call_real", name="get_weather", arguments={"city": "Paris"}, thought_signature="c2ln")
    assert (second.name, second.arguments, second.thought_signature) == ("get_time", {}, None)
    assert SYNTHETIC_ID.fullmatch(second.id) and SYNTHETIC_ID.fullmatch(third.id)
    assert second.id != third.id
    assert (choice.text, choice.finish_reason, choice.finish_message) == ("", "tool_calls", "")


NO_SIGNAL = "the model produced a malformed function call"


@pytest.mark.parametrize(
    ("reason", "parts", "extra", "finish", "message"),
    [
        ("STOP", [{"text": "hi"}], {}, "stop", ""),
        ("STOP", [{"functionCall": {"id": "x", "name": "f"}}], {}, "tool_calls", ""),
        (None, [{"functionCall": {"id": "x", "name": "f"}}], {}, "tool_calls", ""),
        ("MAX_TOKENS", [{"text": "cut"}], {}, "length", ""),
        ("MAX_TOKENS", [], {}, "length", ""),
        *[
            (r, [], {}, "content_filter", "")
            for r in (
                "SAFETY",
                "RECITATION",
                "LANGUAGE",
                "BLOCKLIST",
                "PROHIBITED_CONTENT",
                "SPII",
                "IMAGE_SAFETY",
                "IMAGE_PROHIBITED_CONTENT",
                "IMAGE_RECITATION",
            )
        ],
        ("MALFORMED_FUNCTION_CALL", [], {}, "error", NO_SIGNAL),
        (
            "MALFORMED_FUNCTION_CALL",
            [],
            {"finishMessage": "Malformed function call: print(x"},
            "error",
            "Malformed function call: print(x",
        ),
        ("UNEXPECTED_TOOL_CALL", [], {}, "error", "the model called a tool that was not enabled"),
        ("TOO_MANY_TOOL_CALLS", [], {}, "error", "the model made too many tool calls"),
        ("OTHER", [{"text": "x"}], {}, "stop", ""),
        ("FINISH_REASON_UNSPECIFIED", [], {}, "stop", ""),
        ("IMAGE_OTHER", [], {}, "stop", ""),
        ("NO_IMAGE", [], {}, "stop", ""),
        ("SOMETHING_NEW", [], {}, "stop", ""),
        (None, [{"text": "x"}], {}, "stop", ""),
    ],
)
def test_finish_reasons(reason: str | None, parts: list, extra: dict, finish: str, message: str) -> None:
    raw = candidate(*parts, **extra)
    if reason is not None:
        raw["finishReason"] = reason
    choice = gemini.parse_generate_response({"candidates": [raw]}).choices[0]
    assert (choice.finish_reason, choice.finish_message) == (finish, message)


@pytest.mark.parametrize(
    "body",
    [
        {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 8}},
        {
            "candidates": [],
            "promptFeedback": {"blockReason": "PROHIBITED_CONTENT", "safetyRatings": []},
            "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
        },
    ],
)
def test_blocked_prompt(body: dict) -> None:
    assert gemini.parse_generate_response(body) == ChatResponse(
        choices=[Choice(index=0, finish_reason="content_filter")],
        usage=Usage(prompt_tokens=8),
    )


@pytest.mark.parametrize(
    ("raw", "choice"),
    [
        ({"finishReason": "SAFETY", "index": 0}, Choice(index=0, finish_reason="content_filter")),
        ({"content": {"role": "model"}, "finishReason": "MAX_TOKENS"}, Choice(index=0, finish_reason="length")),
        ({"content": {}, "finishReason": "STOP"}, Choice(index=0)),
        ({}, Choice(index=0)),
        (
            {"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "x"}}, {"text": "ok"}]}},
            Choice(index=0, text="ok"),
        ),
        (
            candidate(
                {"text": "Computing:"},
                {"executableCode": {"language": "PYTHON", "code": "print(1+1)"}},
                {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "2\n"}},
                {"text": "The answer is 2."},
            ),
            Choice(index=0, text="Computing:\n```python\nprint(1+1)\n```\n\n```output\n2\n\n```\nThe answer is 2."),
        ),
        (candidate({"executableCode": {"code": "x"}}), Choice(index=0, text="\n```\nx\n```\n")),
    ],
)
def test_candidate_defaults(raw: dict, choice: Choice) -> None:
    response = gemini.parse_generate_response({"candidates": [raw]})
    assert response == ChatResponse(choices=[choice], usage=Usage(source="estimated"))


def test_missing_index_means_position() -> None:
    body = {"candidates": [candidate({"text": "a"}), candidate({"text": "b"}, index=1), candidate({"text": "c"})]}
    assert [(c.index, c.text) for c in gemini.parse_generate_response(body).choices] == [(0, "a"), (1, "b"), (2, "c")]


@pytest.mark.parametrize(
    ("meta", "usage"),
    [
        (None, Usage(source="estimated")),
        ({}, Usage()),
        ({"promptTokenCount": 12, "candidatesTokenCount": 5, "totalTokenCount": 17}, Usage(12, 5)),
        (
            {
                "promptTokenCount": 1294,
                "candidatesTokenCount": 125,
                "thoughtsTokenCount": 1071,
                "totalTokenCount": 2490,
            },
            Usage(prompt_tokens=1294, completion_tokens=1196, reasoning_tokens=1071),
        ),
        (
            {
                "promptTokenCount": 100,
                "toolUsePromptTokenCount": 40,
                "candidatesTokenCount": 10,
                "cachedContentTokenCount": 64,
                "totalTokenCount": 150,
            },
            Usage(prompt_tokens=140, completion_tokens=10, cached_tokens=64),
        ),
        ({"promptTokenCount": "7"}, Usage(prompt_tokens=7)),
    ],
)
def test_usage(meta: dict | None, usage: Usage) -> None:
    assert gemini.parse_usage(meta) == usage


def test_usage_total_matches_gemini_total() -> None:
    meta = {
        "promptTokenCount": 100,
        "toolUsePromptTokenCount": 40,
        "candidatesTokenCount": 10,
        "thoughtsTokenCount": 5,
        "totalTokenCount": 155,
    }
    assert gemini.parse_usage(meta).total_tokens == 155


def test_logprobs() -> None:
    raw = candidate(
        {"text": "Hi!"},
        finishReason="STOP",
        logprobsResult={
            "topCandidates": [
                {
                    "candidates": [
                        {"token": "Hi", "tokenId": 1, "logProbability": -0.1},
                        {"token": "Hello", "logProbability": -2.5},
                    ]
                },
                {"candidates": [{"token": "!"}]},
            ],
            "chosenCandidates": [
                {"token": "Hi", "tokenId": 1, "logProbability": -0.1},
                {"token": "!"},
                {"token": "\n", "logProbability": -3},
            ],
            "logProbabilitySum": -3.1,
        },
    )
    choice = gemini.parse_generate_response({"candidates": [raw]}).choices[0]
    assert choice.logprobs == [
        TokenLogprob("Hi", -0.1, [("Hi", -0.1), ("Hello", -2.5)]),
        TokenLogprob("!", 0.0, [("!", 0.0)]),
        TokenLogprob("\n", -3.0, []),
    ]


def test_no_logprobs_result_means_none_and_empty_result_means_empty_list() -> None:
    without, empty = gemini.parse_generate_response(
        {"candidates": [candidate({"text": "a"}), candidate({"text": "b"}, logprobsResult={})]}
    ).choices
    assert (without.logprobs, empty.logprobs) == (None, [])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "malformed Gemini reply: response should be an object"),
        ({"candidates": {}}, "malformed Gemini reply: candidates should be a list"),
        ({"candidates": ["x"]}, "malformed Gemini reply: candidate should be an object"),
        (
            {"candidates": [{"content": {"parts": "hi"}}]},
            "malformed Gemini reply: candidate.content.parts should be a list",
        ),
        ({"candidates": [candidate({"text": 5})]}, "malformed Gemini reply: part.text should be a string"),
        (
            {"candidates": [candidate({"functionCall": {"name": "f", "args": [1]}})]},
            "malformed Gemini reply: functionCall.args should be an object",
        ),
        ({"candidates": [{"index": True}]}, "malformed Gemini reply: candidate.index should be an integer"),
        ({"candidates": [{"finishReason": 1}]}, "malformed Gemini reply: finishReason should be a string"),
        (
            {"candidates": [{}], "usageMetadata": {"promptTokenCount": "many"}},
            "malformed Gemini reply: usageMetadata.promptTokenCount should be an integer",
        ),
        ({"candidates": [{}], "usageMetadata": []}, "malformed Gemini reply: usageMetadata should be an object"),
        (
            {"candidates": [{"logprobsResult": {"chosenCandidates": [{"logProbability": "x"}]}}]},
            "malformed Gemini reply: logProbability should be a number",
        ),
        ({"promptFeedback": "blocked"}, "malformed Gemini reply: promptFeedback should be an object"),
        ({}, "Gemini returned no candidates and no block reason"),
        ({"candidates": []}, "Gemini returned no candidates and no block reason"),
    ],
)
def test_malformed_response(body: Any, message: str) -> None:
    with pytest.raises(UpstreamError) as info:
        gemini.parse_generate_response(body)
    assert (type(info.value), info.value.status, info.value.message) == (UpstreamError, 502, message)


# ------------------------------------------------------------------------------------------------
# stream chunks


@pytest.mark.parametrize(
    ("chunk", "event"),
    [
        pytest.param(
            {"candidates": [candidate({"text": "Hel"}, index=0)], "modelVersion": "x"},
            StreamEvent(deltas=[ChoiceDelta(index=0, text="Hel")]),
            id="text-no-usage",
        ),
        pytest.param(
            {"candidates": [candidate({"text": "Hel"})], "usageMetadata": {"promptTokenCount": 4}},
            StreamEvent(deltas=[ChoiceDelta(index=0, text="Hel")], usage=Usage(prompt_tokens=4)),
            id="text-running-usage",
        ),
        pytest.param(
            {"candidates": [candidate({"text": "hmm", "thought": True})]},
            StreamEvent(deltas=[ChoiceDelta(index=0, reasoning="hmm")]),
            id="thought",
        ),
        pytest.param(
            {
                "candidates": [candidate({"text": ""}, finishReason="STOP")],
                "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2},
            },
            StreamEvent(deltas=[ChoiceDelta(index=0, finish_reason="stop")], usage=Usage(4, 2)),
            id="final-stop",
        ),
        pytest.param(
            {
                "candidates": [
                    candidate({"functionCall": {"id": "c1", "name": "f", "args": {"a": 1}}, "thoughtSignature": "sig"})
                ]
            },
            StreamEvent(deltas=[ChoiceDelta(index=0, tool_calls=[ToolCall("c1", "f", {"a": 1}, "sig")])]),
            id="call-without-finish",
        ),
        pytest.param(
            {"candidates": [candidate({"functionCall": {"id": "c1", "name": "f"}}, finishReason="STOP")]},
            StreamEvent(deltas=[ChoiceDelta(0, tool_calls=[ToolCall("c1", "f", {})], finish_reason="tool_calls")]),
            id="call-and-stop-same-chunk",
        ),
        pytest.param(
            {"candidates": [{"finishReason": "STOP", "index": 0}]},
            StreamEvent(deltas=[ChoiceDelta(index=0, finish_reason="stop")]),
            id="stop-after-earlier-call-caller-upgrades",
        ),
        pytest.param(
            {"candidates": [{"finishReason": "MAX_TOKENS"}]},
            StreamEvent(deltas=[ChoiceDelta(index=0, finish_reason="length")]),
            id="max-tokens-no-parts",
        ),
        pytest.param(
            {"candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL", "finishMessage": "bad call"}]},
            StreamEvent(deltas=[ChoiceDelta(index=0, finish_reason="error", finish_message="bad call")]),
            id="malformed-call",
        ),
        pytest.param(
            {"candidates": [candidate({"text": "a"}), candidate({"text": "b"}, index=1, finishReason="SAFETY")]},
            StreamEvent(
                deltas=[ChoiceDelta(index=0, text="a"), ChoiceDelta(index=1, text="b", finish_reason="content_filter")]
            ),
            id="two-candidates",
        ),
        pytest.param(
            {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}},
            StreamEvent(deltas=[ChoiceDelta(index=0, finish_reason="content_filter")], usage=Usage(prompt_tokens=3)),
            id="blocked-prompt",
        ),
        pytest.param(
            {"usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 9}},
            StreamEvent(usage=Usage(3, 9)),
            id="usage-only",
        ),
        pytest.param({}, StreamEvent(), id="empty"),
    ],
)
def test_stream_chunks(chunk: dict, event: StreamEvent) -> None:
    assert gemini.parse_stream_chunk(chunk) == event


@pytest.mark.parametrize(
    ("chunk", "error_type", "status", "message", "retry_after"),
    [
        (
            {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}},
            UpstreamUnavailable,
            503,
            "The model is overloaded.",
            None,
        ),
        (
            [
                {
                    "error": {
                        "code": 429,
                        "message": "quota",
                        "status": "RESOURCE_EXHAUSTED",
                        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "9s"}],
                    }
                }
            ],
            RateLimited,
            429,
            "quota",
            9,
        ),
        (
            {"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}},
            UpstreamError,
            502,
            "Internal error",
            None,
        ),
        ({"error": {"message": "no code"}}, UpstreamError, 502, "no code", None),
        ({"error": "boom"}, UpstreamError, 502, "malformed Gemini reply: error should be an object", None),
    ],
)
def test_stream_error_chunks(chunk: Any, error_type: type, status: int, message: str, retry_after: int | None) -> None:
    with pytest.raises(GatewayError) as info:
        gemini.parse_stream_chunk(chunk)
    assert (type(info.value), info.value.status, info.value.message, info.value.retry_after) == (
        error_type,
        status,
        message,
        retry_after,
    )
