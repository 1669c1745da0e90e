"""The fake OpenAI API as an ASGI app and as a real server (tests.fakes.openai_compat run standalone).

Wire facts: docs/reference/openai.md. Needs no database. The wire-shape tests are in test_fake_openai_compat.
"""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tests.fakes.harness import asgi_exchange, served
from tests.test_fake_openai_compat import CHAT, KEY, body, fake, sse_events  # noqa: F401  (fixture: fake)

# --------------------------------------------------------------------------- the ASGI app


async def test_asgi_app_streams_one_body_message_per_chunk(fake):
    scope = {
        "type": "http",
        "method": "POST",
        "path": CHAT,
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {KEY}".encode()), (b"content-type", b"application/json")],
    }
    sent = await asgi_exchange(fake.asgi, scope, json.dumps(body(stream=True)).encode())

    start, *bodies, end = sent
    assert start["status"] == 200
    assert len(bodies) == 9 and all(m["more_body"] for m in bodies)  # role, 6 words, finish, [DONE]
    assert end == {"type": "http.response.body", "body": b"", "more_body": False}
    assert sse_events(b"".join(m["body"] for m in bodies))[-1] == "[DONE]"


# --------------------------------------------------------------------------- a real server


@pytest.fixture
def served_fake():
    args = ("--api-key", "served-key", "--chunk-delay", "0.05")
    with served("tests.fakes.openai_compat", *args, banner="/v1") as url:
        yield url


async def test_standalone_server_streams_and_drops_connections(served_fake):
    client = openai.AsyncOpenAI(base_url=f"{served_fake}/v1", api_key="served-key", max_retries=0, timeout=10)
    started, arrivals, text = time.monotonic(), [], ""
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "hi there"}]
    )
    async for chunk in stream:
        arrivals.append(time.monotonic() - started)
        text += chunk.choices[0].delta.content or ""
    assert text == "Hello from fake OpenAI: hi there"
    assert arrivals[0] < arrivals[-1] - 0.2  # chunk by chunk

    async with httpx.AsyncClient(base_url=served_fake, timeout=10) as http:
        await http.post("/_fake/script", json={"kind": "break_midstream", "after": 2})
        received = []
        with pytest.raises(httpx.TransportError):
            async with http.stream(
                "POST", CHAT, headers={"authorization": "Bearer served-key"}, json=body(stream=True)
            ) as response:
                async for chunk in response.aiter_raw():
                    received.append(chunk)
        after = await http.get("/v1/models", headers={"authorization": "Bearer served-key"})
    assert len(sse_events(b"".join(received))) == 2
    assert after.status_code == 200  # the server survives
    with pytest.raises(openai.AuthenticationError):
        await openai.AsyncOpenAI(base_url=f"{served_fake}/v1", api_key="nope", max_retries=0).models.list()
    await client.close()
