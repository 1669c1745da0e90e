"""What the tests/test_dialect_gemini_native_*.py modules share: request builders, the SDK over a
mock transport, and the check that a body is rejected.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import types

from proxy_app.core import errors, hub
from proxy_app.dialects.gemini import request as gn

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 8).decode()


# ------------------------------------------------------------------------------------------------
# builders


def u(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "parts": list(parts)}


def m(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "model", "parts": list(parts)}


def t(text: str, **extra: Any) -> dict[str, Any]:
    return {"text": text, **extra}


def fc(name: str, args: dict[str, Any] | None = None, call_id: str | None = None, **extra: Any) -> dict[str, Any]:
    call: dict[str, Any] = {"name": name, "args": args or {}}
    if call_id is not None:
        call["id"] = call_id
    return {"functionCall": call, **extra}


def fr(name: str, response: Any, call_id: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"name": name, "response": response}
    if call_id is not None:
        result["id"] = call_id
    return {"functionResponse": result}


def gen(*contents: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"contents": list(contents) or [u(t("hi"))], **extra}


def parse(body: dict[str, Any], stream: bool = False) -> hub.ChatRequest:
    return gn.parse_generate_request(body, "alias", stream=stream)


def sdk_client(handler) -> genai.Client:
    return genai.Client(
        api_key="k",
        http_options=types.HttpOptions(
            base_url="http://gateway", client_args={"transport": httpx.MockTransport(handler)}
        ),
    )


def serve(body: bytes | dict[str, Any], status: int = 200, media: str = "application/json"):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return lambda request: httpx.Response(status, content=content, headers={"content-type": media})


def invalid(call, param: str | None, fragment: str) -> None:
    with pytest.raises(errors.InvalidRequest) as caught:
        call()
    assert caught.value.status == 400
    assert caught.value.param == param
    assert fragment in caught.value.message


WEATHER = {
    "name": "get_weather",
    "description": "Weather",
    "parametersJsonSchema": {
        "type": "object",
        "properties": {"city_name": {"type": "string"}},
        "additionalProperties": False,
    },
}
