"""What the Anthropic end-to-end tests share: sample data, the upstream request filter and the
`client` fixture (the official anthropic SDK on the gateway; imported by each module, so pytest
finds it there)."""

from __future__ import annotations

import base64

import anthropic
import pytest

PNG_1PX = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d4944415478da63f8cfc0f01f0005000201a5f3c1a30000000049454e44ae426082"
    )
).decode()

TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    }
]


@pytest.fixture
def client(gateway_url, api_key, fake_gemini):
    c = anthropic.Anthropic(base_url=gateway_url, api_key=api_key, max_retries=0, timeout=20)
    yield c
    c.close()


def generate_requests(fake):
    return [r for r in fake.requests if ":generateContent" in r["path"] or ":streamGenerateContent" in r["path"]]
