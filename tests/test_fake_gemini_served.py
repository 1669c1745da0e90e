"""The fake Gemini API behind its ASGI adapter, under the official google-genai SDK, and as a real
server (`python -m tests.fakes.gemini`).

Needs no database.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from google import genai
from google.genai import errors, types

from tests.fake_gemini_helpers import FLASH, KEY, body, fake, joined_text, sse_events
from tests.fakes.gemini import FakeGemini
from tests.fakes.harness import asgi_exchange, served


@pytest.fixture
def sdk(fake: FakeGemini) -> genai.Client:
    """The official SDK; a custom httpx transport is passed through `async_client_args`."""
    return genai.Client(
        api_key=KEY,
        http_options=types.HttpOptions(
            base_url="http://fake", async_client_args={"transport": httpx.MockTransport(fake.handler)}
        ),
    )


# --------------------------------------------------------------------------- the ASGI app


def http_scope(path: str, query: bytes = b"") -> dict:
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": query,
        "headers": [(b"x-goog-api-key", KEY.encode()), (b"content-type", b"application/json")],
    }


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
    scope = http_scope(f"{FLASH}:streamGenerateContent", b"alt=sse")
    sent = await asgi_exchange(fake.asgi, scope, json.dumps(body()).encode())

    start, *bodies, end = sent
    assert start["status"] == 200 and (b"content-type", b"text/event-stream") in start["headers"]
    assert len(bodies) == 6 and all(m["more_body"] for m in bodies)
    assert end == {"type": "http.response.body", "body": b"", "more_body": False}
    assert joined_text(sse_events(b"".join(m["body"] for m in bodies))) == "Hello from fake Gemini: hi there"


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
        model="gemini-2.5-flash", contents="hello", config=types.GenerateContentConfig(system_instruction="be nice")
    )

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
    chunks = [
        chunk
        async for chunk in await sdk.aio.models.generate_content_stream(
            model="gemini-2.5-flash", contents="hello world"
        )
    ]

    assert len(chunks) == 6
    assert "".join(c.text for c in chunks) == "Hello from fake Gemini: hello world"
    assert chunks[-1].usage_metadata.candidates_token_count == 9
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert fake.last_request["query"] == {"alt": "sse"}


@pytest.mark.asyncio
async def test_sdk_tool_call_round_trip_on_gemini_3(sdk, fake):
    tool = types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name="get_weather",
                parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}},
            )
        ]
    )
    config = types.GenerateContentConfig(
        tools=[tool], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)
    )
    first = await sdk.aio.models.generate_content(
        model="gemini-3-flash-preview", contents="CALL: get_weather", config=config
    )
    call = first.function_calls[0]
    history = [
        types.Content(role="user", parts=[types.Part(text="CALL: get_weather")]),
        first.candidates[0].content,
        types.Content(role="user", parts=[types.Part.from_function_response(name=call.name, response={"temp": 21})]),
    ]
    second = await sdk.aio.models.generate_content(model="gemini-3-flash-preview", contents=history, config=config)

    assert (call.name, call.args, call.id) == ("get_weather", {"city": "sample city"}, None)
    assert first.candidates[0].content.parts[0].thought_signature  # bytes, echoed back by the SDK
    assert second.text == 'Tool said: [{"temp": 21}]'


@pytest.mark.asyncio
async def test_sdk_parallel_scripted_calls(sdk, fake):
    fake.script("tool_calls", calls=[("a", {"x": 1}), ("b", {"y": 2}, "id-b")])
    response = await sdk.aio.models.generate_content(model="gemini-2.5-flash", contents="go")
    assert [(c.name, c.args, c.id) for c in response.function_calls] == [("a", {"x": 1}, None), ("b", {"y": 2}, "id-b")]


@pytest.mark.asyncio
async def test_sdk_thinking(sdk, fake):
    response = await sdk.aio.models.generate_content(
        model="gemini-2.5-flash",
        contents="think",
        config=types.GenerateContentConfig(
            thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=128)
        ),
    )

    thought, answer = response.candidates[0].content.parts
    assert thought.thought is True and thought.text == "Thinking about it..."
    assert answer.text == "Hello from fake Gemini: think"
    assert response.usage_metadata.thoughts_token_count == 5
    # the SDK mixes casings inside thinkingConfig; the fake reads both
    assert fake.last_request["json"]["generationConfig"]["thinkingConfig"] == {
        "include_thoughts": True,
        "thinking_budget": 128,
    }


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
        model="gemini-embedding-001", contents=["a", "b"], config=types.EmbedContentConfig(output_dimensionality=4)
    )
    pager = await sdk.aio.models.list(config={"page_size": 2})
    names = [model.name async for model in pager]
    model = await sdk.aio.models.get(model="gemini-2.5-pro")

    assert counted.total_tokens == 3
    assert [len(e.values) for e in embedded.embeddings] == [4, 4]
    assert fake.requests_to("batchEmbedContents")[0]["json"]["requests"][0]["model"] == "models/gemini-embedding-001"
    assert len(names) == 5 and len(fake.requests_to("list")) == 3
    assert model.display_name == "Gemini 2.5 Pro" and "generateContent" in model.supported_actions


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("script", "error_class", "code", "status"),
    [
        ({"status": 429}, errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
        ({"status": 500}, errors.ServerError, 500, "INTERNAL"),
        ({"status": 503}, errors.ServerError, 503, "UNAVAILABLE"),
    ],
)
async def test_sdk_raises_on_scripted_errors(sdk, fake, script, error_class, code, status):
    fake.script("error", **script)
    with pytest.raises(error_class) as caught:
        await sdk.aio.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert (caught.value.code, caught.value.status) == (code, status)


@pytest.mark.asyncio
async def test_sdk_bad_key_and_unknown_model(fake):
    bad = genai.Client(
        api_key="wrong",
        http_options=types.HttpOptions(
            base_url="http://fake", async_client_args={"transport": httpx.MockTransport(fake.handler)}
        ),
    )
    with pytest.raises(errors.ClientError) as caught:
        await bad.aio.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert caught.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"

    good = genai.Client(
        api_key=KEY,
        http_options=types.HttpOptions(
            base_url="http://fake", async_client_args={"transport": httpx.MockTransport(fake.handler)}
        ),
    )
    with pytest.raises(errors.ClientError) as missing:
        await good.aio.models.generate_content(model="gemini-9", contents="x")
    assert missing.value.code == 404 and missing.value.message.startswith("models/gemini-9 is not found")


@pytest.mark.asyncio
async def test_sdk_raises_on_an_error_event_mid_stream(sdk, fake):
    fake.script("error_midstream", after=2)
    seen = []
    with pytest.raises(errors.ServerError) as caught:
        async for chunk in await sdk.aio.models.generate_content_stream(model="gemini-2.5-flash", contents="hello"):
            seen.append(chunk.text)
    assert seen == ["Hello ", "from "]
    assert (caught.value.code, caught.value.message) == (503, "The model is overloaded. Please try again later.")


# --------------------------------------------------------------------------- a real server


@pytest.fixture
def served_fake():
    with served("tests.fakes.gemini", "--api-key", "served-key", "--chunk-delay", "0.05") as url:
        yield url


@pytest.mark.asyncio
async def test_standalone_server_generates_and_streams(served_fake):
    headers = {"x-goog-api-key": "served-key"}
    async with httpx.AsyncClient(base_url=served_fake, timeout=10) as client:
        unary = await client.post(f"{FLASH}:generateContent", headers=headers, json=body())
        started, arrivals = time.monotonic(), []
        async with client.stream(
            "POST", f"{FLASH}:streamGenerateContent?alt=sse", headers=headers, json=body()
        ) as stream:
            raw = b""
            async for chunk in stream.aiter_raw():
                arrivals.append(time.monotonic() - started)
                raw += chunk
        wrong_key = await client.post(f"{FLASH}:generateContent", json=body(), headers={"x-goog-api-key": KEY})

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
            async with client.stream(
                "POST", f"{FLASH}:streamGenerateContent?alt=sse", headers=headers, json=body()
            ) as stream:
                async for chunk in stream.aiter_raw():
                    received.append(chunk)
        after = await client.get("/v1beta/models", headers=headers)

    assert len(sse_events(b"".join(received))) == 2
    assert after.status_code == 200  # the server survives
