"""The Ollama dialect end to end: the official `ollama` client, unmodified, against the gateway."""

from __future__ import annotations

import base64
import json

import httpx
import ollama
import pytest

from tests.test_api_openai import PNG_1PX, TOOLS, generate_requests

pytestmark = pytest.mark.django_db(transaction=True)


def test_chat_and_usage(ollama_client, fake_gemini, mapping, usage_rows):
    mapping("llama3", "gemini-2.5-flash")
    resp = ollama_client.chat(
        model="llama3:latest", messages=[{"role": "user", "content": "hello there"}], stream=False
    )
    assert resp.model == "llama3:latest" and resp.done and resp.done_reason == "stop"
    assert "hello there" in resp.message.content and resp.message.role == "assistant"
    assert resp.prompt_eval_count > 0 and resp.eval_count > 0 and resp.total_duration > 0
    (row,) = usage_rows()
    assert (row.dialect, row.endpoint, row.upstream_model) == ("ollama", "chat", "gemini-2.5-flash")
    assert (row.prompt_tokens, row.completion_tokens) == (resp.prompt_eval_count, resp.eval_count)


def test_chat_streams_ndjson_by_default(gateway_url, api_key, fake_gemini, usage_rows):
    fake_gemini.script("text", chunks=["a ", "b ", "c"])
    with httpx.stream(
        "POST",
        f"{gateway_url}/api/chat",
        headers={"authorization": f"Bearer {api_key}"},
        content=json.dumps({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}]}),
    ) as r:
        assert r.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert "".join(line["message"]["content"] for line in lines) == "a b c"
    assert [line["done"] for line in lines][-1] is True and lines[-1]["done_reason"] == "stop"
    assert usage_rows()[-1].streamed


def test_sdk_streaming_tools_images_and_think(ollama_client, fake_gemini):
    parts = list(
        ollama_client.chat(model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}], stream=True)
    )
    assert parts[-1].done and "".join(p.message.content for p in parts).startswith("Hello")

    fake_gemini.script("tool_calls", calls=[("get_weather", {"city": "Oslo"}, None)])
    resp = ollama_client.chat(model="gemini-2.5-flash", messages=[{"role": "user", "content": "Oslo?"}], tools=TOOLS)
    call = resp.message.tool_calls[0]
    assert call.function.name == "get_weather" and call.function.arguments == {"city": "Oslo"}
    history = [
        {"role": "user", "content": "Oslo?"},
        resp.message,
        {"role": "tool", "content": "cold", "tool_name": "get_weather"},
    ]
    ollama_client.chat(model="gemini-2.5-flash", messages=history, tools=TOOLS)
    contents = generate_requests(fake_gemini)[-1]["json"]["contents"]
    assert contents[2]["parts"][0]["functionResponse"]["response"] == {"result": "cold"}

    ollama_client.chat(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "see", "images": [base64.b64decode(PNG_1PX)]}]
    )
    part = generate_requests(fake_gemini)[-1]["json"]["contents"][0]["parts"][1]
    assert part["inlineData"]["mimeType"] == "image/png"

    fake_gemini.script("thinking", thought="hmm", text="ok")
    resp = ollama_client.chat(model="gemini-2.5-flash", messages=[{"role": "user", "content": "q"}], think=True)
    assert resp.message.thinking == "hmm" and resp.message.content == "ok"


def test_generate_embed_list_show_version(ollama_client, fake_gemini, gateway_url, mapping):
    mapping("nomic-embed-text", "gemini-embedding-001")
    resp = ollama_client.generate(model="gemini-2.5-flash", prompt="Say hi", system="Be nice")
    assert resp.response.startswith("Hello") and resp.done
    body = generate_requests(fake_gemini)[-1]["json"]
    assert body["systemInstruction"] == {"parts": [{"text": "Be nice"}]}

    emb = ollama_client.embed(model="nomic-embed-text", input=["a", "b"])
    assert len(emb.embeddings) == 2
    assert sum(v * v for v in emb.embeddings[0]) == pytest.approx(1.0, abs=1e-6)  # L2-normalised like Ollama
    legacy = ollama_client.embeddings(model="nomic-embed-text", prompt="a")
    assert len(legacy.embedding) == len(emb.embeddings[0])

    names = [m.model for m in ollama_client.list().models]
    assert "nomic-embed-text:latest" in names and "gemini-2.5-flash:latest" in names
    shown = ollama_client.show("nomic-embed-text")
    assert "embedding" in shown.capabilities
    assert httpx.get(f"{gateway_url}/api/version").json()["version"]
    assert httpx.get(f"{gateway_url}/").text == "Ollama is running"


def test_errors_in_ollama_shape(ollama_client, gateway_url, api_key, fake_gemini, usage_rows):
    with pytest.raises(ollama.ResponseError) as info:
        ollama_client.chat(model="nope", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 404 and "model 'nope' not found" in info.value.error
    anonymous = httpx.post(f"{gateway_url}/api/chat", json={"model": "gemini-2.5-flash", "messages": []})
    assert anonymous.status_code == 401 and set(anonymous.json()) == {"error"}
    bad = httpx.post(f"{gateway_url}/api/chat", content=b"{oops", headers={"authorization": f"Bearer {api_key}"})
    assert bad.status_code == 400 and set(bad.json()) == {"error"}
    # form-encoded Content-Type, as Ollama's curl examples send: still parsed as JSON
    form = httpx.post(
        f"{gateway_url}/api/generate",
        headers={"authorization": f"Bearer {api_key}", "content-type": "application/x-www-form-urlencoded"},
        content=json.dumps({"model": "gemini-2.5-flash", "prompt": "hi", "stream": False}),
    )
    assert form.status_code == 200 and form.json()["done"] is True
    fake_gemini.script("break_midstream", after=1)
    with httpx.stream(
        "POST",
        f"{gateway_url}/api/chat",
        headers={"authorization": f"Bearer {api_key}"},
        json={"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "long answer"}]},
    ) as r:
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert r.status_code == 200 and "error" in lines[-1]
    assert {row.dialect for row in usage_rows()} == {"ollama"}


def test_load_request_does_not_call_upstream(gateway_url, api_key, fake_gemini):
    headers = {"authorization": f"Bearer {api_key}"}
    resp = httpx.post(f"{gateway_url}/api/chat", json={"model": "gemini-2.5-flash", "messages": []}, headers=headers)
    assert resp.json()["done_reason"] == "load"
    unload = httpx.post(
        f"{gateway_url}/api/generate", json={"model": "gemini-2.5-flash", "keep_alive": 0}, headers=headers
    )
    assert unload.json()["done_reason"] == "unload"
    assert generate_requests(fake_gemini) == []
    missing = httpx.post(f"{gateway_url}/api/chat", json={"model": "nope", "messages": []}, headers=headers)
    assert missing.status_code == 404
