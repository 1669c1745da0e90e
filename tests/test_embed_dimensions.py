"""Embedding sizes are bounded like max_tokens: OpenAI `dimensions`, Gemini `outputDimensionality`
(translated and passed through) and Ollama `dimensions` outside [1, 65536] are a 400 naming the
field, in each dialect's shape, before anything reaches an upstream."""

from __future__ import annotations

import httpx
import openai
import pytest
from google.genai import errors as genai_errors
from google.genai import types

from proxy_app.core.errors import InvalidRequest
from proxy_app.dialects.gemini import request as gn
from proxy_app.dialects.ollama import request as ol
from proxy_app.dialects.openai import request as oa

BAD = [0, -1, 65_537, 2**31, 2**63, "64", 64.5, True]
GOOD = [1, 768, 65_536]


def _oa(dims):
    return oa.parse_embed_request({"model": "m", "input": "hi", "dimensions": dims})[0].dimensions


def _gemini_single(dims):
    return gn.parse_embed_request(
        {"content": {"parts": [{"text": "hi"}]}, "outputDimensionality": dims}, "m", "embedContent"
    )


def _gemini_batch(dims):
    item = {"model": "models/m", "content": {"parts": [{"text": "hi"}]}, "outputDimensionality": dims}
    return gn.parse_embed_request({"requests": [item]}, "m", "batchEmbedContents")


@pytest.mark.parametrize("dims", BAD)
def test_openai_dimensions_out_of_range_or_not_an_integer(dims):
    with pytest.raises(InvalidRequest) as info:
        _oa(dims)
    assert info.value.param == "dimensions" and "'dimensions' must be" in info.value.message


@pytest.mark.parametrize("dims", GOOD)
def test_openai_dimensions_in_range(dims):
    assert _oa(dims) == dims


@pytest.mark.parametrize("dims", [d for d in BAD if d != "64"])  # proto3: "64" is the integer 64
@pytest.mark.parametrize(
    ("parse", "param"), [(_gemini_single, "outputDimensionality"), (_gemini_batch, "requests[0].outputDimensionality")]
)
def test_gemini_output_dimensionality_bounded(parse, param, dims):
    with pytest.raises(InvalidRequest) as info:
        parse(dims)
    assert info.value.param == param and f"'{param}' must be" in info.value.message
    method = "embedContent" if parse is _gemini_single else "batchEmbedContents"
    body = (
        {"outputDimensionality": dims} if method == "embedContent" else {"requests": [{"outputDimensionality": dims}]}
    )
    with pytest.raises(InvalidRequest):  # the pass-through's check says the same
        gn.check_embed_dimensions(body, method)


@pytest.mark.parametrize("dims", [*GOOD, "64"])
def test_gemini_output_dimensionality_in_range(dims):
    assert _gemini_single(dims).dimensions == int(dims) == _gemini_batch(dims).dimensions
    gn.check_embed_dimensions({"outputDimensionality": dims}, "embedContent")


@pytest.mark.parametrize("dims", [0, 65_537, 2**31])
def test_ollama_dimensions_bounded(dims):
    with pytest.raises(InvalidRequest, match="'dimensions' must be"):
        ol.parse_embed_request({"model": "m", "input": "hi", "dimensions": dims})


# --- end to end, real SDKs -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_openai_sdk_gets_400_naming_dimensions(openai_client, fake_gemini):
    with pytest.raises(openai.BadRequestError) as info:
        openai_client.embeddings.create(model="gemini-embedding-001", input=["a"], dimensions=2**31)
    assert info.value.param == "dimensions" and "between 1 and 65536" in info.value.message
    assert info.value.body["type"] == "invalid_request_error"
    assert not [r for r in fake_gemini.requests if "embed" in r["path"].lower()]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("upstream", ["gemini", "compat"])
def test_genai_sdk_gets_400_naming_output_dimensionality(genai_client, fake_gemini, fake_openai, mapping, upstream):
    if upstream == "compat":
        mapping("embed-compat", "text-embedding-3-small", upstream="compat")
    model = "gemini-embedding-001" if upstream == "gemini" else "embed-compat"
    with pytest.raises(genai_errors.ClientError) as info:
        genai_client.models.embed_content(
            model=model, contents=["a", "b"], config=types.EmbedContentConfig(output_dimensionality=2**31)
        )
    assert info.value.code == 400 and info.value.status == "INVALID_ARGUMENT"
    assert "outputDimensionality" in info.value.message and "between 1 and 65536" in info.value.message
    assert not [r for r in fake_gemini.requests if "embed" in r["path"].lower()]


@pytest.mark.django_db(transaction=True)
def test_ollama_embed_dimensions_400(gateway_url, api_key, fake_gemini):
    resp = httpx.post(
        f"{gateway_url}/api/embed",
        headers={"authorization": f"Bearer {api_key}"},
        json={"model": "gemini-embedding-001", "input": "hi", "dimensions": 2**31},
    )
    assert resp.status_code == 400 and "'dimensions' must be" in resp.json()["error"]
