"""Gemini upstream codec (proxy_app.dialects.gemini): batch embeddings, models and error replies. No DB."""

from __future__ import annotations

from typing import Any

import pytest

from proxy_app.core.errors import (
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from proxy_app.core.hub import EmbedRequest, ModelInfo
from proxy_app.upstreams.gemini import codec as gemini

# ------------------------------------------------------------------------------------------------
# embeddings and models


@pytest.mark.parametrize(
    ("req", "inputs", "body"),
    [
        (
            EmbedRequest(model="emb", inputs=[], upstream_model="gemini-embedding-001"),
            ["a", "b"],
            {
                "requests": [
                    {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}},
                    {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}},
                ]
            },
        ),
        (
            EmbedRequest(
                model="emb",
                inputs=[],
                dimensions=768,
                task_type="RETRIEVAL_QUERY",
                upstream_model="models/text-embedding-004",
            ),
            ["q"],
            {
                "requests": [
                    {
                        "model": "models/text-embedding-004",
                        "content": {"parts": [{"text": "q"}]},
                        "outputDimensionality": 768,
                        "taskType": "RETRIEVAL_QUERY",
                    }
                ]
            },
        ),
    ],
)
def test_build_batch_embed_request(req: EmbedRequest, inputs: list[str], body: dict) -> None:
    assert gemini.build_batch_embed_request(req, inputs) == body


def test_batch_embed_limit() -> None:
    req = EmbedRequest(model="emb", inputs=[], upstream_model="gemini-embedding-001")
    assert gemini.EMBED_BATCH_LIMIT == 100
    assert len(gemini.build_batch_embed_request(req, ["x"] * 100)["requests"]) == 100
    with pytest.raises(ValueError):
        gemini.build_batch_embed_request(req, ["x"] * 101)


@pytest.mark.parametrize(
    ("body", "vectors"),
    [
        ({"embeddings": [{"values": [0.1, -2, 3.5]}, {"values": [1]}]}, [[0.1, -2.0, 3.5], [1.0]]),
        ({"embeddings": [{}]}, [[]]),
        ({}, []),
    ],
)
def test_parse_batch_embed_response(body: dict, vectors: list) -> None:
    assert gemini.parse_batch_embed_response(body) == vectors


@pytest.mark.parametrize(
    "body",
    [{"embeddings": {"values": [1]}}, {"embeddings": [{"values": ["1"]}]}, {"embeddings": [[1.0]]}, "nope"],
)
def test_parse_batch_embed_response_malformed(body: Any) -> None:
    with pytest.raises(UpstreamError):
        gemini.parse_batch_embed_response(body)


@pytest.mark.parametrize(
    ("raw", "info"),
    [
        (
            {
                "name": "models/gemini-2.5-flash",
                "baseModelId": "gemini-2.5-flash",
                "version": "001",
                "displayName": "Gemini 2.5 Flash",
                "inputTokenLimit": 1048576,
                "outputTokenLimit": 65536,
                "supportedGenerationMethods": ["generateContent", "countTokens"],
                "thinking": True,
            },
            ModelInfo(
                id="gemini-2.5-flash",
                owned_by="google",
                display_name="Gemini 2.5 Flash",
                input_token_limit=1048576,
                output_token_limit=65536,
                methods=["generateContent", "countTokens"],
            ),
        ),
        ({"name": "models/x"}, ModelInfo(id="x", owned_by="google")),
    ],
)
def test_parse_model(raw: dict, info: ModelInfo) -> None:
    assert gemini.parse_model(raw) == info


@pytest.mark.parametrize("raw", [{}, {"name": 3}, {"name": "models/x", "inputTokenLimit": "big"}, []])
def test_parse_model_malformed(raw: Any) -> None:
    with pytest.raises(UpstreamError):
        gemini.parse_model(raw)


# ------------------------------------------------------------------------------------------------
# errors (mapping.md §12.2)


def google(code: int, status: str, message: str, *details: dict) -> dict:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return {"error": error}


def retry_info(delay: str) -> dict:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


KEY_INVALID = {
    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
    "reason": "API_KEY_INVALID",
    "domain": "googleapis.com",
    "metadata": {"service": "generativelanguage.googleapis.com"},
}
NO_CONTENTS = "* GenerateContentRequest.contents: contents is not specified"
BAD_KEY = "API key not valid. Please pass a valid API key."
QUOTA = "You exceeded your current quota, please check your plan and billing details."
AUTH = "upstream authentication failed"


@pytest.mark.parametrize(
    ("status", "body", "header", "expected"),
    [
        pytest.param(
            400,
            google(400, "INVALID_ARGUMENT", NO_CONTENTS),
            None,
            (InvalidRequest, 400, None, NO_CONTENTS, None),
            id="400-invalid-argument",
        ),
        pytest.param(
            400,
            google(400, "OUT_OF_RANGE", "seed out of range"),
            None,
            (InvalidRequest, 400, None, "seed out of range", None),
            id="400-out-of-range",
        ),
        pytest.param(
            400,
            google(400, "INVALID_ARGUMENT", BAD_KEY, KEY_INVALID),
            None,
            (UpstreamError, 502, "bad_gateway", AUTH, None),
            id="400-api-key-invalid",
        ),
        pytest.param(
            400,
            google(400, "INVALID_ARGUMENT", BAD_KEY),
            None,
            (UpstreamError, 502, "bad_gateway", AUTH, None),
            id="400-api-key-invalid-no-details",
        ),
        pytest.param(
            401,
            google(401, "UNAUTHENTICATED", "Request had invalid authentication credentials AIzaXYZ"),
            None,
            (UpstreamError, 502, "bad_gateway", AUTH, None),
            id="401",
        ),
        pytest.param(
            403,
            google(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers"),
            None,
            (UpstreamError, 502, "bad_gateway", AUTH, None),
            id="403",
        ),
        pytest.param(403, "Forbidden", None, (UpstreamError, 502, "bad_gateway", AUTH, None), id="403-non-json"),
        pytest.param(
            400,
            google(400, "FAILED_PRECONDITION", "User location is not supported for the API use."),
            None,
            (UpstreamError, 502, "bad_gateway", "User location is not supported for the API use.", None),
            id="400-failed-precondition",
        ),
        pytest.param(
            404,
            google(404, "NOT_FOUND", "models/gemini-9 is not found for API version v1beta"),
            None,
            (NotFound, 404, "model_not_found", "models/gemini-9 is not found for API version v1beta", None),
            id="404",
        ),
        pytest.param(
            429,
            google(
                429,
                "RESOURCE_EXHAUSTED",
                QUOTA,
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure"},
                retry_info("37s"),
            ),
            "5",
            (RateLimited, 429, "rate_limit_exceeded", QUOTA, 37),
            id="429-retry-info-wins",
        ),
        pytest.param(
            429,
            google(429, "RESOURCE_EXHAUSTED", QUOTA, retry_info("1.2s")),
            None,
            (RateLimited, 429, "rate_limit_exceeded", QUOTA, 2),
            id="429-fraction-rounds-up",
        ),
        pytest.param(
            429,
            google(429, "RESOURCE_EXHAUSTED", QUOTA),
            "12",
            (RateLimited, 429, "rate_limit_exceeded", QUOTA, 12),
            id="429-header",
        ),
        pytest.param(
            429,
            google(429, "RESOURCE_EXHAUSTED", QUOTA),
            "Wed, 21 Oct 2015 07:28:00 GMT",
            (RateLimited, 429, "rate_limit_exceeded", QUOTA, 30),
            id="429-http-date-header-ignored",
        ),
        pytest.param(
            429,
            google(429, "RESOURCE_EXHAUSTED", QUOTA),
            None,
            (RateLimited, 429, "rate_limit_exceeded", QUOTA, 30),
            id="429-default",
        ),
        pytest.param(
            429,
            "Too Many Requests",
            None,
            (RateLimited, 429, "rate_limit_exceeded", "Gemini upstream answered HTTP 429", 30),
            id="429-non-json",
        ),
        pytest.param(
            500,
            google(500, "INTERNAL", "An internal error has occurred."),
            None,
            (UpstreamError, 502, "bad_gateway", "An internal error has occurred.", None),
            id="500",
        ),
        pytest.param(
            500,
            google(500, "UNKNOWN", "Unknown error"),
            None,
            (UpstreamError, 502, "bad_gateway", "Unknown error", None),
            id="500-unknown",
        ),
        pytest.param(
            501, google(501, "UNIMPLEMENTED", "nope"), None, (UpstreamError, 502, "bad_gateway", "nope", None), id="501"
        ),
        pytest.param(
            503,
            google(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
            None,
            (UpstreamUnavailable, 503, "service_unavailable", "The model is overloaded. Please try again later.", None),
            id="503",
        ),
        pytest.param(
            504,
            google(504, "DEADLINE_EXCEEDED", "Deadline expired"),
            None,
            (UpstreamTimeout, 504, "timeout", "Deadline expired", None),
            id="504",
        ),
        pytest.param(
            400,
            [google(400, "INVALID_ARGUMENT", "bad schema")],
            None,
            (InvalidRequest, 400, None, "bad schema", None),
            id="list-wrapped",
        ),
        pytest.param(
            400,
            "<html>Bad Request</html>",
            None,
            (InvalidRequest, 400, None, "Gemini upstream answered HTTP 400", None),  # the client's body
            id="400-non-json",
        ),
        pytest.param(
            404,
            "Not Found",
            None,
            (UpstreamError, 502, "bad_gateway", "Gemini upstream answered HTTP 404", None),
            id="404-non-json",
        ),
        pytest.param(
            400,
            {"error": "boom"},
            None,
            (InvalidRequest, 400, None, "Gemini upstream answered HTTP 400", None),
            id="400-odd-shape",
        ),
        pytest.param(
            502,
            None,
            None,
            (UpstreamError, 502, "bad_gateway", "Gemini upstream answered HTTP 502", None),
            id="502-no-body",
        ),
        pytest.param(
            503,
            "Service Unavailable",
            None,
            (UpstreamUnavailable, 503, "service_unavailable", "Gemini upstream answered HTTP 503", None),
            id="503-non-json",
        ),
        pytest.param(
            504,
            "",
            None,
            (UpstreamTimeout, 504, "timeout", "Gemini upstream answered HTTP 504", None),
            id="504-non-json",
        ),
        pytest.param(
            409,
            google(409, "ABORTED", "conflict"),
            None,
            (InvalidRequest, 409, None, "conflict", None),
            id="409",
        ),
        pytest.param(
            413,
            "Request Entity Too Large",
            None,
            (PayloadTooLarge, 413, "request_too_large", "Gemini upstream answered HTTP 413", None),
            id="413",
        ),
        pytest.param(
            422,
            google(422, "INVALID_ARGUMENT", "bad field"),
            None,
            (InvalidRequest, 400, None, "bad field", None),
            id="422",
        ),
        pytest.param(
            200,
            "not json",
            None,
            (UpstreamError, 502, "bad_gateway", "Gemini upstream answered HTTP 200", None),
            id="200-unparseable",
        ),
    ],
)
def test_parse_error(status: int, body: Any, header: str | None, expected: tuple) -> None:
    error = gemini.parse_error(status, body, header)
    assert (type(error), error.status, error.code, error.message, error.retry_after) == expected
    assert error.param is None
    assert "AIza" not in error.message
