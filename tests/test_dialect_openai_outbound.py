"""The OpenAI upstream codec's pure tables (proxy_app.dialects.openai_outbound): request bodies,
replies, stream reading, error mapping. No fake server, no DB.
"""

from __future__ import annotations

import pytest

from proxy_app.core import hub
from proxy_app.core.errors import (
    InvalidRequest,
    NotFound,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from proxy_app.upstreams.openai_compat import codec
from tests.openai_compat_helpers import chat_request

# --------------------------------------------------------------------------- codec tables


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        (hub.ToolChoice("auto"), "auto"),
        (hub.ToolChoice("none", ["f"]), "none"),
        (hub.ToolChoice("required"), "required"),
        (hub.ToolChoice("required", ["f"]), {"type": "function", "function": {"name": "f"}}),
        (
            hub.ToolChoice("required", ["f", "g"]),
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [{"type": "function", "function": {"name": n}} for n in ("f", "g")],
                },
            },
        ),
        (
            hub.ToolChoice("auto", ["f"]),
            {
                "type": "allowed_tools",
                "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "function": {"name": "f"}}]},
            },
        ),
    ],
)
def test_build_tool_choice(choice, wire):
    assert codec.build_chat_request(chat_request(tool_choice=choice))["tool_choice"] == wire


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [
        ({"thinkingBudget": 0}, "none"),
        ({"thinkingBudget": 1024}, "low"),
        ({"thinkingBudget": 5000}, "medium"),
        ({"thinkingBudget": 20000}, "high"),
        ({"thinkingBudget": -1}, None),
        ({"thinkingLevel": "MINIMAL"}, "minimal"),
        ({"includeThoughts": True}, None),
    ],
)
def test_gemini_thinking_config_becomes_reasoning_effort(thinking, effort):
    body = codec.build_chat_request(chat_request(thinking_config=thinking))
    assert body.get("reasoning_effort") == effort and "extra_body" not in body


def test_build_request_details():
    req = chat_request(stream=True, response_format=hub.ResponseFormat("json_object"))
    req.messages = [
        hub.Message("user", [hub.Part("text", text="a"), hub.Part("text", text="b")]),
        hub.Message("user", [hub.Part("media_url", url="https://x.test/cat.png")]),
        hub.Message(
            "assistant",
            [hub.Part("text", text="sure")],
            tool_calls=[hub.ToolCall("c1", "f", {}, thought_signature="sig")],
        ),
        hub.Message("user", [hub.Part("media", mime_type="audio/mp3", data="AAAA")]),
    ]
    body = codec.build_chat_request(req)

    assert body["stream_options"] == {"include_usage": True} and body["response_format"] == {"type": "json_object"}
    assert body["messages"][0]["content"] == [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert body["messages"][1]["content"] == [{"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}}]
    assert body["messages"][2] == {
        "role": "assistant",
        "content": "sure",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "f", "arguments": "{}"},
                "extra_content": {"google": {"thought_signature": "sig"}},
            }
        ],
    }
    assert body["messages"][3]["content"][0]["input_audio"]["format"] == "mp3"
    assert "n" not in body and "logprobs" not in body and "max_tokens" not in body
    with pytest.raises(InvalidRequest) as info:
        codec.build_chat_request(chat_request(cached_content="cachedContents/abc"))
    assert info.value.param == "cached_content"


def test_parse_chat_response_tolerance():
    resp = codec.parse_chat_response(
        {
            "id": "x",
            "choices": [
                {
                    "message": {
                        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                        "reasoning": "why",
                    },
                    "finish_reason": None,
                },
                {
                    "index": 1,
                    "message": {"content": None, "function_call": {"name": "f", "arguments": '{"a":1}'}},
                    "finish_reason": "function_call",
                },
                {
                    "index": 2,
                    "message": {
                        "content": None,
                        "tool_calls": [
                            {
                                "function": {"name": "g", "arguments": ""},
                                "extra_content": {"google": {"thought_signature": "s"}},
                            }
                        ],
                    },
                    "finish_reason": "stop",
                },
                {"index": 3, "message": {"content": "", "refusal": "I can't."}, "finish_reason": "content_filter"},
                {"index": 4, "message": {"content": "cut"}, "finish_reason": "length"},
                {"index": 5, "message": {"content": "odd"}, "finish_reason": "eos"},
            ],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 5,
                "prompt_cache_hit_tokens": 4,
                "completion_tokens_details": {"reasoning_tokens": 2},
                "prompt_tokens_details": None,
            },
        }
    )

    a, b, c, d, e, f = resp.choices
    assert (a.text, a.reasoning, a.finish_reason) == ("ab", "why", "stop")
    assert (b.finish_reason, b.tool_calls[0].name, b.tool_calls[0].arguments) == ("tool_calls", "f", {"a": 1})
    assert b.tool_calls[0].id.startswith("call_gw_")
    assert (c.finish_reason, c.tool_calls[0].arguments, c.tool_calls[0].thought_signature) == ("tool_calls", {}, "s")
    assert (d.text, d.finish_reason) == ("I can't.", "content_filter")
    assert (e.finish_reason, f.finish_reason) == ("length", "stop")
    assert resp.usage == hub.Usage(prompt_tokens=10, completion_tokens=5, reasoning_tokens=2, cached_tokens=4)


@pytest.mark.parametrize(
    "body",
    [
        {"choices": []},
        {"choices": "x"},
        {"choices": [{"message": {"content": 5}}]},
        {"choices": [{"message": {}}], "usage": {"prompt_tokens": "many"}},
    ],
)
def test_parse_chat_response_rejects_malformed_replies(body):
    with pytest.raises(UpstreamError):
        codec.parse_chat_response(body)


def test_stream_reader_edge_cases():
    reader = codec.StreamReader()
    first = reader.feed(
        {
            "id": "r1",
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": '{"x"'}}]}}
            ],
        }
    )
    reader.feed({"choices": [{"index": 0, "delta": {"tool_calls": [{"function": {"arguments": ":1}"}}]}}]})
    reader.feed(
        {
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{"id": "b", "function": {"name": "g", "arguments": {"y": 2}}}]}}
            ]
        }
    )
    usage = reader.feed(
        {
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4},
        }
    )

    assert first.deltas[0].tool_calls == [] and not first.deltas[0].finish_reason and reader.response_id == "r1"
    done = usage.deltas[0]
    assert done.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in done.tool_calls] == [("a", "f", {"x": 1}), ("b", "g", {"y": 2})]
    assert usage.usage.total_tokens == 7 and reader.finished
    assert (
        reader.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}).deltas[0].finish_reason is None
    )


def test_stream_reader_end_flushes_unfinished_calls():
    reader = codec.StreamReader()
    reader.feed({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f"}}]}}]})
    tail = reader.end()

    assert [(c.id, c.arguments) for c in tail.deltas[0].tool_calls] == [("a", {})]
    assert tail.deltas[0].finish_reason is None and not reader.finished
    assert reader.end().deltas == []


def test_stream_reader_logprobs_and_in_band_errors():
    reader = codec.StreamReader()
    event = reader.feed(
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": "Hi"},
                    "logprobs": {
                        "content": [
                            {"token": "Hi", "logprob": -0.5, "top_logprobs": [{"token": "Hi", "logprob": -0.5}]}
                        ]
                    },
                }
            ]
        }
    )
    assert event.deltas[0].logprobs == [hub.TokenLogprob("Hi", -0.5, [("Hi", -0.5)])]
    with pytest.raises(UpstreamUnavailable, match="overloaded"):
        reader.feed({"error": {"message": "overloaded", "type": "overloaded_error"}})
    with pytest.raises(UpstreamError, match="malformed upstream reply"):
        reader.feed({"choices": [{"delta": {"content": ["x"]}}]})


@pytest.mark.parametrize(
    ("status", "body", "error_class", "message"),
    [
        (
            400,
            {"object": "error", "message": "vLLM says no", "type": "BadRequestError", "code": 400},
            InvalidRequest,
            "vLLM says no",
        ),
        (
            422,
            {"detail": [{"loc": ["body", "model"], "msg": "Field required"}]},
            InvalidRequest,
            '[{"loc": ["body", "model"], "msg": "Field required"}]',
        ),
        (
            400,
            {"error": {"message": "API key not valid. Please pass a valid API key."}},
            UpstreamError,
            "upstream authentication failed",
        ),
        (
            404,
            {"error": 'model "x" not found, try pulling it first'},
            NotFound,
            'model "x" not found, try pulling it first',
        ),
        (500, "<html>Internal</html>", UpstreamError, "OpenAI-compatible upstream answered HTTP 500"),
        (408, "", UpstreamTimeout, "OpenAI-compatible upstream answered HTTP 408"),
        (529, {"error": {"message": "Overloaded"}}, UpstreamError, "Overloaded"),
    ],
)
def test_parse_error_table(status, body, error_class, message):
    error = codec.parse_error(status, body)
    assert type(error) is error_class and error.message == message


@pytest.mark.parametrize(
    ("retry_after", "retry_after_ms", "seconds"),
    [
        ("12", None, 12),
        ("1.2", None, 2),
        (None, "250", 1),
        ("junk", None, 30),
        (None, None, 30),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None, 0),
    ],
)
def test_retry_after_values(retry_after, retry_after_ms, seconds):
    error = codec.parse_error(429, {}, retry_after, retry_after_ms=retry_after_ms)
    assert isinstance(error, RateLimited) and error.retry_after == seconds


def test_embed_and_model_list_codec():
    assert codec.build_embed_request(hub.EmbedRequest(model="a", inputs=["x"])) == {
        "model": "a",
        "input": ["x"],
        "encoding_format": "float",
    }
    resp = codec.parse_embed_response(
        {"data": [{"embedding": [1]}, {"embedding": [2]}], "usage": {"prompt_tokens": 3, "total_tokens": 3}}
    )
    assert resp.vectors == [[1.0], [2.0]] and resp.usage == hub.Usage(prompt_tokens=3)
    assert codec.parse_model_list([{"id": "llama3"}]) == [hub.ModelInfo(id="llama3", display_name="llama3")]
    with pytest.raises(UpstreamError):
        codec.parse_model_list({"data": [{"object": "model"}]})


def test_usage_of_and_chunk_chars():
    assert codec.usage_of({"choices": []}) is None
    assert codec.usage_of({"usage": {"prompt_tokens": "bad"}}) is None
    assert codec.usage_of({"usage": {"prompt_tokens": 1, "completion_tokens": 2}}).total_tokens == 3
    chunk = {
        "choices": [
            {"delta": {"content": "ab", "reasoning_content": "c", "tool_calls": [{"function": {"arguments": "{}"}}]}}
        ]
    }
    assert codec.chunk_chars(chunk) == 5 and codec.chunk_chars({"choices": None}) == 0
