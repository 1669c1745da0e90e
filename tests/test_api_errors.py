"""Every failure gets OpenAI's error shape and a meaningful status, and still a usage row."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import httpx
import openai
import pytest
from django.core.management import call_command
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = [{"role": "user", "content": "hi"}]


def test_bad_key_is_401_in_openai_shape(openai_client, gateway_url, usage_rows):
    bad = openai.OpenAI(base_url=f"{gateway_url}/v1", api_key="gw-nothing_this-is-not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.chat.completions.create(model="gemini-2.5-flash", messages=CHAT)
    assert info.value.code == "invalid_api_key"
    assert info.value.body == {
        "message": "Incorrect API key provided.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
    assert info.value.response.headers["www-authenticate"].startswith("Bearer")
    missing = httpx.post(f"{gateway_url}/v1/chat/completions", json={"model": "x", "messages": CHAT})
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_api_key"
    rows = usage_rows()
    assert [r.status for r in rows] == [401, 401] and rows[0].user is None


def test_revoked_key_stops_within_two_seconds(openai_client, api_key):
    openai_client.chat.completions.create(model="gemini-2.5-flash", messages=CHAT)
    prefix = api_key.split("_")[0]
    call_command("revoke_token", prefix)
    deadline = time.monotonic() + 2.0
    while True:
        try:
            openai_client.chat.completions.create(model="gemini-2.5-flash", messages=CHAT)
        except openai.AuthenticationError as exc:
            assert "revoked" in exc.message
            break
        assert time.monotonic() < deadline, "revoked key still accepted after 2 s"
        time.sleep(0.1)


def test_expired_key_is_401(gateway_url, fake_gemini, user):
    from accounts.services import issue_key

    key, secret = issue_key(user, name="old")
    key.expires_at = timezone.now() - timedelta(seconds=1)
    key.save()
    client = openai.OpenAI(base_url=f"{gateway_url}/v1", api_key=secret, max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="expired"):
        client.chat.completions.create(model="gemini-2.5-flash", messages=CHAT)


def test_model_not_allowed_for_key_is_403(gateway_url, fake_gemini, user, issue, mapping):
    mapping("gpt-4o")
    mapping("gpt-4o-mini")
    client = openai.OpenAI(base_url=f"{gateway_url}/v1", api_key=issue(user, models=["gpt-4o-mini"]), max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.chat.completions.create(model="gpt-4o", messages=CHAT)
    assert info.value.code == "model_not_allowed"
    assert [m.id for m in client.models.list()] == ["gpt-4o-mini"]


def test_unknown_model_is_404(openai_client):
    with pytest.raises(openai.NotFoundError) as info:
        openai_client.chat.completions.create(model="claude-9", messages=CHAT)
    assert info.value.code == "model_not_found"


@pytest.mark.parametrize(
    "kwargs, param",
    [
        ({"temperature": 5}, "temperature"),
        ({"n": 2, "stream": True}, "n"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"seed": 2**40}, "seed"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"modalities": ["text", "audio"]}, "modalities"),
    ],
)
def test_bad_values_are_400_naming_the_field(openai_client, kwargs, param):
    with pytest.raises(openai.BadRequestError) as info:
        openai_client.chat.completions.create(model="gemini-2.5-flash", messages=CHAT, **kwargs)
    assert info.value.param == param


MALFORMED = [
    (b"{not json", "application/json"),
    (b"", "application/json"),
    (b"[]", "application/json"),
    (b'"a string"', "application/json"),
    (b'{"model": 3, "messages": []}', "application/json"),
    (b'{"model": "gemini-2.5-flash"}', "application/json"),
    (b'{"model": "gemini-2.5-flash", "messages": "hi"}', "application/json"),
    (b'{"model": "gemini-2.5-flash", "messages": [{"role": "wizard", "content": "x"}]}', "application/json"),
    (b'{"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": 42}]}', "text/plain"),
    (b'{"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}', ""),
    (b'{"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}], "max_tokens": "many"}', ""),
    (
        b'{"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}], '
        b'"tools": [{"type": "function"}]}',
        "",
    ),
    (b'{"model": "gemini-2.5-flash", "messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}', ""),
    (b'{"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}', ""),
    (
        '{"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "\ud83d"}]}'.encode(
            "utf-8", "surrogatepass"
        ),
        "",
    ),
]


@pytest.mark.parametrize("body, content_type", MALFORMED)
def test_malformed_bodies_are_400_never_500(gateway_url, api_key, fake_gemini, body, content_type):
    headers = {"authorization": f"Bearer {api_key}"}
    if content_type:
        headers["content-type"] = content_type
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
        resp = httpx.post(f"{gateway_url}{path}", content=body, headers=headers)
        assert resp.status_code == 400, (path, resp.text)
        error = resp.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"


def test_oversize_body_is_413(gateway_url, api_key, settings):
    settings.MAX_BODY_BYTES = 2048
    resp = httpx.post(
        f"{gateway_url}/v1/chat/completions",
        json={"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x" * 5000}]},
        headers={"authorization": f"Bearer {api_key}"},
    )
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "request_too_large"


@pytest.mark.parametrize(
    "status, exc, code",
    [
        (429, openai.RateLimitError, "rate_limit_exceeded"),
        (500, openai.InternalServerError, "bad_gateway"),
        (503, openai.InternalServerError, "service_unavailable"),
        (504, openai.InternalServerError, "timeout"),
    ],
)
def test_upstream_errors_map_to_statuses(openai_client, fake_gemini, usage_rows, status, exc, code):
    fake_gemini.script("error", status=status)
    with pytest.raises(exc) as info:
        openai_client.chat.completions.create(model="gemini-2.5-flash", messages=CHAT)
    assert info.value.code == code
    if status == 429:
        assert info.value.response.headers["retry-after"] == "37"
    assert usage_rows()[-1].status == info.value.status_code


def test_upstream_auth_failure_is_502_without_the_key(openai_client, fake_gemini, settings):
    settings.GEMINI_API_KEY = "wrong-upstream-key"
    from proxy_app.call import routing

    routing.clear_cache()
    with pytest.raises(openai.InternalServerError) as info:
        openai_client.chat.completions.create(model="gemini-2.5-flash", messages=CHAT)
    assert info.value.status_code == 502
    assert "wrong-upstream-key" not in info.value.response.text


def test_upstream_unreachable_is_503_and_timeout_504(openai_client, fake_gemini, settings):
    from proxy_app.upstreams import http as upstream_http

    def refuse(request):
        raise httpx.ConnectError("refused", request=request)

    upstream_http.set_transport(httpx.MockTransport(refuse))
    with pytest.raises(openai.InternalServerError) as info:
        openai_client.chat.completions.create(model="gemini-2.5-flash", messages=CHAT)
    assert (info.value.status_code, info.value.code) == (503, "service_unavailable")

    def slow(request):
        raise httpx.ReadTimeout("slow", request=request)

    upstream_http.set_transport(httpx.MockTransport(slow))
    with pytest.raises(openai.InternalServerError) as info:
        openai_client.chat.completions.create(model="gemini-2.5-flash", messages=CHAT)
    assert (info.value.status_code, info.value.code) == (504, "timeout")


def test_non_json_upstream_reply_is_502(openai_client, fake_gemini):
    fake_gemini.script("raw", status=200, body=b"<html>oops</html>", content_type="text/html")
    with pytest.raises(openai.InternalServerError) as info:
        openai_client.chat.completions.create(model="gemini-2.5-flash", messages=CHAT)
    assert info.value.status_code == 502


def test_no_upstream_configured_is_503_with_help(openai_client, settings):
    from proxy_app.call import routing

    settings.GEMINI_API_KEY = ""
    routing.clear_cache()
    with pytest.raises(openai.InternalServerError) as info:
        openai_client.chat.completions.create(model="gemini-2.5-flash", messages=CHAT)
    assert info.value.status_code == 503
    assert "GEMINI_API_KEY" in info.value.message


def test_upstream_break_mid_stream_is_in_band_error(openai_client, fake_gemini, usage_rows):
    fake_gemini.script("break_midstream", after=2)
    stream = openai_client.chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "a long answer please"}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk)
    assert received, "the first chunks arrived before the break"
    row = usage_rows()[-1]
    assert row.streamed and row.status == 502 and row.total_tokens > 0


def test_upstream_error_event_mid_stream(openai_client, fake_gemini, usage_rows):
    fake_gemini.script("error_midstream", after=1, status=503)
    with pytest.raises(openai.APIError, match="overloaded"):
        for _ in openai_client.chat.completions.create(
            model="gemini-2.5-flash", messages=[{"role": "user", "content": "long answer"}], stream=True
        ):
            pass
    assert usage_rows()[-1].status == 503


def test_client_disconnect_mid_stream_is_recorded(gateway_url, api_key, fake_gemini, usage_rows):
    fake_gemini.chunk_delay = 0.3
    fake_gemini.script("text", chunks=[f"word{i} " for i in range(20)])
    with httpx.stream(
        "POST",
        f"{gateway_url}/v1/chat/completions",
        json={"model": "gemini-2.5-flash", "messages": CHAT, "stream": True},
        headers={"authorization": f"Bearer {api_key}"},
    ) as resp:
        for line in resp.iter_lines():
            if "word1" in line:
                break  # leave mid-stream: closing the response drops the connection
    deadline = time.monotonic() + 10
    while True:
        rows = usage_rows()
        if rows:
            break
        assert time.monotonic() < deadline, "no usage row after the client disconnected"
        time.sleep(0.2)
    (row,) = rows
    assert row.client_disconnected and row.streamed
    assert row.completion_tokens > 0 and row.status == 499


def test_secret_never_in_logs_or_errors(gateway_url, api_key, fake_gemini, caplog, usage_rows):
    caplog.set_level(logging.DEBUG)
    headers = {"authorization": f"Bearer {api_key}"}
    bodies = [
        httpx.post(f"{gateway_url}/v1/chat/completions", content=b"{bad", headers=headers).text,
        httpx.post(
            f"{gateway_url}/v1/chat/completions", json={"model": "nope", "messages": CHAT}, headers=headers
        ).text,
        httpx.post(
            f"{gateway_url}/v1/chat/completions",
            json={"model": "x", "messages": CHAT},
            headers={"authorization": f"Bearer {api_key}x"},
        ).text,
    ]
    usage_rows()
    secret_part = api_key.split("_", 1)[1]
    assert all(secret_part not in b for b in bodies)
    assert secret_part not in caplog.text
    assert "test-upstream-key" not in caplog.text


def test_health_and_request_id(gateway_url):
    resp = httpx.get(f"{gateway_url}/health", headers={"x-request-id": "abc-123"})
    assert resp.status_code == 200 and resp.json()["status"] == "healthy"
    assert resp.headers["x-request-id"] == "abc-123"
    generated = httpx.get(f"{gateway_url}/health").headers["x-request-id"]
    assert generated.startswith("req_")
    assert httpx.get(f"{gateway_url}/v1/nothing-here").headers["x-request-id"].startswith("req_")


def test_image_url_fetch_with_ssrf_guard(openai_client, fake_gemini, settings, web_images):
    import ipaddress

    def image_url(url):
        return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]

    for url in ("http://127.0.0.1:9/cat.png", "http://169.254.169.254/latest/meta-data", "http://localhost/x.png"):
        with pytest.raises(openai.BadRequestError, match="private or local"):
            openai_client.chat.completions.create(model="gemini-2.5-flash", messages=image_url(url))
    settings.IMAGE_FETCH_ALLOWED_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]
    web_images["/cat.png"] = (b"\x89PNG\r\n\x1a\nfake", "image/png")
    openai_client.chat.completions.create(model="gemini-2.5-flash", messages=image_url("http://127.0.0.1:9/cat.png"))
    part = [r for r in fake_gemini.requests if "generateContent" in r["path"]][-1]["json"]["contents"][0]["parts"][0]
    assert part["inlineData"]["mimeType"] == "image/png"
    settings.IMAGE_FETCH_MAX_BYTES = 4
    with pytest.raises(openai.BadRequestError, match="larger than"):
        openai_client.chat.completions.create(
            model="gemini-2.5-flash", messages=image_url("http://127.0.0.1:9/cat.png")
        )


def test_wrong_method_is_405_in_openai_shape(gateway_url, api_key):
    resp = httpx.get(f"{gateway_url}/v1/chat/completions", headers={"authorization": f"Bearer {api_key}"})
    assert resp.status_code == 405 and resp.headers["allow"] == "POST"
    assert resp.json()["error"]["code"] == "method_not_allowed"
    assert httpx.post(f"{gateway_url}/v1/models").status_code == 405
