"""Ollama dialect: model loads, /api/generate, embeddings, model listing and error bodies.

Pure codec tests (no Django, no DB); outputs are validated with ollama-python 0.6.3's own
pydantic types.
"""

from __future__ import annotations

import hashlib
import math

import pytest
from ollama._types import (
    ChatResponse,
    EmbeddingsResponse,
    EmbedResponse,
    GenerateResponse,
    ListResponse,
    ShowResponse,
)

from proxy_app.core import errors, hub
from proxy_app.dialects.ollama import request as codec
from proxy_app.dialects.ollama.request import (
    Timings,
    build_embed_response,
    build_empty_embed_response,
    build_error,
    build_legacy_embeddings_response,
    build_load_response,
    build_show,
    build_tags,
    build_version,
    is_load_request,
    parse_embed_request,
    parse_generate_request,
    parse_legacy_embeddings_request,
    parse_load_request,
    parse_show_request,
)
from tests.dialect_helpers import GIF, PDF, PNG, b64, rejected, text
from tests.dialect_ollama_helpers import TIMESTAMP, TIMINGS, USER


def generate(**fields) -> hub.ChatRequest:
    return parse_generate_request({"model": "m", "prompt": "hi", **fields})


# --- load requests ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"model": "m", "messages": []}, True),
        ({"model": "m"}, True),
        ({"model": "m", "prompt": ""}, True),
        ({"model": "m", "prompt": "", "images": []}, True),
        ({"model": "m", "keep_alive": 0}, True),
        ({"model": "m", "messages": [USER]}, False),
        ({"model": "m", "prompt": "hi"}, False),
        ({"model": "m", "prompt": "", "images": [b64(PNG)]}, False),
        ({"model": "m", "messages": "garbage"}, False),  # parse_chat_request then 400s
        ({"model": "m", "messages": {}}, False),
        ([], False),
        (None, False),
    ],
)
def test_is_load_request(body, expected):
    assert is_load_request(body) is expected


@pytest.mark.parametrize(
    ("keep_alive", "reason"),
    [
        (None, "load"),
        ("5m", "load"),
        (300, "load"),
        (-1, "load"),
        ("-1m", "load"),
        ("0.5s", "load"),
        ("junk", "load"),
        (True, "load"),
        (False, "load"),
        ([0], "load"),
        (0, "unload"),
        (0.0, "unload"),
        ("0", "unload"),
        ("0s", "unload"),
        ("0m", "unload"),
        ("0h0m0s", "unload"),
        (" 0ms ", "unload"),
    ],
)
def test_parse_load_request(keep_alive, reason):
    body = {"model": "llama3:latest", "messages": []}
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    assert parse_load_request(body) == codec.LoadRequest("llama3:latest", reason)


def test_parse_load_request_needs_a_model():
    assert rejected(parse_load_request, {"messages": []}).message == "model is required"


@pytest.mark.parametrize("reason", ["load", "unload"])
def test_chat_load_response(reason):
    body = build_load_response("llama3:latest", done_reason=reason)
    assert TIMESTAMP.fullmatch(body.pop("created_at"))
    assert body == {
        "model": "llama3:latest",
        "message": {"role": "assistant", "content": ""},
        "done_reason": reason,
        "done": True,
    }
    ChatResponse.model_validate(build_load_response("m", done_reason=reason))


def test_generate_load_response():
    body = build_load_response("m", done_reason="load", generate=True)
    assert TIMESTAMP.fullmatch(body.pop("created_at"))
    assert body == {"model": "m", "response": "", "done_reason": "load", "done": True}
    GenerateResponse.model_validate(build_load_response("m", generate=True))


# --- /api/generate ------------------------------------------------------------------------------


def test_generate_system_prompt_and_images():
    req = generate(system="be brief", prompt="what is this", images=[b64(PNG)])
    assert req.messages == [
        hub.Message("system", [text("be brief")]),
        hub.Message("user", [text("what is this"), hub.Part("media", mime_type="image/png", data=b64(PNG))]),
    ]


def test_generate_image_only_prompt():
    (msg,) = parse_generate_request({"model": "m", "images": [b64(GIF)]}).messages
    assert msg == hub.Message("user", [hub.Part("media", mime_type="image/gif", data=b64(GIF))])


def test_generate_ignores_template_raw_context_and_keep_alive():
    req = generate(system="", template="{{ .Prompt }}", raw=True, context=[1, 2, 3], keep_alive="5m", suffix="")
    assert req.messages == [hub.Message("user", [text("hi")])]


@pytest.mark.parametrize(
    ("fields", "attr", "expected"),
    [
        ({}, "stream", True),
        ({"stream": False}, "stream", False),
        ({"format": "json"}, "response_format", hub.ResponseFormat("json_object")),
        ({"options": {"num_predict": 9, "stop": "x"}}, "max_tokens", 9),
        ({"options": {"stop": "x"}}, "stop", ["x"]),
        ({"think": "max"}, "reasoning_effort", "xhigh"),
        ({"think": True}, "include_thoughts", True),
        ({"logprobs": True, "top_logprobs": 2}, "top_logprobs", 2),
        ({}, "tools", []),
    ],
)
def test_generate_fields(fields, attr, expected):
    assert getattr(generate(**fields), attr) == expected


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        (
            {"model": "codellama:7b", "prompt": "def f(", "suffix": "return x"},
            "suffix",
            '"codellama:7b" does not support insert',
        ),
        ({"model": "m", "prompt": ""}, "prompt", "'prompt' must not be empty (an empty prompt only loads the model)"),
        ({"model": "m", "prompt": 5}, "prompt", "'prompt' must be a string"),
        ({"model": "m", "prompt": "x", "system": ["a"]}, "system", "'system' must be a string"),
        ({"model": "m", "prompt": "x", "suffix": 1}, "suffix", "'suffix' must be a string"),
        (
            {"model": "m", "prompt": "x", "images": [b64(PDF)]},
            "images[0]",
            "'images[0]' is not a supported image: expected PNG, JPEG, GIF or WEBP data",
        ),
        ({"prompt": "x"}, "model", "model is required"),
        (
            {"model": "m", "prompt": "x", "think": "none"},
            "think",
            '\'think\' must be true, false, "low", "medium", "high" or "max"',
        ),
    ],
)
def test_generate_rejects(body, param, message):
    err = rejected(parse_generate_request, body)
    assert (err.param, err.message) == (param, message)


# --- embeddings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("input_", "expected"),
    [
        ("hello", ["hello"]),
        (["a", "b"], ["a", "b"]),
        ("", []),
        ([], []),
        (None, []),
    ],
)
def test_parse_embed_request_inputs(input_, expected):
    body = {"model": "all-minilm", "truncate": False, "keep_alive": "5m", "options": {"num_ctx": 1}}
    if input_ is not None:
        body["input"] = input_
    req = parse_embed_request(body)
    assert req == hub.EmbedRequest(model="all-minilm", inputs=expected, normalize=True)


def test_parse_embed_request_dimensions():
    assert parse_embed_request({"model": "m", "input": "x", "dimensions": 256}).dimensions == 256


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"model": "m", "input": 5}, "input", "invalid input type: 'input' must be a string or an array of strings"),
        (
            {"model": "m", "input": {"a": 1}},
            "input",
            "invalid input type: 'input' must be a string or an array of strings",
        ),
        ({"model": "m", "input": ["a", 1]}, "input[1]", "'input[1]' must be a string"),
        ({"model": "m", "input": ["a", ""]}, "input[1]", "'input[1]' must not be empty"),
        ({"model": "m", "input": "x", "dimensions": 0}, "dimensions", "'dimensions' must be between 1 and 65536"),
        ({"model": "m", "input": "x", "dimensions": "8"}, "dimensions", "'dimensions' must be an integer"),
        ({"input": "x"}, "model", "model is required"),
    ],
)
def test_parse_embed_request_rejects(body, param, message):
    err = rejected(parse_embed_request, body)
    assert (err.param, err.message) == (param, message)


@pytest.mark.parametrize(("prompt", "inputs"), [("hello", ["hello"]), ("", []), (None, [])])
def test_parse_legacy_embeddings_request(prompt, inputs):
    body = {"model": "m", "options": {}, "keep_alive": "5m"}
    if prompt is not None:
        body["prompt"] = prompt
    assert parse_legacy_embeddings_request(body) == hub.EmbedRequest(model="m", inputs=inputs, normalize=False)


def test_parse_legacy_embeddings_request_rejects():
    assert rejected(parse_legacy_embeddings_request, {"model": "m", "prompt": ["x"]}).param == "prompt"
    assert rejected(parse_legacy_embeddings_request, {"prompt": "x"}).message == "model is required"


def test_build_embed_response_normalises():
    resp = hub.EmbedResponse(vectors=[[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]], usage=hub.Usage(prompt_tokens=8))
    body = build_embed_response(resp, "all-minilm", timings=Timings(total_ns=50, load_ns=0))
    assert body == {
        "model": "all-minilm",
        "embeddings": [[0.6, 0.8], [0.0, 0.0], [1.0, 0.0]],
        "total_duration": 50,
        "load_duration": 0,
        "prompt_eval_count": 8,
    }
    assert resp.vectors[0] == [3.0, 4.0]  # the hub object is not mutated
    parsed = EmbedResponse.model_validate(body)
    assert math.isclose(math.hypot(*parsed.embeddings[0]), 1.0)


def test_build_embed_response_normalising_twice_changes_nothing():
    once = build_embed_response(hub.EmbedResponse([[1.0, 2.0, 2.0]], hub.Usage()), "m", timings=TIMINGS)["embeddings"]
    twice = build_embed_response(hub.EmbedResponse(once, hub.Usage()), "m", timings=TIMINGS)["embeddings"]
    assert all(math.isclose(a, b) for a, b in zip(once[0], twice[0]))


def test_build_embed_response_without_normalising():
    body = build_embed_response(hub.EmbedResponse([[3.0, 4.0]], hub.Usage()), "m", timings=TIMINGS, normalize=False)
    assert body["embeddings"] == [[3.0, 4.0]]


def test_empty_embed_response():
    body = build_empty_embed_response("all-minilm")
    assert body == {"model": "all-minilm", "embeddings": []}
    EmbedResponse.model_validate(body)


@pytest.mark.parametrize(("vectors", "expected"), [([[3.0, 4.0]], [3.0, 4.0]), ([], [])])
def test_legacy_embeddings_response(vectors, expected):
    body = build_legacy_embeddings_response(hub.EmbedResponse(vectors, hub.Usage()))
    assert body == {"embedding": expected}
    EmbeddingsResponse.model_validate(body)


# --- model listing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "name", "family"),
    [
        ("gemini-2.5-flash", "gemini-2.5-flash:latest", "gemini"),
        ("gemma-3-27b-it", "gemma-3-27b-it:latest", "gemma"),
        ("gpt-4o", "gpt-4o:latest", "openai"),
        ("llama3:8b", "llama3:8b", "openai"),
        ("team/model", "team/model:latest", "openai"),
        ("google/gemini-pro:search", "google/gemini-pro:search", "gemini"),
        ("host:5000/model", "host:5000/model:latest", "openai"),
    ],
)
def test_build_tags_entry(model_id, name, family):
    info = hub.ModelInfo(id=model_id, created=1_700_000_000, methods=["generateContent"])
    (entry,) = build_tags([info])["models"]
    assert entry == {
        "name": name,
        "model": name,
        "modified_at": "2023-11-14T22:13:20.000000000Z",
        "size": 0,
        "digest": hashlib.sha256(model_id.encode()).hexdigest(),
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": family,
            "families": [family],
            "parameter_size": "",
            "quantization_level": "",
        },
        "capabilities": ["completion", "tools", "vision", "thinking"],
    }


def test_build_tags_validates_with_ollama_python():
    infos = [hub.ModelInfo(id="gemini-2.5-flash"), hub.ModelInfo(id="text-embedding-004", created=5)]
    parsed = ListResponse.model_validate(build_tags(infos))
    assert [m.model for m in parsed.models] == ["gemini-2.5-flash:latest", "text-embedding-004:latest"]
    assert parsed.models[0].details.family == "gemini"
    assert len(parsed.models[0].digest) == 64
    assert build_tags([]) == {"models": []}


@pytest.mark.parametrize(
    ("info", "capabilities"),
    [
        (
            hub.ModelInfo(id="gemini-2.5-pro", methods=["generateContent", "countTokens"]),
            ["completion", "tools", "vision", "thinking"],
        ),
        (hub.ModelInfo(id="gemini-embedding-001", methods=["embedContent", "countTokens"]), ["embedding"]),
        (hub.ModelInfo(id="my-embedder", methods=["embedContent", "batchEmbedContents"]), ["embedding"]),
        (hub.ModelInfo(id="text-embedding-3-small"), ["embedding"]),
        (hub.ModelInfo(id="gpt-4o"), ["completion", "tools", "vision", "thinking"]),
        (
            hub.ModelInfo(id="hybrid", methods=["generateContent", "embedContent"]),
            ["completion", "tools", "vision", "thinking"],
        ),
    ],
)
def test_show_capabilities(info, capabilities):
    assert build_show(info)["capabilities"] == capabilities


def test_build_show_shape():
    info = hub.ModelInfo(
        id="gemini-2.5-flash", created=1_700_000_000, input_token_limit=1_048_576, methods=["generateContent"]
    )
    body = build_show(info)
    assert body == {
        "modelfile": "",
        "parameters": "",
        "template": "",
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": "gemini",
            "families": ["gemini"],
            "parameter_size": "",
            "quantization_level": "",
        },
        "model_info": {"general.architecture": "gemini", "gemini.context_length": 1_048_576},
        "capabilities": ["completion", "tools", "vision", "thinking"],
        "modified_at": "2023-11-14T22:13:20.000000000Z",
    }
    parsed = ShowResponse.model_validate(body)
    assert parsed.modelinfo["gemini.context_length"] == 1_048_576
    assert "vision" in parsed.capabilities


def test_build_show_default_context_length():
    model_info = build_show(hub.ModelInfo(id="gpt-4o"))["model_info"]
    assert model_info == {"general.architecture": "openai", "openai.context_length": 32768}


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ({"model": "llava"}, "llava"),
        ({"name": "llava:latest"}, "llava:latest"),
        ({"model": "a", "name": "b"}, "a"),
        ({"model": "", "name": "b"}, "b"),
    ],
)
def test_parse_show_request(body, name):
    assert parse_show_request(body) == name


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "model is required"),
        ({"model": ""}, "model is required"),
        ({"model": 1}, "'model' must be a string"),
        ([], "request body must be a JSON object"),
    ],
)
def test_parse_show_request_rejects(body, message):
    assert rejected(parse_show_request, body).message == message


def test_version_and_root():
    assert build_version() == {"version": "0.6.4"}
    assert tuple(int(x) for x in build_version()["version"].split(".")) >= (0, 6, 4)
    assert codec.ROOT_TEXT == "Ollama is running"
    assert codec.MEDIA_TYPE == "application/x-ndjson"


# --- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("err", "body"),
    [
        (errors.InvalidRequest("'stream' must be a boolean", param="stream"), {"error": "'stream' must be a boolean"}),
        (errors.Unauthorized("Missing API key."), {"error": "Missing API key."}),
        (
            errors.Forbidden("This API key may not use the model 'x'."),
            {"error": "This API key may not use the model 'x'."},
        ),
        (
            errors.NotFound("The model 'llama3:latest' does not exist or you do not have access to it."),
            {"error": "model 'llama3:latest' not found"},
        ),
        (
            errors.NotFound("models/foo is not found for API version v1beta"),
            {"error": "models/foo is not found for API version v1beta"},
        ),
        (
            errors.NotFound("Unknown endpoint GET /api/nope", code="not_found"),
            {"error": "Unknown endpoint GET /api/nope"},
        ),
        (errors.PayloadTooLarge("too big"), {"error": "too big"}),
        (errors.RateLimited("slow down", retry_after=3), {"error": "slow down"}),
        (errors.UpstreamError("upstream authentication failed"), {"error": "upstream authentication failed"}),
        (errors.UpstreamUnavailable("no upstream"), {"error": "no upstream"}),
        (errors.UpstreamTimeout("timed out"), {"error": "timed out"}),
    ],
)
def test_build_error(err, body):
    assert build_error(err) == body


def test_build_error_names_the_requested_model():
    err = errors.NotFound("no such alias")
    assert build_error(err, model="mistral") == {"error": "model 'mistral' not found"}
