"""An upstream that refuses the body the client sent (any 4xx but auth and 429) gives the client that 4xx in its
own dialect's shape, not a 502 (issue 13, item 4), with the usage row saying so; the Gemini-native pass-through
routes included, streamed or not."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.django_db(transaction=True)
BODY = {"contents": [{"parts": [{"text": "hi"}]}]}


@pytest.mark.parametrize(
    "script, status",
    [
        ({"status": 400, "body": "<html><body>Bad Request</body></html>", "content_type": "text/html"}, 400),
        (
            {
                "status": 400,
                "body": {"error": {"code": 400, "message": 'Unknown name "x"', "status": "INVALID_ARGUMENT"}},
            },
            400,
        ),  # noqa: E501
        ({"status": 413, "body": "too large", "content_type": "text/plain"}, 413),
        ({"status": 422, "body": {"error": {"code": 422, "message": "bad field", "status": "INVALID_ARGUMENT"}}}, 400),
    ],
    ids=["400-html", "400-google", "413-text", "422"],
)
@pytest.mark.parametrize("method", ["generateContent", "streamGenerateContent?alt=sse", "countTokens"])
def test_gemini_native_upstream_refusal_is_the_clients_4xx(
    gateway_url, api_key, fake_gemini, usage_rows, script, status, method
):
    fake_gemini.script("raw", on="any", **script)
    resp = httpx.post(
        f"{gateway_url}/v1beta/models/gemini-2.5-flash:{method}", json=BODY, headers={"x-goog-api-key": api_key}
    )
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] == status and error["status"] in ("INVALID_ARGUMENT", "FAILED_PRECONDITION")
    assert usage_rows()[-1].status == status


def test_openai_client_gets_the_upstreams_400_too(gateway_url, api_key, fake_gemini, usage_rows):
    fake_gemini.script("raw", status=400, body="Bad Request", content_type="text/plain")
    resp = httpx.post(
        f"{gateway_url}/v1/chat/completions",
        json={"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {api_key}"},
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == {
        "message": "Gemini upstream answered HTTP 400",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    assert usage_rows()[-1].status == 400


def test_a_wrong_upstream_url_stays_a_502(gateway_url, api_key, fake_gemini):
    """A 404 without Google's error body means the gateway's base URL is wrong: not the client's fault."""
    fake_gemini.script("raw", status=404, body="Not Found", content_type="text/plain")
    resp = httpx.post(
        f"{gateway_url}/v1beta/models/gemini-2.5-flash:generateContent", json=BODY, headers={"x-goog-api-key": api_key}
    )
    assert resp.status_code == 502 and resp.json()["error"]["status"] == "UNAVAILABLE"  # Google calls 502 so


@pytest.mark.parametrize("parts", [2, 1.5e40, "text", {"text": "hi"}])
def test_a_pass_through_body_of_any_shape_reaches_the_upstream_not_a_500(
    gateway_url, api_key, fake_gemini, usage_rows, parts
):
    """The pass-through looks into the history for thought signatures (pool affinity): odd `parts`
    are the upstream's to refuse (the fake, like Gemini, answers 400), never a TypeError of ours."""
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}, {"role": "model", "parts": parts}]}
    resp = httpx.post(
        f"{gateway_url}/v1beta/models/gemini-2.5-flash:generateContent", json=body, headers={"x-goog-api-key": api_key}
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert usage_rows()[-1].status == 400
