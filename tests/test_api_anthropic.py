"""End to end through the real gateway on a socket, driven by the official anthropic SDK:
messages, streams, tools, thinking, images, count_tokens, models (errors and the OpenAI-compatible
upstream are in test_api_anthropic_more.py)."""

from __future__ import annotations

import base64
import json

import anthropic
import httpx
import pytest

from tests.anthropic_helpers import PNG_1PX, TOOLS, client, generate_requests  # noqa: F401 (fixture)
from tests.conftest import UPSTREAM_KEY

pytestmark = pytest.mark.django_db(transaction=True)


def test_create_maps_system_turns_and_settings(client, fake_gemini, mapping, usage_rows, api_key):
    mapping("claude-sonnet-4-5", "gemini-2.5-flash")
    msg = client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=50,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": [{"type": "text", "text": "Hi!"}]},
            {"role": "user", "content": [{"type": "text", "text": "hi there"}]},
        ],
        # SDK 2.x dropped the sampling keywords; the API still takes them (Claude Code sends them).
        extra_body={"temperature": 0.3, "top_p": 0.9, "top_k": 20},
        stop_sequences=["END"],
        metadata={"user_id": "u1"},
        extra_headers={"anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14"},
    )
    assert msg.id.startswith("msg_") and msg.type == "message" and msg.role == "assistant"
    assert msg.model == "claude-sonnet-4-5"
    assert msg.content[0].type == "text" and "hi there" in msg.content[0].text
    assert msg.stop_reason == "end_turn" and msg.stop_sequence is None
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    assert msg.usage.cache_read_input_tokens == 0

    sent = generate_requests(fake_gemini)[-1]
    assert sent["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent["headers"]["x-goog-api-key"] == UPSTREAM_KEY and api_key not in sent["body"].decode()
    body = sent["json"]
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["generationConfig"] == {
        "temperature": 0.3,
        "topP": 0.9,
        "topK": 20,
        "maxOutputTokens": 50,
        "stopSequences": ["END"],
    }
    (row,) = usage_rows()
    assert (row.dialect, row.endpoint, row.status, row.token_source) == ("anthropic", "messages", 200, "reported")
    assert (row.requested_model, row.upstream_model) == ("claude-sonnet-4-5", "gemini-2.5-flash")
    assert (row.prompt_tokens, row.completion_tokens) == (msg.usage.input_tokens, msg.usage.output_tokens)


def test_bearer_auth_token_works_too(gateway_url, api_key, fake_gemini):
    with anthropic.Anthropic(base_url=gateway_url, auth_token=api_key, max_retries=0) as c:
        msg = c.messages.create(model="gemini-2.5-flash", max_tokens=20, messages=[{"role": "user", "content": "x"}])
    assert msg.content[0].type == "text"


def test_max_tokens_stop_reason(client, fake_gemini):
    fake_gemini.script("text", text="cut", finish_reason="MAX_TOKENS")
    msg = client.messages.create(model="gemini-2.5-flash", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert msg.stop_reason == "max_tokens"


def test_stream_events_and_final_message(client, fake_gemini, usage_rows):
    fake_gemini.script("text", chunks=["one ", "two ", "three"])
    with client.messages.stream(
        model="gemini-2.5-flash", max_tokens=100, messages=[{"role": "user", "content": "count"}]
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    names = [e.type for e in events]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == "one two three"
    assert final.content[0].text == "one two three" and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    (row,) = usage_rows()
    assert row.streamed and row.dialect == "anthropic" and row.completion_tokens == final.usage.output_tokens


def test_raw_stream_has_event_lines(gateway_url, api_key, fake_gemini):
    fake_gemini.script("text", chunks=["a", "b"])
    body = {
        "model": "gemini-2.5-flash",
        "max_tokens": 10,
        "stream": True,
        "messages": [{"role": "user", "content": "x"}],
    }
    with httpx.stream("POST", f"{gateway_url}/v1/messages", json=body, headers={"x-api-key": api_key}) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        text = resp.read().decode()
    frames = [f for f in text.split("\n\n") if f]
    names = [f.split("\n")[0].removeprefix("event: ") for f in frames]
    assert names == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    for frame, name in zip(frames, names):
        assert json.loads(frame.split("\n")[1].removeprefix("data: "))["type"] == name


def test_tool_use_round_trip(client, fake_gemini):
    fake_gemini.script(
        "tool_calls", calls=[("get_weather", {"city": "Paris"}, None), ("get_weather", {"city": "Oslo"})]
    )
    first = client.messages.create(
        model="gemini-2.5-flash",
        max_tokens=100,
        messages=[{"role": "user", "content": "weather in Paris and Oslo?"}],
        tools=TOOLS,
        tool_choice={"type": "auto"},
    )
    assert first.stop_reason == "tool_use"
    uses = [b for b in first.content if b.type == "tool_use"]
    assert [u.input for u in uses] == [{"city": "Paris"}, {"city": "Oslo"}]
    assert uses[0].id != uses[1].id
    decl = generate_requests(fake_gemini)[-1]["json"]["tools"][0]["functionDeclarations"][0]
    assert decl["name"] == "get_weather" and decl["parametersJsonSchema"]["required"] == ["city"]

    second = client.messages.create(
        model="gemini-2.5-flash",
        max_tokens=100,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "weather in Paris and Oslo?"},
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": uses[0].id, "content": "sunny"},
                    {"type": "tool_result", "tool_use_id": uses[1].id, "content": [{"type": "text", "text": "down"}]},
                    {"type": "text", "text": "and tomorrow?"},
                ],
            },
        ],
    )
    assert second.stop_reason == "end_turn"
    contents = generate_requests(fake_gemini)[-1]["json"]["contents"]
    # The results answer the calls in one content; the text after them is a user content of its own.
    assert [c["role"] for c in contents] == ["user", "model", "user", "user"]
    calls = [p["functionCall"] for p in contents[1]["parts"]]
    assert [c["args"] for c in calls] == [{"city": "Paris"}, {"city": "Oslo"}]
    responses = [p["functionResponse"] for p in contents[2]["parts"] if "functionResponse" in p]
    assert [(r["name"], r["response"]) for r in responses] == [
        ("get_weather", {"result": "sunny"}),
        ("get_weather", {"result": "down"}),
    ]
    assert contents[3]["parts"] == [{"text": "and tomorrow?"}]


def test_tool_result_error_and_forced_tool(client, fake_gemini):
    client.messages.create(
        model="gemini-2.5-flash",
        max_tokens=100,
        tools=TOOLS,
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True, "content": "boom"}],
            },
        ],
    )
    body = generate_requests(fake_gemini)[-1]["json"]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    assert body["contents"][2]["parts"][0]["functionResponse"]["response"] == {"error": "boom"}


def test_streamed_tool_use_arrives_as_input_json_delta(client, fake_gemini):
    fake_gemini.script("tool_calls", calls=[("get_weather", {"city": "Rome"}, None)])
    with client.messages.stream(
        model="gemini-2.5-flash",
        max_tokens=100,
        tools=TOOLS,
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "Rome?"}],
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    assert [d.type for d in deltas] == ["input_json_delta"]
    assert json.loads(deltas[0].partial_json) == {"city": "Rome"}
    (use,) = final.content
    assert use.type == "tool_use" and use.name == "get_weather" and use.input == {"city": "Rome"}
    assert final.stop_reason == "tool_use"
    assert generate_requests(fake_gemini)[-1]["json"]["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


def test_thinking_blocks_and_gemini3_signature_round_trip(client, fake_gemini, usage_rows):
    fake_gemini.script("tool_calls", calls=[("get_weather", {"city": "Lima"}, None)], text=None)
    first = client.messages.create(
        model="gemini-3-flash-preview",
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 2048},
        tools=TOOLS,
        messages=[{"role": "user", "content": "Lima?"}],
    )
    config = generate_requests(fake_gemini)[-1]["json"]["generationConfig"]
    # The budget becomes an effort by size, which Gemini 3 Flash reads as a thinking level.
    assert config["thinkingConfig"] == {"thinkingLevel": "MEDIUM", "includeThoughts": True}
    (use,) = [b for b in first.content if b.type == "tool_use"]
    usage_rows()  # the background writer stores the call's signature

    def follow_up(assistant_content):
        client.messages.create(
            model="gemini-3-flash-preview",
            max_tokens=4096,
            tools=TOOLS,
            messages=[
                {"role": "user", "content": "Lima?"},
                {"role": "assistant", "content": assistant_content},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "warm"}]},
            ],
        )
        return generate_requests(fake_gemini)[-1]["json"]["contents"][1]["parts"][0]

    stored = follow_up([{"type": "tool_use", "id": use.id, "name": use.name, "input": use.input}])
    signature = stored["thoughtSignature"]
    assert signature and signature != "skip_thought_signature_validator"
    # A thinking block carrying the gateway's tagged signature puts it on the next call; an
    # untagged one (Anthropic's own) is ignored and the remembered signature is used.
    thinking = {"type": "thinking", "thinking": "", "signature": "gw1.abc"}
    tagged = follow_up([thinking, {"type": "tool_use", "id": use.id, "name": use.name, "input": use.input}])
    assert tagged["thoughtSignature"] == "abc"
    foreign = {**thinking, "signature": "EqQBCkYIARgCIkB"}
    untagged = follow_up([foreign, {"type": "tool_use", "id": use.id, "name": use.name, "input": use.input}])
    assert untagged["thoughtSignature"] == signature


def test_thought_text_becomes_a_thinking_block(client, fake_gemini):
    fake_gemini.script("thinking", thought="Let me think.", text="42")
    msg = client.messages.create(
        model="gemini-2.5-flash",
        max_tokens=2048,
        thinking={"type": "adaptive"},
        messages=[{"role": "user", "content": "answer?"}],
    )
    assert [b.type for b in msg.content] == ["thinking", "text"]
    assert msg.content[0].thinking == "Let me think." and msg.content[0].signature == ""
    assert msg.content[1].text == "42"
    config = generate_requests(fake_gemini)[-1]["json"]["generationConfig"]
    assert config["thinkingConfig"] == {"includeThoughts": True}

    fake_gemini.script("thinking", thought="Hmm.", text="7")
    with client.messages.stream(
        model="gemini-2.5-flash",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "answer?"}],
    ) as stream:
        deltas = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    config = generate_requests(fake_gemini)[-1]["json"]["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingBudget": 1024, "includeThoughts": True}
    assert deltas[0] == "thinking_delta" and "text_delta" in deltas
    assert [b.type for b in final.content] == ["thinking", "text"] and final.content[0].thinking == "Hmm."


def test_thinking_on_a_model_that_cannot_think_is_dropped(client, fake_gemini):
    """Claude Code asks for thinking on its main model, whatever the alias maps to."""
    client.messages.create(
        model="gemini-2.0-flash",
        max_tokens=40000,
        thinking={"type": "enabled", "budget_tokens": 31999},
        messages=[{"role": "user", "content": "x"}],
    )
    assert "thinkingConfig" not in generate_requests(fake_gemini)[-1]["json"].get("generationConfig", {})


def test_images_base64_and_url(client, fake_gemini, web_images, settings):
    settings.IMAGE_FETCH_ALLOWED_NETWORKS = ["0.0.0.0/0"]
    web_images["/cat.png"] = (base64.b64decode(PNG_1PX), "image/png")
    client.messages.create(
        model="gemini-2.5-flash",
        max_tokens=20,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_1PX}},
                    {"type": "image", "source": {"type": "url", "url": "http://93.184.215.14/cat.png"}},
                    {"type": "text", "text": "what are these?"},
                ],
            }
        ],
    )
    parts = generate_requests(fake_gemini)[-1]["json"]["contents"][0]["parts"]
    assert parts[0] == {"inlineData": {"mimeType": "image/png", "data": PNG_1PX}}
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": PNG_1PX}}


def test_count_tokens(client, fake_gemini, usage_rows):
    count = client.messages.count_tokens(
        model="gemini-2.5-flash",
        system="Be brief.",
        tools=TOOLS,
        messages=[{"role": "user", "content": "hello there, how are you today?"}],
    )
    assert count.input_tokens > 10
    (row,) = usage_rows()
    assert (row.dialect, row.endpoint, row.token_source) == ("anthropic", "messages.count_tokens", "estimated")
    assert not generate_requests(fake_gemini)


def test_models_list_and_retrieve_in_anthropic_shape(client, fake_gemini, mapping, gateway_url, api_key):
    mapping("claude-haiku-4-5", "gemini-2.5-flash")
    models = list(client.models.list())
    assert models[0].id == "claude-haiku-4-5" and models[0].type == "model"
    assert "gemini-2.5-flash" in [m.id for m in models]
    one = client.models.retrieve("gemini-2.5-flash")
    assert one.type == "model" and one.display_name and one.created_at.year >= 1970
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("nope")
    mapping("claude-hidden", hidden=True)
    assert client.models.retrieve("claude-hidden").id == "claude-hidden"  # routable, only unlisted
    # OpenAI clients on the same path still get OpenAI's shape.
    openai_shape = httpx.get(f"{gateway_url}/v1/models", headers={"authorization": f"Bearer {api_key}"}).json()
    assert openai_shape["object"] == "list"
