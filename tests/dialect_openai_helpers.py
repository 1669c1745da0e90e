"""What the tests/test_dialect_openai_*.py modules share: request builders, sample calls, SSE helpers."""

from __future__ import annotations

import httpx
import openai
import orjson

from proxy_app.core import hub
from proxy_app.dialects.openai.request import parse_chat_request

USER = {"role": "user", "content": "hi"}


def messages(*msgs) -> list[hub.Message]:
    return parse_chat_request({"model": "m", "messages": list(msgs)}).messages


CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
ASSISTANT_CALL = {"role": "assistant", "content": None, "tool_calls": [CALL]}


SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}


def decode(frames: list[bytes]) -> list:
    """Frame bytes -> payloads ("[DONE]" kept as a string); checks the SSE framing on the way."""
    out = []
    for f in frames:
        assert f.startswith(b"data: ") and f.endswith(b"\n\n") and f.count(b"\n\n") == 1
        data = f[len(b"data: ") : -2]
        out.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return out


def ev(*deltas: hub.ChoiceDelta) -> hub.StreamEvent:
    return hub.StreamEvent(list(deltas))


def sdk(handler) -> openai.OpenAI:
    return openai.OpenAI(
        api_key="sk-test",
        base_url="http://gw/v1",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )


def sse(frames: list[bytes]) -> httpx.Response:
    return httpx.Response(200, content=b"".join(frames), headers={"content-type": "text/event-stream"})
