"""Gemini-native dialect: embeddings, model listings and error bodies.

Pure codec tests (no Django, no DB).
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from google.genai import errors as genai_errors

from proxy_app.core import errors, hub
from proxy_app.dialects.gemini import request as gn
from tests.dialect_gemini_native_helpers import PNG, invalid, sdk_client, serve, t

# ------------------------------------------------------------------------------------------------
# embeddings (gemini.md §11, mapping.md §10)


def embed_item(*parts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"content": {"parts": list(parts)}, **extra}


def test_embed_content_request():
    body = {
        "model": "models/whatever",
        "content": {"parts": [t("hello"), t(""), t("world")]},
        "task_type": "RETRIEVAL_DOCUMENT",
        "title": "Doc",
        "output_dimensionality": 256,
    }
    assert gn.parse_embed_request(body, "emb", "embedContent") == hub.EmbedRequest(
        model="emb", inputs=["hello\nworld"], dimensions=256, task_type="RETRIEVAL_DOCUMENT", title="Doc"
    )


def test_batch_embed_request_as_the_sdk_sends_it():
    body = {
        "requests": [
            {
                "content": {"parts": [t("a")], "role": "user"},
                "taskType": "RETRIEVAL_QUERY",
                "outputDimensionality": 2,
                "model": "models/emb",
            },
            {
                "content": {"parts": [t("b")], "role": "user"},
                "taskType": "RETRIEVAL_QUERY",
                "outputDimensionality": 2,
                "model": "emb",
            },
        ]
    }
    assert gn.parse_embed_request(body, "emb", "batchEmbedContents") == hub.EmbedRequest(
        model="emb", inputs=["a", "b"], dimensions=2, task_type="RETRIEVAL_QUERY"
    )


def test_mixed_task_types_and_titles_are_not_carried():
    body = {"requests": [embed_item(t("a"), taskType="RETRIEVAL_DOCUMENT", title="A"), embed_item(t("b"), title="B")]}
    req = gn.parse_embed_request(body, "emb", "batchEmbedContents")
    assert (req.task_type, req.title, req.dimensions) == (None, None, None)


@pytest.mark.parametrize(
    ("body", "method", "param", "fragment"),
    [
        pytest.param({"requests": []}, "batchEmbedContents", "requests", "between 1 and 100", id="empty-batch"),
        pytest.param(
            {"requests": [embed_item(t("a"))] * 101}, "batchEmbedContents", "requests", "between 1 and 100", id="101"
        ),
        pytest.param({}, "batchEmbedContents", "requests", "must be an array", id="no-requests"),
        pytest.param(
            {"requests": [embed_item(t("a"), outputDimensionality=2), embed_item(t("b"))]},
            "batchEmbedContents",
            "requests",
            "same outputDimensionality",
            id="dims-differ",
        ),
        pytest.param(
            {"requests": [embed_item(t("a"), model="models/other")]},
            "batchEmbedContents",
            "requests[0].model",
            "models/emb",
            id="model-mismatch",
        ),
        pytest.param(
            embed_item({"inlineData": {"mimeType": "image/png", "data": PNG}}),
            "embedContent",
            "content.parts[0].inlineData",
            "only text",
            id="image",
        ),
        pytest.param(embed_item(t("")), "embedContent", "content.parts", "no text", id="empty-text"),
        pytest.param({"content": "hello"}, "embedContent", "content", "must be an object", id="content-string"),
        pytest.param(
            embed_item(t("a"), outputDimensionality=0),
            "embedContent",
            "outputDimensionality",
            "between 1 and 65536",
            id="dims-0",
        ),
        pytest.param(embed_item(t("a")), "embedStuff", None, "unsupported embedding method", id="method"),
    ],
)
def test_embed_request_errors(body, method, param, fragment):
    invalid(lambda: gn.parse_embed_request(body, "emb", method), param, fragment)


def test_embed_responses_and_the_sdk():
    resp = hub.EmbedResponse([[0.1, 0.2], [0.3, 0.4]], hub.Usage(2))
    assert gn.build_embed_response(resp, "batchEmbedContents") == {
        "embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}]
    }
    single = hub.EmbedResponse([[0.5]], hub.Usage(1))
    assert gn.build_embed_response(single, "embedContent") == {"embedding": {"values": [0.5]}}
    with pytest.raises(errors.UpstreamError):
        gn.build_embed_response(resp, "embedContent")

    client = sdk_client(serve(gn.build_embed_response(resp, "batchEmbedContents")))
    result = client.models.embed_content(model="emb", contents=["a", "b"])
    assert [e.values for e in result.embeddings] == [[0.1, 0.2], [0.3, 0.4]]


# ------------------------------------------------------------------------------------------------
# models (mapping.md §11)


def test_build_model_defaults_and_explicit_methods():
    chat = hub.ModelInfo(id="team/llama3:8b", input_token_limit=8192, output_token_limit=2048)
    assert gn.build_model(chat) == {
        "name": "models/team/llama3:8b",
        "baseModelId": "team/llama3:8b",
        "version": "1",
        "displayName": "team/llama3:8b",
        "description": "team/llama3:8b, served by the gateway",
        "inputTokenLimit": 8192,
        "outputTokenLimit": 2048,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    }
    embedder = gn.build_model(hub.ModelInfo(id="text-embedding-3-small", display_name="Small"))
    assert "inputTokenLimit" not in embedder and embedder["displayName"] == "Small"
    assert embedder["supportedGenerationMethods"] == ["embedContent", "batchEmbedContents"]
    explicit = gn.build_model(hub.ModelInfo(id="g", methods=["generateContent", "createCachedContent"]))
    assert explicit["supportedGenerationMethods"] == ["generateContent", "createCachedContent"]


INFOS = [hub.ModelInfo(id=f"m{k:03}") for k in range(120)]


def names(page: dict[str, Any]) -> list[str]:
    return [model["baseModelId"] for model in page["models"]]


def test_model_list_pages_with_opaque_tokens():
    first = gn.build_model_list(INFOS, None, None)
    second = gn.build_model_list(INFOS, None, first["nextPageToken"])
    last = gn.build_model_list(INFOS, None, second["nextPageToken"])

    assert names(first) == [f"m{k:03}" for k in range(50)]
    assert names(second) == [f"m{k:03}" for k in range(50, 100)]
    assert names(last) == [f"m{k:03}" for k in range(100, 120)] and "nextPageToken" not in last
    assert "offset" not in first["nextPageToken"]


@pytest.mark.parametrize(
    ("size", "count", "more"), [(0, 50, True), (7, 7, True), (120, 120, False), (5000, 120, False)]
)
def test_model_list_page_size(size, count, more):
    page = gn.build_model_list(INFOS, size, None)
    assert (len(page["models"]), "nextPageToken" in page) == (count, more)


def test_model_list_page_size_is_capped_at_1000():
    many = [hub.ModelInfo(id=f"m{k}") for k in range(1500)]
    page = gn.build_model_list(many, 5000, None)
    assert len(page["models"]) == 1000 and "nextPageToken" in page


def token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize("bad", ["!!!", "abc", token("offset:-1"), token("page:3"), token("offset:"), "é"])
def test_bad_page_token_is_400(bad):
    invalid(lambda: gn.build_model_list(INFOS, None, bad), "pageToken", "invalid pageToken")


def test_negative_page_size_is_400():
    invalid(lambda: gn.build_model_list(INFOS, -1, None), "pageSize", "non-negative")


def test_the_sdk_lists_every_page():
    def handler(request: httpx.Request) -> httpx.Response:
        size = int(request.url.params.get("pageSize", 0)) or None
        page = gn.build_model_list(INFOS, size, request.url.params.get("pageToken") or None)
        return httpx.Response(200, json=page)

    client = sdk_client(handler)
    listed = list(client.models.list(config={"page_size": 40}))
    assert [model.name for model in listed] == [f"models/m{k:03}" for k in range(120)]
    assert listed[0].supported_actions == ["generateContent", "countTokens"]


# ------------------------------------------------------------------------------------------------
# errors (mapping.md §12.1)


@pytest.mark.parametrize(
    ("err", "status", "name"),
    [
        (errors.InvalidRequest("bad field"), 400, "INVALID_ARGUMENT"),
        (errors.Unauthorized("bad key"), 401, "UNAUTHENTICATED"),
        (errors.Forbidden("not for you"), 403, "PERMISSION_DENIED"),
        (errors.NotFound("no such model"), 404, "NOT_FOUND"),
        (errors.GatewayError("method not allowed", status=405), 405, "INVALID_ARGUMENT"),
        (errors.PayloadTooLarge("too big"), 413, "INVALID_ARGUMENT"),
        (errors.RateLimited("slow down", retry_after=3), 429, "RESOURCE_EXHAUSTED"),
        (errors.GatewayError("boom"), 500, "INTERNAL"),
        (errors.UpstreamError("bad reply"), 502, "UNAVAILABLE"),
        (errors.UpstreamUnavailable("down"), 503, "UNAVAILABLE"),
        (errors.UpstreamTimeout("slow"), 504, "DEADLINE_EXCEEDED"),
        (errors.GatewayError("teapot", status=418), 418, "INVALID_ARGUMENT"),
    ],
)
def test_error_bodies(err, status, name):
    assert gn.build_error(err) == {"error": {"code": status, "message": err.message, "status": name}}


@pytest.mark.parametrize(
    ("err", "kind"),
    [
        (errors.NotFound("models/x is not found"), genai_errors.ClientError),
        (errors.UpstreamTimeout("slow"), genai_errors.ServerError),
    ],
)
def test_the_sdk_raises_error_bodies_with_code_and_status(err, kind):
    client = sdk_client(serve(gn.build_error(err), status=err.status))
    with pytest.raises(kind) as caught:
        client.models.generate_content(model="alias", contents="hello")
    assert (caught.value.code, caught.value.status, caught.value.message) == (
        err.status,
        gn.build_error(err)["error"]["status"],
        err.message,
    )
