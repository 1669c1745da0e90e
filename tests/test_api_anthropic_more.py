"""End to end through the real gateway with the anthropic SDK: errors in Anthropic's shape (before
and after a stream started), the OpenAI-compatible upstream, Claude Code's probes."""

from __future__ import annotations

import time

import anthropic
import httpx
import pytest

from proxy_app.call import signatures
from tests.anthropic_helpers import TOOLS, client, generate_requests  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def test_errors_in_anthropic_shape(client, gateway_url, api_key, fake_gemini):
    resp = httpx.post(
        f"{gateway_url}/v1/messages",
        headers={"x-api-key": api_key, "anthropic-version": "2023-06-01"},
        json={"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}]},
    )
    assert resp.status_code == 400
    assert resp.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
    }
    bad = anthropic.Anthropic(base_url=gateway_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as info:
        bad.messages.create(model="gemini-2.5-flash", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    bad.close()
    assert info.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.create(model="claude-nope", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(
            model="gemini-2.5-flash",
            max_tokens=5,
            messages=[{"role": "user", "content": "x"}],
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
        )
    unknown = httpx.post(f"{gateway_url}/v1/messages/batches", headers={"x-api-key": api_key}, json={})
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found_error"
    wrong_method = httpx.get(f"{gateway_url}/v1/messages", headers={"x-api-key": api_key})
    assert wrong_method.status_code == 405 and wrong_method.json()["type"] == "error"


def test_upstream_quota_is_rate_limit_error_with_retry_after(client, fake_gemini):
    fake_gemini.script("error", status=429)
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model="gemini-2.5-flash", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert info.value.body["error"]["type"] == "rate_limit_error"
    assert info.value.response.headers["retry-after"]


def test_error_after_stream_started_is_an_error_event(client, fake_gemini, usage_rows):
    fake_gemini.script("error_midstream", after=1, status=503)
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        client.messages.stream(
            model="gemini-2.5-flash", max_tokens=50, messages=[{"role": "user", "content": "tell me a long story"}]
        ) as stream,
    ):
        for _ in stream:
            pass
    assert info.value.body["error"]["type"] in ("overloaded_error", "api_error")
    assert usage_rows()[-1].status != 200


def test_openai_compatible_upstream(client, fake_openai, mapping, usage_rows):
    mapping("claude-compat", "gpt-4o-mini", upstream="compat")
    msg = client.messages.create(
        model="claude-compat",
        max_tokens=30,
        system="Be brief.",
        messages=[{"role": "user", "content": "hello compat"}],
    )
    assert msg.content[0].type == "text" and msg.content[0].text
    assert msg.stop_reason == "end_turn"
    sent = fake_openai.requests[-1]["json"]
    assert sent["model"] == "gpt-4o-mini" and sent["max_tokens"] == 30
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    with client.messages.stream(
        model="claude-compat", max_tokens=30, messages=[{"role": "user", "content": "stream please"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].text == text
    rows = usage_rows()
    assert [r.dialect for r in rows] == ["anthropic", "anthropic"] and rows[0].upstream_name == "compat"
    assert rows[0].prompt_tokens == msg.usage.input_tokens


def test_claude_code_probes_answer_without_a_key(gateway_url):
    for method, url in [("HEAD", "/"), ("HEAD", "/api/hello"), ("GET", "/api/hello")]:
        assert httpx.request(method, f"{gateway_url}{url}").status_code == 200, (method, url)


def test_openai_compatible_upstream_tools_and_reasoning(client, fake_openai, mapping):
    mapping("claude-compat", "gpt-4o-mini", upstream="compat")
    fake_openai.script("tool_calls", calls=[("get_weather", {"city": "Bern"}, "call_abc")], fragments=3)
    with client.messages.stream(
        model="claude-compat",
        max_tokens=100,
        tools=TOOLS,
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Bern?"}],
    ) as stream:
        final = stream.get_final_message()
    (use,) = final.content
    assert (use.type, use.id, use.input, final.stop_reason) == ("tool_use", "call_abc", {"city": "Bern"}, "tool_use")
    sent = fake_openai.requests[-1]["json"]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["tools"][0]["function"]["parameters"]["required"] == ["city"]

    fake_openai.script("reasoning", reasoning="Thinking hard.", text="Cold.")
    msg = client.messages.create(
        model="claude-compat",
        max_tokens=2000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "Bern?"},
            {"role": "assistant", "content": [use.model_dump()]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_abc", "content": "-3C"}]},
        ],
    )
    assert [b.type for b in msg.content] == ["thinking", "text"]
    assert (msg.content[0].thinking, msg.content[0].signature, msg.content[1].text) == ("Thinking hard.", "", "Cold.")
    sent = fake_openai.requests[-1]["json"]
    assert sent["reasoning_effort"] == "low"
    assert sent["messages"][1]["tool_calls"][0]["id"] == "call_abc"
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": "call_abc", "content": "-3C"}


def test_body_too_large_is_request_too_large(gateway_url, api_key, fake_gemini, settings):
    settings.MAX_BODY_BYTES = 1000
    body = {"model": "gemini-2.5-flash", "max_tokens": 5, "messages": [{"role": "user", "content": "x" * 2000}]}
    resp = httpx.post(f"{gateway_url}/v1/messages", json=body, headers={"x-api-key": api_key})
    assert resp.status_code == 413 and resp.json()["error"]["type"] == "request_too_large"


def test_stream_refused_before_it_starts_is_a_plain_error(client, fake_gemini):
    with (
        pytest.raises(anthropic.NotFoundError),
        client.messages.stream(
            model="claude-unmapped", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        ) as stream,
    ):
        list(stream)


def test_client_disconnect_mid_stream_is_recorded(gateway_url, api_key, fake_gemini, usage_rows):
    fake_gemini.chunk_delay = 0.3
    fake_gemini.script("text", chunks=[f"word{i} " for i in range(20)])
    body = {
        "model": "gemini-2.5-flash",
        "max_tokens": 500,
        "stream": True,
        "messages": [{"role": "user", "content": "x"}],
    }
    with httpx.stream("POST", f"{gateway_url}/v1/messages", json=body, headers={"x-api-key": api_key}) as resp:
        for line in resp.iter_lines():
            if "word1" in line:
                break  # leave mid-stream: closing the response drops the connection
    deadline = time.monotonic() + 10
    while not (rows := usage_rows()):
        assert time.monotonic() < deadline, "no usage row after the client disconnected"
        time.sleep(0.2)
    (row,) = rows
    assert row.client_disconnected and row.streamed and row.status == 499 and row.dialect == "anthropic"


def test_a_claude_code_shaped_turn(gateway_url, api_key, fake_gemini, mapping, usage_rows):
    """What Claude Code sends for a conversation turn (anthropic.md §8): Bearer token, betas,
    cached system blocks, $schema tools, metadata, extra body fields, thinking, a big max_tokens."""
    mapping("claude-sonnet-4-5-20250929", "gemini-2.5-pro")
    body = {
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 32000,
        "stream": True,
        "system": [
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Be careful.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        ],
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "list files", "cache_control": {"type": "ephemeral"}}],
            }
        ],
        "tools": [{**TOOLS[0], "name": "mcp__files__list", "cache_control": {"type": "ephemeral"}}],
        "metadata": {"user_id": "user_abc_account__session_123"},
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "temperature": 1,
        "context_management": {"edits": []},
        "output_config": {"effort": "high"},
    }
    headers = {
        "authorization": f"Bearer {api_key}",
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14",
        "x-app": "cli",
        "anthropic-dangerous-direct-browser-access": "true",
    }
    with httpx.stream("POST", f"{gateway_url}/v1/messages", json=body, headers=headers) as resp:
        assert resp.status_code == 200
        text = resp.read().decode()
    assert text.startswith("event: message_start\n") and text.endswith(
        'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    sent = [r for r in fake_gemini.requests if ":streamGenerateContent" in r["path"]][-1]
    assert sent["path"] == "/v1beta/models/gemini-2.5-pro:streamGenerateContent"
    config = sent["json"]["generationConfig"]
    assert config["maxOutputTokens"] == 32000 and config["thinkingConfig"] == {
        "thinkingBudget": 24576,
        "includeThoughts": True,
    }
    assert sent["json"]["systemInstruction"] == {"parts": [{"text": "You are Claude Code.\n\nBe careful."}]}
    assert usage_rows()[-1].dialect == "anthropic"


@pytest.mark.parametrize("later", [False, True])
def test_signature_of_a_call_without_thoughts_survives_the_next_turn(client, fake_gemini, settings, usage_rows, later):
    # Claude Code sends the tool result ~150 ms after the call, sooner than the background writer
    # stores the signature (the thinking block that would carry it exists only with thoughts);
    # `later`: the row is written and this process's memory is gone (another worker answers).
    settings.USAGE_FLUSH_SECONDS = 0.05 if later else 3
    fake_gemini.script("tool_calls", calls=[("get_weather", {"city": "Lima"}, None)], text=None)
    first = client.messages.create(
        model="gemini-3-flash-preview", max_tokens=256, tools=TOOLS, messages=[{"role": "user", "content": "Lima?"}]
    )
    sent = generate_requests(fake_gemini)[-1]
    (use,) = [b for b in first.content if b.type == "tool_use"]
    assert not [b for b in first.content if b.type == "thinking"]
    if later:
        usage_rows()
        signatures.clear_cache()
    client.messages.create(
        model="gemini-3-flash-preview",
        max_tokens=256,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "Lima?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": use.id, "name": use.name, "input": use.input}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "warm"}]},
        ],
    )
    assert sent is not generate_requests(fake_gemini)[-1]
    part = generate_requests(fake_gemini)[-1]["json"]["contents"][1]["parts"][0]
    assert part["thoughtSignature"] not in (None, "skip_thought_signature_validator")
