"""Parse-time limits on request bodies (issue 13, item 4): a body nested deeper than MAX_DEPTH levels and an
integer past 64 bits are 400s that name the field, in every dialect, before anything is sent upstream."""

from __future__ import annotations

import httpx
import pytest

from proxy_app.dialects import validate

pytestmark = pytest.mark.django_db(transaction=True)


def deep(levels: int) -> dict:
    value: dict = {"type": "string"}
    for _ in range(levels):
        value = {"type": "object", "properties": {"a": value}}
    return value


def test_check_depth_names_the_first_too_deep_field():
    body = {"tools": [{"parameters": deep(150)}]}  # 2 levels per step: 300+ levels
    with pytest.raises(validate.errors.InvalidRequest) as info:
        validate.check_depth(body)
    assert info.value.param == "tools[0].parameters.properties.a.properties.a.properties..."
    assert "nested deeper than 200 levels" in info.value.message
    validate.check_depth({"tools": [{"parameters": deep(95)}]})  # 193 levels: fine
    flat = b"[" + b"[1]," * 5000 + b"1]"  # many brackets, shallow: walked, and passes
    assert validate.checked_depth(flat, [[1]] * 5000 + [1])


def test_as_int_refuses_integers_past_64_bits():
    assert validate.as_int(2**63 - 1, "seed") == 2**63 - 1
    with pytest.raises(validate.errors.InvalidRequest) as info:
        validate.as_int(2**63, "seed")
    assert (info.value.param, info.value.message) == ("seed", "'seed' is out of range (a 64-bit integer at most)")


def test_deep_tool_schema_is_a_400_naming_the_field_in_each_dialect(gateway_url, api_key, fake_gemini, usage_rows):
    schema = deep(120)
    bearer = {"authorization": f"Bearer {api_key}"}
    openai = httpx.post(
        f"{gateway_url}/v1/chat/completions",
        headers=bearer,
        json={
            "model": "gemini-2.5-flash",
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}],
        },
    )
    assert openai.status_code == 400
    assert openai.json()["error"]["param"].startswith("tools[0].function.parameters.properties.a")
    gemini = httpx.post(
        f"{gateway_url}/v1beta/models/gemini-2.5-flash:generateContent",
        headers={"x-goog-api-key": api_key},
        json={
            "contents": [{"parts": [{"text": "hi"}]}],
            "tools": [{"functionDeclarations": [{"name": "f", "parameters": schema}]}],
        },
    )
    assert gemini.status_code == 400 and gemini.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "'tools[0].functionDeclarations[0].parameters.properties.a" in gemini.json()["error"]["message"]
    ollama = httpx.post(
        f"{gateway_url}/api/chat",
        headers=bearer,
        json={"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}], "format": schema},
    )
    assert ollama.status_code == 400 and ollama.json()["error"].startswith("'format.properties.a.properties")
    assert fake_gemini.requests_to("generateContent") == []  # nothing of it went upstream
    assert [(r.status, r.endpoint) for r in usage_rows()] == [
        (400, "chat.completions"),
        (400, "generateContent"),
        (400, "chat"),
    ]


@pytest.mark.parametrize(
    "path, body, named",
    [
        ("/v1/chat/completions", {"max_tokens": 2**63}, "max_tokens"),
        ("/api/chat", {"options": {"num_predict": 1e30}}, "options.num_predict"),
        (
            "/v1/messages",
            {"max_tokens": 16, "thinking": {"type": "enabled", "budget_tokens": 2**64 - 1}},
            "thinking.budget_tokens",
        ),  # noqa: E501
    ],
    ids=["openai", "ollama", "anthropic"],
)
def test_integer_past_64_bits_is_a_400_naming_the_field(gateway_url, api_key, fake_gemini, path, body, named):
    """Gemini-native bodies pass through unparsed: orjson reads integers up to 2**64 - 1 and writes
    them back, so only the translated dialects turn a number into a too-large integer."""
    base = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {api_key}"}
    resp = httpx.post(f"{gateway_url}{path}", headers=headers, json={**base, **body})
    assert resp.status_code == 400, resp.text
    assert f"'{named}' is out of range (a 64-bit integer at most)" in resp.text
    assert fake_gemini.requests == []


@pytest.mark.parametrize(
    "path, body",
    [
        ("/api/embeddings", {"model": "gemini-2.5-flash\n", "prompt": "a"}),  # found by the fuzzer: was a 500
        (
            "/v1/chat/completions",
            {"model": "gemini-x/../../v1beta/cachedContents", "messages": [{"role": "user", "content": "hi"}]},
        ),  # noqa: E501
        ("/v1beta/models/gemini-2.5-flash%0A:generateContent", {"contents": [{"parts": [{"text": "hi"}]}]}),
    ],
    ids=["ollama-newline", "openai-dot-dot", "gemini-path-newline"],
)
def test_a_passed_through_model_name_with_odd_characters_is_a_400(
    gateway_url, api_key, fake_gemini, usage_rows, path, body
):  # noqa: E501
    """A Gemini model name the client picks goes into the upstream URL: control characters and `..` are refused."""
    headers = {"authorization": f"Bearer {api_key}", "x-goog-api-key": api_key}
    resp = httpx.post(f"{gateway_url}{path}", headers=headers, json=body)
    assert resp.status_code == 400, resp.text
    assert "has characters a model name cannot have" in resp.text
    assert fake_gemini.requests == []
    assert usage_rows()[-1].status == 400


def test_session_generation_config_integer_past_64_bits_is_a_400(gateway_url, api_key, fake_gemini):
    resp = httpx.post(
        f"{gateway_url}/v1/sessions",
        headers={"authorization": f"Bearer {api_key}"},
        json={"model": "gemini-2.5-flash", "generation_config": {"max_output_tokens": 2**64 - 1}},
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == (
        "generation_config.max_output_tokens is out of range (a 64-bit integer at most)."
    )
