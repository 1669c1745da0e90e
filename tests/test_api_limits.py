"""Limits enforced end to end: real gateway on a socket, real SDKs, both counter backends."""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import openai
import pytest
from django.core.management import call_command

from proxy_app.ledger import counters, quota
from proxy_app.ledger.counters import MemoryCounters, RedisCounters
from tests.test_counters import TEST_REDIS_URL, redis_unavailable_reason

pytestmark = pytest.mark.django_db(transaction=True)
CHAT = [{"role": "user", "content": "hi"}]


@pytest.fixture(params=["memory", "redis"])
def backend(request):
    if request.param == "redis":
        reason = redis_unavailable_reason()
        if reason:
            print(f"SKIP: {reason}")
            pytest.skip(reason)
        made = RedisCounters(TEST_REDIS_URL, prefix=f"gwapi-{uuid.uuid4().hex[:12]}")
    else:
        made = MemoryCounters()
    counters.set_counters(made)
    quota.clear_cache()
    yield request.param
    counters.set_counters(None)
    quota.clear_cache()


def limits(*args: str) -> None:
    call_command("set_limits", *args)
    quota.clear_cache()


def wait_until(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def clear_of_minute_end(margin: float = 15.0) -> None:
    """The gateway (another process) counts requests in fixed one-minute windows of the wall clock:
    a test that needs several requests in one window starts early enough in a minute."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.05)


def test_rpm_refusal_in_every_dialect_with_headers(backend, openai_client, gateway_url, api_key, fake_gemini):
    limits("--user", "alice", "--rpm", "2")
    clear_of_minute_end()
    first = openai_client.chat.completions.with_raw_response.create(model="gemini-2.5-flash", messages=CHAT)
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-reset-requests"].endswith("s")
    openai_client.chat.completions.create(model="gemini-2.5-flash", messages=CHAT)
    with pytest.raises(openai.RateLimitError) as info:
        openai_client.chat.completions.create(model="gemini-2.5-flash", messages=CHAT)
    assert info.value.code == "rate_limit_exceeded" and "requests per minute" in info.value.message
    assert 1 <= int(info.value.response.headers["retry-after"]) <= 60
    ollama = httpx.post(
        f"{gateway_url}/api/chat",
        headers={"authorization": f"Bearer {api_key}"},
        json={"model": "gemini-2.5-flash", "messages": CHAT, "stream": False},
    )
    assert ollama.status_code == 429 and "requests per minute" in ollama.json()["error"]
    gemini = httpx.post(
        f"{gateway_url}/v1beta/models/gemini-2.5-flash:generateContent",
        headers={"x-goog-api-key": api_key},
        json={"contents": [{"parts": [{"text": "hi"}]}]},
    )
    assert gemini.status_code == 429 and gemini.json()["error"]["status"] == "RESOURCE_EXHAUSTED"


def test_daily_token_quota_is_insufficient_quota(backend, openai_client, fake_gemini, usage_rows):
    limits("--user", "alice", "--daily-tokens", "200")
    openai_client.chat.completions.create(model="gemini-2.5-flash", messages=CHAT, max_tokens=50)
    with pytest.raises(openai.RateLimitError) as info:
        openai_client.chat.completions.create(model="gemini-2.5-flash", messages=CHAT, max_tokens=500)
    assert info.value.code == "insufficient_quota" and info.value.type == "insufficient_quota"
    assert info.value.response.headers["x-should-retry"] == "false"
    rows = usage_rows()
    assert [r.status for r in rows] == [200, 429] and rows[0].cost_usd > 0


def test_parallel_limit_and_release_after_disconnect(backend, gateway_url, api_key, fake_gemini, openai_client):
    limits("--token", "laptop", "--max-parallel", "1")
    fake_gemini.chunk_delay = 0.2
    fake_gemini.script("text", chunks=[f"w{i} " for i in range(30)])
    started, checked = threading.Event(), threading.Event()

    def slow_stream():
        with httpx.stream(
            "POST",
            f"{gateway_url}/v1/chat/completions",
            headers={"authorization": f"Bearer {api_key}"},
            json={"model": "gemini-2.5-flash", "messages": CHAT, "stream": True},
        ) as resp:
            for line in resp.iter_lines():
                if "w1" in line:
                    started.set()
                    checked.wait(10)
                    break  # then the client walks away mid-stream

    worker = threading.Thread(target=slow_stream)
    worker.start()
    assert started.wait(10)
    try:
        with pytest.raises(openai.RateLimitError, match="in flight"):
            openai_client.chat.completions.create(model="gemini-2.5-flash", messages=CHAT)
    finally:
        checked.set()
    worker.join(10)

    def admitted() -> bool:
        try:
            openai_client.chat.completions.create(model="gemini-2.5-flash", messages=CHAT)
            return True
        except openai.RateLimitError:
            return False

    wait_until(admitted)  # the disconnected stream's slot was released


def test_usage_report_shows_cost(openai_client, fake_gemini, usage_rows):
    import json
    from io import StringIO

    openai_client.chat.completions.create(model="gemini-2.5-flash", messages=CHAT)
    usage_rows()
    out = StringIO()
    call_command("usage_report", "--json", stdout=out)
    assert json.loads(out.getvalue())["totals"]["cost_usd"] > 0


def test_small_daily_quota_admits_a_request_without_max_tokens(backend, openai_client, fake_gemini, usage_rows):
    import json

    limits("--user", "alice", "--daily-tokens", "50")
    reply = openai_client.chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "say something short"}]
    )
    body = json.loads(fake_gemini.requests[-1]["body"])
    prompt = reply.usage.prompt_tokens
    assert 0 < body["generationConfig"]["maxOutputTokens"] <= 50 - prompt  # what remained, not 4096
    assert reply.usage.total_tokens <= 50
    rows = usage_rows()
    assert [(r.status, r.total_tokens) for r in rows] == [(200, reply.usage.total_tokens)]


def test_explicit_max_tokens_over_the_rest_names_what_remains(backend, openai_client, fake_gemini):
    limits("--user", "alice", "--daily-tokens", "50")
    with pytest.raises(openai.RateLimitError) as info:
        openai_client.chat.completions.create(model="gemini-2.5-flash", messages=CHAT, max_tokens=100)
    assert info.value.code == "insufficient_quota" and "50 tokens remain" in info.value.message


def test_gemini_native_call_without_max_output_gets_the_cap(backend, gateway_url, api_key, fake_gemini):
    import json

    limits("--user", "alice", "--daily-tokens", "60")
    reply = httpx.post(
        f"{gateway_url}/v1beta/models/gemini-2.5-flash:generateContent",
        headers={"x-goog-api-key": api_key},
        json={"contents": [{"parts": [{"text": "hi"}]}]},
    )
    assert reply.status_code == 200, reply.text
    cap = json.loads(fake_gemini.requests[-1]["body"])["generationConfig"]["maxOutputTokens"]
    assert 0 < cap < 60
