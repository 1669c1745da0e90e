"""Bad input in every dialect: its own error shape, a meaningful status, never a 500 or a hang."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.django_db(transaction=True)

# The first four are not a JSON object at all: always 400. The rest are wrong for some endpoints
# and merely odd for others (Ollama treats a chat without messages as a model load, as it does).
NOT_OBJECTS = 4
BODIES = [
    b"{oops",
    b"",
    b"[1, 2]",
    b'"text"',
    b'{"model": 5}',
    b'{"model": "gemini-2.5-flash", "messages": 3}',
    b'{"model": "gemini-2.5-flash", "contents": [{"role": "wizard", "parts": "x"}]}',
    b'{"model": "gemini-2.5-flash", "prompt": ["a"], "options": {"temperature": "hot"}}',
]

OLLAMA = ["/api/chat", "/api/generate", "/api/embed", "/api/embeddings", "/api/show"]
GEMINI = ["generateContent", "streamGenerateContent", "countTokens", "embedContent", "batchEmbedContents"]


@pytest.mark.parametrize("body", BODIES)
def test_ollama_bad_bodies(gateway_url, api_key, fake_gemini, body):
    for route in OLLAMA:
        resp = httpx.post(
            f"{gateway_url}{route}", content=body, headers={"authorization": f"Bearer {api_key}"}, timeout=10
        )
        assert resp.status_code in ((400,) if BODIES.index(body) < NOT_OBJECTS else (200, 400, 404)), (route, resp.text)
        if resp.status_code != 200:
            assert set(resp.json()) == {"error"} and isinstance(resp.json()["error"], str)


@pytest.mark.parametrize("body", BODIES)
def test_gemini_bad_bodies(gateway_url, api_key, fake_gemini, fake_openai, mapping, body):
    mapping("on-compat", "gpt-4o-mini", upstream="compat")
    for model in ("gemini-2.5-flash", "on-compat"):
        for method in GEMINI:
            resp = httpx.post(
                f"{gateway_url}/v1beta/models/{model}:{method}",
                content=body,
                headers={"x-goog-api-key": api_key},
                timeout=10,
            )
            expected = (400,) if BODIES.index(body) < NOT_OBJECTS else (200, 400, 404)
            assert resp.status_code in expected, (model, method, body, resp.text)
            if resp.status_code == 200:
                assert method == "countTokens"  # an empty count is 0 tokens, not an error
                continue
            error = resp.json()["error"]
            assert set(error) == {"code", "message", "status"} and error["code"] == resp.status_code


def test_unknown_routes_and_methods_per_dialect(gateway_url, api_key):
    gemini = httpx.post(
        f"{gateway_url}/v1beta/models/gemini-2.5-flash:explode", json={}, headers={"x-goog-api-key": api_key}
    )
    assert gemini.status_code == 404 and gemini.json()["error"]["status"] == "NOT_FOUND"
    assert httpx.get(f"{gateway_url}/api/chat", headers={"authorization": f"Bearer {api_key}"}).status_code == 405
    assert httpx.get(f"{gateway_url}/api/nothing").json() == {"error": "Unknown endpoint GET /api/nothing"}


def test_oversize_body_in_every_dialect(gateway_url, api_key, settings):
    settings.MAX_BODY_BYTES = 1024
    big = b'{"pad": "' + b"x" * 4096 + b'"}'
    assert (
        httpx.post(f"{gateway_url}/api/chat", content=big, headers={"authorization": f"Bearer {api_key}"}).status_code
        == 413
    )
    resp = httpx.post(
        f"{gateway_url}/v1beta/models/gemini-2.5-flash:generateContent",
        content=big,
        headers={"x-goog-api-key": api_key},
    )
    assert resp.status_code == 413 and resp.json()["error"]["status"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE"])
def test_the_ollama_root_probe_answers_any_method_without_django_csrf_page(gateway_url, method):
    resp = httpx.request(method, f"{gateway_url}/")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    "path, shape",
    [
        ("/v1beta/models/x%0Ay", "gemini"),
        ("/v1/chat%0A", "openai"),
        ("/api/chat%0A", "ollama"),
        ("/v1/messages/x%0A", "anthropic"),
        ("/v1/sessions/a%0Ab/c", "sessions"),
    ],
)
def test_a_newline_in_the_path_still_gets_the_dialects_404(gateway_url, api_key, path, shape):
    """URL patterns' `.` stops at a newline: such paths fell through to Django's HTML 404 (found by the fuzzer)."""
    resp = httpx.get(f"{gateway_url}{path}", headers={"authorization": f"Bearer {api_key}"})
    assert resp.status_code == 404 and resp.headers["content-type"] == "application/json", resp.text
    error = resp.json()["error"]
    assert isinstance(error, str) if shape == "ollama" else "Unknown endpoint" in error["message"]
