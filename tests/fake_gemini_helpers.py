"""What the tests/test_fake_gemini_*.py modules share: request bodies, SSE parsing, and the `fake` and
`http` fixtures (imported by each module, so pytest finds them there).
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.fakes.gemini import FakeGemini

KEY = "test-upstream-key"
HEADERS = {"x-goog-api-key": KEY}
FLASH = "/v1beta/models/gemini-2.5-flash"
GEMINI_3 = "/v1beta/models/gemini-3-flash-preview"


def user(text: str) -> dict:
    return {"role": "user", "parts": [{"text": text}]}


def body(text: str = "hi there", **extra) -> dict:
    return {"contents": [user(text)], **extra}


def sse_events(raw: bytes) -> list[dict]:
    """Parse an alt=sse body strictly: `data: {json}\\r\\n\\r\\n` for every event, last included."""
    assert raw.endswith(b"\r\n\r\n")
    frames = raw.split(b"\r\n\r\n")
    assert frames[-1] == b""
    events = []
    for frame in frames[:-1]:
        assert frame.startswith(b"data: ") and b"\n" not in frame
        events.append(json.loads(frame[len(b"data: ") :]))
    return events


def joined_text(events: list[dict]) -> str:
    return "".join(
        p.get("text", "")
        for e in events
        for c in e.get("candidates", [])
        for p in c.get("content", {}).get("parts", [])
        if not p.get("thought")
    )


@pytest.fixture
def fake() -> FakeGemini:
    return FakeGemini()


@pytest.fixture
async def http(fake: FakeGemini):
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handler), base_url="http://fake") as client:
        yield client
