"""Ollama dialect: malformed input never escapes as anything but InvalidRequest, and the official
ollama-python client drives the codec through httpx.MockTransport.

Pure codec tests (no Django, no DB).
"""

from __future__ import annotations

import copy

import httpx
import ollama
import pytest

from proxy_app.core import errors, hub
from proxy_app.dialects.ollama import request as codec
from proxy_app.dialects.ollama.request import (
    ChatStreamEncoder,
    GenerateStreamEncoder,
    build_chat_response,
    build_embed_response,
    build_empty_embed_response,
    build_error,
    build_generate_response,
    build_legacy_embeddings_response,
    build_load_response,
    build_show,
    build_tags,
    is_load_request,
    parse_body,
    parse_chat_request,
    parse_embed_request,
    parse_generate_request,
    parse_legacy_embeddings_request,
    parse_load_request,
    parse_show_request,
)
from tests.dialect_helpers import JPEG, PNG, b64
from tests.dialect_ollama_helpers import TIMINGS, USAGE

# --- malformed input never escapes as anything but InvalidRequest ------------------------------------

JUNK = [
    None,
    True,
    0,
    -1,
    1.5,
    float("inf"),
    "",
    "x",
    "json",
    [],
    [None],
    ["x"],
    [{}],
    {},
    {"a": 1},
    {"function": None},
]
SAMPLES = {
    parse_chat_request: {
        "model": "m",
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "u", "images": [b64(PNG)]},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {"a": 1}}}],
            },
            {"role": "tool", "content": "r", "tool_name": "f", "tool_call_id": "c"},
        ],
        "tools": [
            {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}
        ],
        "format": {"type": "object"},
        "options": {
            "num_predict": 1,
            "temperature": 0.1,
            "top_p": 0.5,
            "top_k": 3,
            "seed": 1,
            "stop": ["x"],
            "presence_penalty": 0.1,
            "frequency_penalty": 0.1,
        },
        "think": "low",
        "stream": False,
        "logprobs": True,
        "top_logprobs": 2,
        "keep_alive": "5m",
    },
    parse_generate_request: {
        "model": "m",
        "prompt": "p",
        "system": "s",
        "suffix": "",
        "images": [b64(JPEG)],
        "format": "json",
        "options": {"stop": "x"},
        "think": True,
        "stream": True,
        "template": "t",
        "raw": False,
        "context": [1],
    },
    parse_embed_request: {"model": "m", "input": ["a", "b"], "dimensions": 3, "truncate": True},
    parse_legacy_embeddings_request: {"model": "m", "prompt": "p"},
    parse_show_request: {"model": "m", "verbose": True},
    parse_load_request: {"model": "m", "messages": [], "keep_alive": 0},
}


def paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for k, item in enumerate(value):
            yield from paths(item, (*prefix, k))


def replaced(body, path, junk):
    if not path:
        return copy.deepcopy(junk)
    out = copy.deepcopy(body)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = copy.deepcopy(junk)
    return out


@pytest.mark.parametrize("parse", list(SAMPLES), ids=lambda f: f.__name__)
def test_malformed_values_raise_only_invalid_request(parse):
    sample = SAMPLES[parse]
    parse(copy.deepcopy(sample))  # the sample itself is valid
    tried = 0
    for path in paths(sample):
        for junk in JUNK:
            try:
                parse(replaced(sample, path, junk))
            except errors.InvalidRequest:
                pass
            tried += 1
    assert tried > 20


@pytest.mark.parametrize("parse", list(SAMPLES), ids=lambda f: f.__name__)
def test_missing_keys_raise_only_invalid_request(parse):
    sample = SAMPLES[parse]
    for path in paths(sample):
        if not path or not isinstance(path[-1], str):
            continue
        body = copy.deepcopy(sample)
        target = body
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        try:
            parse(body)
        except errors.InvalidRequest:
            pass


# --- the official client against the codec (httpx.MockTransport) ------------------------------------

REPLY = [
    hub.StreamEvent(deltas=[hub.ChoiceDelta(reasoning="Hmm.")]),
    hub.StreamEvent(deltas=[hub.ChoiceDelta(text="It is ")]),
    hub.StreamEvent(deltas=[hub.ChoiceDelta(text="sunny.", finish_reason="stop")]),
]


def fake_server(request: httpx.Request) -> httpx.Response:
    """A toy /api/* server built from the codec alone: what the real views will do, minus I/O."""
    path = request.url.path
    if path == "/api/tags":
        return httpx.Response(200, json=build_tags([hub.ModelInfo(id="gemini-2.5-flash")]))
    body = parse_body(request.content)
    if path == "/api/show":
        name = parse_show_request(body)
        if name != "gemini-2.5-flash":
            return httpx.Response(404, json=build_error(errors.NotFound(f"The model '{name}' does not exist.")))
        return httpx.Response(200, json=build_show(hub.ModelInfo(id=name, input_token_limit=1000)))
    if path == "/api/embed":
        req = parse_embed_request(body)
        if not req.inputs:
            return httpx.Response(200, json=build_empty_embed_response(req.model))
        vectors = [[float(len(t)), 1.0] for t in req.inputs]
        resp = hub.EmbedResponse(vectors, hub.Usage(prompt_tokens=len(req.inputs)))
        return httpx.Response(200, json=build_embed_response(resp, req.model, timings=TIMINGS))
    if path == "/api/embeddings":
        req = parse_legacy_embeddings_request(body)
        return httpx.Response(200, json=build_legacy_embeddings_response(hub.EmbedResponse([[0.5, 0.5]], hub.Usage())))
    if is_load_request(body):
        load = parse_load_request(body)
        reply = build_load_response(load.model, done_reason=load.done_reason, generate=path == "/api/generate")
        return httpx.Response(200, json=reply)
    chat_path = path == "/api/chat"
    req = parse_chat_request(body) if chat_path else parse_generate_request(body)
    if req.messages[-1].text == "fail midway":
        encoder = ChatStreamEncoder(req.model)
        lines = encoder.encode(REPLY[1]) + [encoder.error(errors.UpstreamError("upstream broke"))]
        return httpx.Response(200, content=b"".join(lines))
    if req.stream:
        encoder = ChatStreamEncoder(req.model) if chat_path else GenerateStreamEncoder(req.model)
        lines = [line for e in REPLY for line in encoder.encode(e)] + encoder.finish(USAGE, TIMINGS)
        return httpx.Response(200, content=b"".join(lines), headers={"content-type": codec.MEDIA_TYPE})
    resp = hub.ChatResponse([hub.Choice(text="It is sunny.", reasoning="Hmm.")], USAGE)
    build = build_chat_response if chat_path else build_generate_response
    return httpx.Response(200, json=build(resp, req.model, timings=TIMINGS))


@pytest.fixture
def client() -> ollama.Client:
    return ollama.Client(host="http://gateway.test", transport=httpx.MockTransport(fake_server))


def test_client_chat(client):
    resp = client.chat(model="gemini-2.5-flash", messages=[{"role": "user", "content": "weather?"}], think=True)
    assert (resp.message.content, resp.message.thinking, resp.done_reason, resp.eval_count) == (
        "It is sunny.",
        "Hmm.",
        "stop",
        11,
    )


def test_client_chat_stream(client):
    parts = list(client.chat(model="m", messages=[{"role": "user", "content": "weather?"}], stream=True))
    assert "".join(p.message.content for p in parts) == "It is sunny."
    assert "".join(p.message.thinking or "" for p in parts) == "Hmm."
    assert parts[-1].done and parts[-1].eval_duration == 600


def test_client_chat_with_tools_and_images(client):
    def get_weather(city: str) -> str:
        """Get the weather.

        Args:
            city: The city
        """
        return "sunny"

    msgs = [
        {"role": "user", "content": "look", "images": [PNG]},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}],
        },
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
    ]
    assert client.chat(model="m", messages=msgs, tools=[get_weather]).message.content == "It is sunny."


def test_client_stream_error_line_raises(client):
    stream = client.chat(model="m", messages=[{"role": "user", "content": "fail midway"}], stream=True)
    assert next(stream).message.content == "It is "
    with pytest.raises(ollama.ResponseError) as info:
        next(stream)
    assert info.value.error == "upstream broke"


def test_client_generate(client):
    assert client.generate(model="m", prompt="weather?", system="brief").response == "It is sunny."
    parts = list(client.generate(model="m", prompt="weather?", stream=True))
    assert "".join(p.response for p in parts) == "It is sunny." and parts[-1].done_reason == "stop"


def test_client_load_requests(client):
    assert client.generate(model="m").done_reason == "load"
    assert client.generate(model="m", keep_alive=0).done_reason == "unload"
    assert client.chat(model="m", messages=[]).done_reason == "load"


def test_client_embeddings(client):
    resp = client.embed(model="m", input=["abc", "d"])
    assert [[round(x, 4) for x in v] for v in resp.embeddings] == [[0.9487, 0.3162], [0.7071, 0.7071]]
    assert client.embed(model="m", input=[]).embeddings == []
    assert client.embeddings(model="m", prompt="x").embedding == [0.5, 0.5]


def test_client_list_and_show(client):
    assert [m.model for m in client.list().models] == ["gemini-2.5-flash:latest"]
    shown = client.show("gemini-2.5-flash")
    assert shown.modelinfo["gemini.context_length"] == 1000 and shown.capabilities[0] == "completion"
    with pytest.raises(ollama.ResponseError) as info:
        client.show("nope")
    assert (info.value.status_code, info.value.error) == (404, "model 'nope' not found")
