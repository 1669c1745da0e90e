"""Request headers past GATEWAY_MAX_HEADER_BYTES get 431 in the dialect's own shape, with a usage
row, before the key is even read; over the real server with the SDKs."""

from __future__ import annotations

import httpx
import openai
import pytest

pytestmark = pytest.mark.django_db(transaction=True)

BIG = {"x-padding": "p" * 70_000}  # over the 64 KiB default, far under the server's own limits
CHAT = [{"role": "user", "content": "hi"}]


def test_oversize_headers_are_431_in_each_dialect_with_a_row(gateway_url, api_key, fake_gemini, usage_rows):
    client = openai.OpenAI(base_url=f"{gateway_url}/v1", api_key=api_key, max_retries=0, default_headers=BIG)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="gemini-2.5-flash", messages=CHAT)
    assert info.value.status_code == 431 and info.value.code == "request_header_fields_too_large"
    assert "65536 bytes" in info.value.message and api_key not in info.value.response.text

    ollama = httpx.post(
        f"{gateway_url}/api/chat",
        headers={"authorization": f"Bearer {api_key}", **BIG},
        json={"model": "gemini-2.5-flash", "messages": CHAT, "stream": False},
    )
    assert ollama.status_code == 431 and "larger than the limit" in ollama.json()["error"]
    gemini = httpx.post(
        f"{gateway_url}/v1beta/models/gemini-2.5-flash:generateContent",
        headers={"x-goog-api-key": api_key, **BIG},
        json={"contents": [{"parts": [{"text": "hi"}]}]},
    )
    assert gemini.status_code == 431 and gemini.json()["error"]["code"] == 431
    assert fake_gemini.requests == []  # nothing went upstream
    rows = usage_rows()
    assert [(r.dialect, r.status, r.error_code) for r in rows] == [
        ("openai", 431, "request_header_fields_too_large"),
        ("ollama", 431, "request_header_fields_too_large"),
        ("gemini", 431, "request_header_fields_too_large"),
    ]


def test_headers_under_the_limit_are_served(openai_client):
    reply = openai_client.chat.completions.create(
        model="gemini-2.5-flash", messages=CHAT, extra_headers={"x-padding": "p" * 30_000}
    )
    assert reply.choices[0].message.content
