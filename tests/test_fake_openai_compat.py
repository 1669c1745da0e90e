"""The fake OpenAI API behaves like OpenAI's: raw HTTP and the official openai SDK.
As an ASGI app and a real server: test_fake_openai_compat_served.

Wire facts: docs/reference/openai.md. Needs no database.
"""

from __future__ import annotations

import base64
import json
import struct
import time

import httpx
import openai
import pytest

from tests.fakes.harness import asgi_exchange, served
from tests.fakes.openai_compat import FakeOpenAI

KEY = "test-openai-key"
HEADERS = {"authorization": f"Bearer {KEY}"}
CHAT = "/v1/chat/completions"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}


def body(text: str = "hi there", **extra) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


def sse_events(raw: bytes) -> list:
    """Parse a chat stream strictly: `data: {json}\\n\\n` per event, `data: [DONE]\\n\\n` last."""
    frames = raw.split(b"\n\n")
    assert frames[-1] == b""
    events = []
    for frame in frames[:-1]:
        assert frame.startswith(b"data: ") and b"\n" not in frame
        data = frame[len(b"data: ") :]
        events.append("[DONE]" if data == b"[DONE]" else json.loads(data))
    return events


@pytest.fixture
def fake() -> FakeOpenAI:
    return FakeOpenAI()


@pytest.fixture
async def http(fake: FakeOpenAI):
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handler), base_url="http://fake") as client:
        yield client


@pytest.fixture
async def sdk(fake: FakeOpenAI):
    """The official SDK over an in-process transport (async: MockTransport here is async)."""
    client = openai.AsyncOpenAI(
        base_url="http://fake/v1",
        api_key=KEY,
        max_retries=0,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(fake.handler)),
    )
    yield client
    await client.close()


# --------------------------------------------------------------------------- raw wire shapes


async def test_stream_follows_the_canonical_sequence(http):
    raw = await http.post(CHAT, headers=HEADERS, json=body(stream=True, stream_options={"include_usage": True}))
    events = sse_events(raw.content)

    assert raw.headers["content-type"].startswith("text/event-stream")
    *chunks, usage, done = events
    assert done == "[DONE]"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert [c["choices"][0]["delta"] for c in chunks[1:-1]] == [
        {"content": w} for w in ("Hello ", "from ", "fake ", "OpenAI: ", "hi ", "there")
    ]
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert all(c["usage"] is None and c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({(c["id"], c["created"], c["model"]) for c in events[:-1]}) == 1
    assert (
        usage["choices"] == []
        and usage["usage"]["total_tokens"] == usage["usage"]["prompt_tokens"] + usage["usage"]["completion_tokens"]
    )


async def test_stream_without_include_usage_has_no_usage_at_all(http):
    events = sse_events((await http.post(CHAT, headers=HEADERS, json=body(stream=True))).content)

    assert events[-1] == "[DONE]"
    assert all("usage" not in e and e["choices"] for e in events[:-1])


async def test_whole_reply_shape(http):
    reply = (await http.post(CHAT, headers=HEADERS, json=body())).json()

    assert reply["object"] == "chat.completion" and reply["id"].startswith("chatcmpl-")
    assert reply["model"] == "gpt-4o-mini-2024-07-18"  # the resolved snapshot, like OpenAI
    assert reply["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello from fake OpenAI: hi there",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert set(reply["usage"]) == {
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "prompt_tokens_details",
        "completion_tokens_details",
    }


async def test_tool_call_fragments_are_split_across_deltas(http, fake):
    fake.script("tool_calls", calls=[("get_weather", {"city": "Paris", "days": 2}, "call_1")], fragments=3)
    events = sse_events((await http.post(CHAT, headers=HEADERS, json=body(stream=True, tools=[WEATHER]))).content)

    calls = [e["choices"][0]["delta"]["tool_calls"][0] for e in events[:-1] if "tool_calls" in e["choices"][0]["delta"]]
    assert calls[0] == {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert len(calls) == 4 and all(set(c) == {"index", "function"} for c in calls[1:])
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"city": "Paris", "days": 2}
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"


async def test_quirk_scripts(http, fake):
    fake.script("finish_on_content", text="a b")
    fake.script("no_usage", no_role=True)
    on_content = sse_events((await http.post(CHAT, headers=HEADERS, json=body(stream=True))).content)
    ignored = sse_events(
        (await http.post(CHAT, headers=HEADERS, json=body(stream=True, stream_options={"include_usage": True}))).content
    )

    assert [e["choices"][0]["delta"] for e in on_content[1:-1]] == [{"content": "a "}, {"content": "b"}]
    assert on_content[-2]["choices"][0]["finish_reason"] == "stop"
    assert ignored[0]["choices"][0]["delta"] == {"content": "Hello "}  # no role chunk
    assert ignored[-2]["choices"][0]["finish_reason"] == "stop" and ignored[-1] == "[DONE]"  # no usage chunk


async def test_reasoning_script_streams_deepseek_style(http, fake):
    fake.script("reasoning", reasoning="Think hard.", text="Ok.")
    events = sse_events((await http.post(CHAT, headers=HEADERS, json=body(stream=True))).content)

    deltas = [e["choices"][0]["delta"] for e in events[1:-1]]
    assert deltas[:2] == [
        {"content": None, "reasoning_content": "Think "},
        {"content": None, "reasoning_content": "hard."},
    ]
    assert deltas[2] == {"content": "Ok."}


async def test_n_choices_interleave_in_a_stream(http):
    events = sse_events((await http.post(CHAT, headers=HEADERS, json=body("x", n=2, stream=True))).content)

    indexes = [e["choices"][0]["index"] for e in events[:-1]]
    assert indexes[:4] == [0, 1, 0, 1]
    assert [e["choices"][0]["finish_reason"] for e in events[:-1] if e["choices"][0]["finish_reason"]] == ["stop"] * 2


async def test_error_midstream_and_break_midstream(http, fake):
    fake.script("error_midstream", after=2)
    events = sse_events((await http.post(CHAT, headers=HEADERS, json=body(stream=True))).content)
    assert len(events) == 3 and events[-1]["error"]["type"] == "server_error"  # no [DONE]

    fake.script("break_midstream", after=2)
    received = []
    with pytest.raises(httpx.ReadError):
        async with http.stream("POST", CHAT, headers=HEADERS, json=body(stream=True)) as stream:
            async for chunk in stream.aiter_raw():
                received.append(chunk)
    assert len(received) == 2 and fake.last_request["completed"] is False


async def test_invalid_url_and_bad_json(http):
    missing = await http.post("/v1/nothing", headers=HEADERS, json={})
    bad = await http.post(CHAT, headers=HEADERS, content=b"{nope")

    assert missing.status_code == 404
    assert missing.json() == {
        "error": {
            "message": "Invalid URL (POST /v1/nothing)",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    assert bad.status_code == 400 and "could not parse the JSON body" in bad.json()["error"]["message"]


@pytest.mark.parametrize(
    ("payload", "param", "fragment"),
    [
        (body(stream_options={"include_usage": True}), "stream_options", "only allowed when 'stream' is enabled"),
        ({"model": "gpt-4o-mini"}, "messages", "Missing required parameter"),
        ({"model": "gpt-4o-mini", "messages": []}, "messages", "empty array"),
        (
            {"model": "gpt-4o-mini", "messages": [{"role": "robot", "content": "x"}]},
            "messages[0].role",
            "Invalid value",
        ),
        (
            {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "c", "content": "r"}],
            },
            "messages.[1].role",
            "must be a response to a preceeding message with 'tool_calls'",
        ),
        (
            {
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "user", "content": "x"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                    },
                ],
            },
            "messages.[1].role",
            "did not have response messages: c",
        ),
        (
            {
                "model": "gpt-4o-mini",
                "messages": [
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {"id": "c", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}
                        ],
                    }
                ],
            },
            "messages[0].tool_calls[0].function.arguments",
            "expected a string, but got an object",
        ),
        (body(response_format={"type": "json_object"}), "messages", "must contain the word 'json'"),
        (body(tool_choice="required"), "tool_choice", "only allowed when 'tools' are specified"),
        ({**body(), "model": "o4-mini", "max_tokens": 5}, "max_tokens", "Use 'max_completion_tokens' instead"),
        (
            {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}],
            },
            "messages[0].content[0].image_url.url",
            "Expected a valid URL",
        ),
    ],
)
async def test_request_checks(http, payload, param, fragment):
    reply = await http.post(CHAT, headers=HEADERS, json=payload)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == param and fragment in error["message"] and error["type"] == "invalid_request_error"


async def test_strict_mode_rejects_unknown_arguments(fake, http):
    lenient = await http.post(CHAT, headers=HEADERS, json=body(top_k=5))
    fake.strict = True
    strict = await http.post(CHAT, headers=HEADERS, json=body(top_k=5))

    assert lenient.status_code == 200
    assert strict.status_code == 400
    assert strict.json()["error"]["message"] == "Unrecognized request argument supplied: top_k"


async def test_requests_are_recorded(http, fake):
    await http.post(CHAT, headers=HEADERS, json=body())
    await http.get("/v1/models", headers=HEADERS)

    chat, models = fake.requests
    assert (chat["endpoint"], chat["model"], chat["json"]["messages"][0]["content"]) == (
        "chat",
        "gpt-4o-mini",
        "hi there",
    )
    assert chat["headers"]["authorization"] == f"Bearer {KEY}" and chat["completed"] is True
    assert models["endpoint"] == "models" and fake.requests_to("chat") == [chat]


async def test_no_key_needed_when_the_fake_has_none(http):
    open_fake = FakeOpenAI(api_key=None)
    async with httpx.AsyncClient(transport=httpx.MockTransport(open_fake.handler), base_url="http://f") as client:
        reply = await client.post(CHAT, json=body())
    assert reply.status_code == 200


async def test_control_endpoints_script_and_inspect_over_http(http, fake):
    queued = await http.post("/_fake/script", json={"kind": "error", "status": 503})
    failed = await http.post(CHAT, headers=HEADERS, json=body())
    seen = (await http.get("/_fake/requests")).json()
    bad = await http.post("/_fake/script", json={"kind": "nope"})

    assert queued.json() == {"queued": 1} and failed.status_code == 503
    assert [r["endpoint"] for r in seen] == ["chat"] and bad.status_code == 400
    await http.post("/_fake/reset")
    assert fake.requests == [] and fake.scripts == []


def test_unknown_script_kind_or_target_is_refused(fake):
    with pytest.raises(ValueError, match="unknown script kind"):
        fake.script("explode")
    with pytest.raises(ValueError, match="unknown script target"):
        fake.script("text", on="generate")


# --------------------------------------------------------------------------- the official SDK


async def test_sdk_chat(sdk, fake):
    reply = await sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])

    assert reply.choices[0].message.content == "Hello from fake OpenAI: hello"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert fake.last_request["headers"]["authorization"] == f"Bearer {KEY}"
    assert fake.last_request["headers"]["user-agent"].startswith("AsyncOpenAI/Python")


async def test_sdk_stream_with_usage(sdk):
    stream = await sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hey"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from fake OpenAI: hey"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


async def test_sdk_tool_calls_whole_and_streamed(sdk, fake):
    whole = await sdk.chat.completions.create(
        model="gpt-4o-mini", tools=[WEATHER], tool_choice="required", messages=[{"role": "user", "content": "weather?"}]
    )
    call = whole.choices[0].message.tool_calls[0]
    assert whole.choices[0].finish_reason == "tool_calls" and whole.choices[0].message.content is None
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "sample city", "days": 1},
    )

    fake.script("tool_calls", calls=[("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Rome"})])
    stream = await sdk.chat.completions.create(
        model="gpt-4o-mini", tools=[WEATHER], stream=True, messages=[{"role": "user", "content": "two cities"}]
    )
    calls: dict[int, dict] = {}
    async for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(delta.index, {"id": delta.id, "name": delta.function.name, "args": ""})
            entry["args"] += delta.function.arguments or ""
    assert [(c["name"], json.loads(c["args"])) for c in calls.values()] == [
        ("get_weather", {"city": "Oslo"}),
        ("get_weather", {"city": "Rome"}),
    ]
    assert all(c["id"].startswith("call_") for c in calls.values())


async def test_sdk_tool_round_trip(sdk):
    first = await sdk.chat.completions.create(
        model="gpt-4o-mini", tools=[WEATHER], messages=[{"role": "user", "content": "CALL: get_weather"}]
    )
    call = first.choices[0].message.tool_calls[0]
    second = await sdk.chat.completions.create(
        model="gpt-4o-mini",
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "CALL: get_weather"},
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
    )
    assert second.choices[0].message.content == 'Tool said: ["sunny"]'


async def test_sdk_reasoning_fields(sdk, fake):
    fake.script("reasoning", reasoning="Because.", text="Yes.")
    fake.script("reasoning", reasoning="Ollama way.", text="Ok.", field="reasoning")
    deepseek = await sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "?"}])
    ollama = await sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "?"}])

    assert deepseek.choices[0].message.model_extra["reasoning_content"] == "Because."
    assert deepseek.usage.completion_tokens_details.reasoning_tokens > 0
    assert ollama.choices[0].message.model_extra["reasoning"] == "Ollama way."


async def test_sdk_logprobs(sdk):
    reply = await sdk.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], logprobs=True, top_logprobs=2
    )
    tokens = reply.choices[0].logprobs.content
    assert "".join(t.token for t in tokens) == reply.choices[0].message.content
    assert len(tokens[0].top_logprobs) == 2 and tokens[0].bytes == list(tokens[0].token.encode())


@pytest.mark.parametrize(
    ("script", "error_class", "code", "type_"),
    [
        (
            {"status": 400, "message": "Bad value", "param": "temperature"},
            openai.BadRequestError,
            None,
            "invalid_request_error",
        ),
        ({"status": 401}, openai.AuthenticationError, "invalid_api_key", "invalid_request_error"),
        ({"status": 403}, openai.PermissionDeniedError, "model_not_found", "invalid_request_error"),
        ({"status": 404}, openai.NotFoundError, "model_not_found", "invalid_request_error"),
        ({"status": 422, "message": "Unprocessable"}, openai.UnprocessableEntityError, None, "invalid_request_error"),
        ({"status": 429}, openai.RateLimitError, "rate_limit_exceeded", "requests"),
        ({"status": 500}, openai.InternalServerError, None, "server_error"),
        ({"status": 503}, openai.InternalServerError, None, "server_error"),
    ],
)
async def test_sdk_raises_on_scripted_errors(sdk, fake, script, error_class, code, type_):
    fake.script("error", **script)
    with pytest.raises(error_class) as info:
        await sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert (info.value.status_code, info.value.code, info.value.type) == (script["status"], code, type_)
    if script["status"] == 429:
        assert info.value.response.headers["retry-after"] == "20"
        assert info.value.response.headers["retry-after-ms"] == "20000"


async def test_sdk_bad_key_unknown_model_and_embedding_model(fake):
    bad = openai.AsyncOpenAI(
        base_url="http://fake/v1",
        api_key="sk-wrong-0123456789",
        max_retries=0,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(fake.handler)),
    )
    with pytest.raises(openai.AuthenticationError) as info:
        await bad.models.list()
    assert info.value.code == "invalid_api_key" and "sk-wrong-0123456789" not in info.value.message
    assert info.value.body["message"].startswith("Incorrect API key provided: sk-****")

    good = openai.AsyncOpenAI(
        base_url="http://fake/v1",
        api_key=KEY,
        max_retries=0,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(fake.handler)),
    )
    with pytest.raises(openai.NotFoundError) as missing:
        await good.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    assert missing.value.body["message"] == "The model `gpt-9` does not exist or you do not have access to it."
    with pytest.raises(openai.NotFoundError, match="not a chat model"):
        await good.chat.completions.create(model="text-embedding-3-small", messages=[{"role": "user", "content": "x"}])


async def test_sdk_raises_on_an_error_event_mid_stream(sdk, fake):
    fake.script("error_midstream", after=3, message="The server had an error while processing your request.")
    stream = await sdk.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True
    )
    seen = []
    with pytest.raises(openai.APIError) as info:
        async for chunk in stream:
            seen.append(chunk.choices[0].delta.content)
    assert seen == ["", "Hello ", "from "]
    assert info.value.message == "The server had an error while processing your request."


async def test_sdk_sees_a_broken_stream_as_a_connection_error(sdk, fake):
    fake.script("break_midstream", after=2)
    stream = await sdk.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True
    )
    with pytest.raises(openai.APIConnectionError):
        async for _ in stream:
            pass


async def test_sdk_embeddings_float_and_base64(sdk, fake):
    floats = await sdk.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"], dimensions=8, encoding_format="float"
    )
    decoded = await sdk.embeddings.create(model="text-embedding-3-small", input=["a", "b"], dimensions=8)

    assert fake.last_request["json"]["encoding_format"] == "base64"  # the SDK's own default
    assert [d.index for d in floats.data] == [0, 1] and len(floats.data[0].embedding) == 8
    assert decoded.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)
    assert sum(v * v for v in floats.data[0].embedding) == pytest.approx(1.0)  # unit length, like OpenAI
    assert floats.usage.prompt_tokens == floats.usage.total_tokens == 2


async def test_embeddings_token_inputs_limits_and_default_size(http):
    tokens = await http.post(
        "/v1/embeddings",
        headers=HEADERS,
        json={"model": "text-embedding-3-small", "input": [[1, 2], [3]], "encoding_format": "base64"},
    )
    full = await http.post("/v1/embeddings", headers=HEADERS, json={"model": "text-embedding-3-small", "input": "x"})
    empty = await http.post("/v1/embeddings", headers=HEADERS, json={"model": "text-embedding-3-small", "input": ""})
    ada = await http.post(
        "/v1/embeddings", headers=HEADERS, json={"model": "text-embedding-ada-002", "input": "x", "dimensions": 8}
    )

    packed = base64.b64decode(tokens.json()["data"][1]["embedding"])
    assert len(struct.unpack(f"<{len(packed) // 4}f", packed)) == 1536
    assert len(full.json()["data"][0]["embedding"]) == 1536
    assert empty.status_code == 400 and empty.json()["error"]["message"].startswith("'$.input' is invalid")
    assert (
        ada.status_code == 400
        and ada.json()["error"]["message"] == "This model does not support specifying dimensions."
    )


async def test_sdk_models_list_and_retrieve(sdk):
    models = [m.id async for m in sdk.models.list()]
    one = await sdk.models.retrieve("gpt-4o-mini")

    assert "gpt-4o-mini" in models and "text-embedding-3-small" in models
    assert (one.id, one.object, one.owned_by) == ("gpt-4o-mini", "model", "system")
    with pytest.raises(openai.NotFoundError) as info:
        await sdk.models.retrieve("gpt-9")
    assert info.value.code == "model_not_found"


async def test_raw_and_slow_scripts(http, fake):
    fake.script("raw", status=418, body="teapot", content_type="text/plain", headers={"x-odd": "1"})
    fake.script("slow", delay=0.2, text="late")
    odd = await http.post(CHAT, headers=HEADERS, json=body())
    started = time.monotonic()
    late = await http.post(CHAT, headers=HEADERS, json=body())

    assert (odd.status_code, odd.text, odd.headers["x-odd"]) == (418, "teapot", "1")
    assert late.json()["choices"][0]["message"]["content"] == "late" and time.monotonic() - started >= 0.2
