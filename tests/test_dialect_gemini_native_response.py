"""Gemini-native dialect: hub -> GenerateContentResponse, and the alt=sse / JSON-array streams.

Outputs are also read back with the google-genai SDK's own types. Pure codec tests (no Django,
no DB).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.genai import errors as genai_errors
from google.genai import models as genai_models
from google.genai import types

from proxy_app.core import errors, hub
from proxy_app.dialects.gemini import request as gn
from tests.dialect_gemini_native_helpers import sdk_client, serve


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
