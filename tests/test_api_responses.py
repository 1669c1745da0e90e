"""End to end through the real gateway on a socket, driven by the official openai SDK's
`client.responses`: create, stream, stored state (previous_response_id, retrieve, delete,
input_items), a function call round trip, errors, and the OpenAI-compatible upstream."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.conftest import UPSTREAM_KEY

pytestmark = pytest.mark.django_db(transaction=True)

TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "strict": True,
    }
]


def generate_requests(fake):
    return [r for r in fake.requests if ":generateContent" in r["path"] or ":streamGenerateContent" in r["path"]]


def test_create_text_settings_and_usage(openai_client, fake_gemini, mapping, usage_rows, api_key):
    mapping("gpt-5", "gemini-2.5-flash")
    resp = openai_client.responses.create(
        model="gpt-5",
        instructions="Be brief.",
        input=[
            {"role": "developer", "content": "Answer in English."},
            {"role": "user", "content": [{"type": "input_text", "text": "hello"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hi!"}]},
            {"role": "user", "content": "hi there"},
        ],
        max_output_tokens=50,
        temperature=0.3,
        top_p=0.9,
        reasoning={"effort": "low"},
        metadata={"k": "v"},
    )
    assert resp.id.startswith("resp_") and resp.object == "response" and resp.status == "completed"
    assert resp.model == "gpt-5" and "hi there" in resp.output_text
    (item,) = resp.output
    assert item.type == "message" and item.id.startswith("msg_") and item.content[0].type == "output_text"
    assert resp.usage.input_tokens > 0 and resp.usage.output_tokens > 0
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens
    assert resp.usage.input_tokens_details.cached_tokens == 0
    assert resp.instructions == "Be brief." and resp.metadata == {"k": "v"}

    sent = generate_requests(fake_gemini)[-1]
    assert sent["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent["headers"]["x-goog-api-key"] == UPSTREAM_KEY and api_key not in sent["body"].decode()
    body = sent["json"]
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief.\n\nAnswer in English."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    config = body["generationConfig"]
    assert (config["temperature"], config["topP"], config["maxOutputTokens"]) == (0.3, 0.9, 50)
    assert "thinkingConfig" in config
    (row,) = usage_rows()
    assert (row.dialect, row.endpoint, row.status) == ("responses", "responses", 200)
    assert (row.requested_model, row.upstream_model) == ("gpt-5", "gemini-2.5-flash")
    assert (row.prompt_tokens, row.completion_tokens) == (resp.usage.input_tokens, resp.usage.output_tokens)


def test_string_input_json_schema_and_image(openai_client, fake_gemini):
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    fake_gemini.script("text", text='{"a": "x"}')
    resp = openai_client.responses.create(
        model="gemini-2.5-flash",
        input="give json",
        text={"format": {"type": "json_schema", "name": "thing", "schema": schema, "strict": True}},
    )
    assert json.loads(resp.output_text) == {"a": "x"}
    config = generate_requests(fake_gemini)[-1]["json"]["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP4z8DwHwAFAAH/q842iQAAAABJRU5ErkJggg=="
    openai_client.responses.create(
        model="gemini-2.5-flash",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what is this"},
                    {"type": "input_image", "image_url": f"data:image/png;base64,{png}", "detail": "auto"},
                ],
            }
        ],
        text={"format": {"type": "json_object"}},
    )
    sent = generate_requests(fake_gemini)[-1]["json"]
    parts = sent["contents"][0]["parts"]
    assert parts[1]["inlineData"] == {"mimeType": "image/png", "data": png}
    assert sent["generationConfig"]["responseMimeType"] == "application/json"


def test_incomplete_on_max_tokens(openai_client, fake_gemini):
    fake_gemini.script("text", text="cut", finish_reason="MAX_TOKENS")
    resp = openai_client.responses.create(model="gemini-2.5-flash", input="x", max_output_tokens=16)
    assert resp.status == "incomplete" and resp.incomplete_details.reason == "max_output_tokens"


def test_function_call_round_trip(openai_client, fake_gemini):
    fake_gemini.script("tool_calls", calls=[("get_weather", {"city": "Paris"})])
    first = openai_client.responses.create(
        model="gemini-2.5-flash", input="weather in Paris?", tools=TOOLS, tool_choice="required"
    )
    (call,) = first.output
    assert call.type == "function_call" and call.id.startswith("fc_") and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"} and call.call_id
    tool_config = generate_requests(fake_gemini)[-1]["json"]["toolConfig"]
    assert tool_config["functionCallingConfig"]["mode"] == "ANY"
    decl = generate_requests(fake_gemini)[-1]["json"]["tools"][0]["functionDeclarations"][0]
    assert decl["name"] == "get_weather"

    # The client resends everything (store: false style), with the output of the call.
    second = openai_client.responses.create(
        model="gemini-2.5-flash",
        input=[
            {"role": "user", "content": "weather in Paris?"},
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp": 21}'},
        ],
        tools=TOOLS,
        store=False,
    )
    assert second.output_text
    contents = generate_requests(fake_gemini)[-1]["json"]["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[1]["parts"][0]["functionCall"]["name"] == "get_weather"
    assert contents[1]["parts"][0]["functionCall"]["args"] == {"city": "Paris"}
    response = contents[2]["parts"][0]["functionResponse"]
    assert response["name"] == "get_weather" and response["response"] == {"temp": 21}
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.retrieve(second.id)


def test_previous_response_id_round_trip_and_state(openai_client, fake_gemini, gateway_url, user, issue):
    fake_gemini.script("tool_calls", calls=[("get_weather", {"city": "Oslo"})])
    first = openai_client.responses.create(
        model="gemini-2.5-flash", instructions="Old rules.", input="weather in Oslo?", tools=TOOLS
    )
    call = first.output[0]
    second = openai_client.responses.create(
        model="gemini-2.5-flash",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=TOOLS,
    )
    assert second.previous_response_id == first.id
    sent = generate_requests(fake_gemini)[-1]["json"]
    assert "systemInstruction" not in sent  # instructions are not inherited
    assert [c["role"] for c in sent["contents"]] == ["user", "model", "user"]
    assert sent["contents"][2]["parts"][0]["functionResponse"]["response"] == {"result": "sunny"}

    got = openai_client.responses.retrieve(second.id)
    assert got.id == second.id and got.output_text == second.output_text
    items = openai_client.responses.input_items.list(second.id, order="asc")
    kinds = [i.type for i in items.data]
    assert kinds == ["message", "function_call", "function_call_output"]
    assert all(i.id for i in items.data)

    # Another user's key sees nothing.
    from django.contrib.auth import get_user_model

    bob = get_user_model().objects.create_user(username="bob", password="pw-bob-123")
    other = openai.OpenAI(base_url=f"{gateway_url}/v1", api_key=issue(bob, name="b"), max_retries=0)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(second.id)
    with pytest.raises(openai.NotFoundError) as info:
        other.responses.create(model="gemini-2.5-flash", previous_response_id=second.id, input="x")
    assert info.value.body["param"] == "previous_response_id"
    assert info.value.body["code"] == "previous_response_not_found"
    other.close()

    openai_client.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.retrieve(second.id)
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.delete(second.id)


def test_stream_text_with_sdk_helper(openai_client, fake_gemini, usage_rows):
    fake_gemini.script("text", chunks=["one ", "two ", "three"])
    with openai_client.responses.stream(model="gemini-2.5-flash", input="count") as stream:
        events = list(stream)
        final = stream.get_final_response()
    names = [e.type for e in events]
    assert names[:2] == ["response.created", "response.in_progress"]
    assert names[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "one two three" == final.output_text
    for name in (
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ):
        assert name in names
    assert final.status == "completed" and final.usage.total_tokens > 0
    assert openai_client.responses.retrieve(final.id).output_text == "one two three"
    row = usage_rows()[-1]
    assert (row.dialect, row.status) == ("responses", 200)


def test_stream_function_call_iterating_create(openai_client, fake_gemini):
    fake_gemini.script("tool_calls", calls=[("get_weather", {"city": "Rome"})], text="Let me check.")
    events = list(openai_client.responses.create(model="gemini-2.5-flash", input="x", tools=TOOLS, stream=True))
    names = [e.type for e in events]
    assert "response.function_call_arguments.delta" in names and "response.function_call_arguments.done" in names
    done = [e.item for e in events if e.type == "response.output_item.done"]
    assert [i.type for i in done] == ["message", "function_call"]
    assert json.loads(done[1].arguments) == {"city": "Rome"}
    final = events[-1]
    assert final.type == "response.completed"
    assert [i.type for i in final.response.output] == ["message", "function_call"]


def test_errors_in_openai_shape(openai_client, gateway_url, api_key, fake_gemini):
    auth = {"Authorization": f"Bearer {api_key}"}
    bad = httpx.post(f"{gateway_url}/v1/responses", headers=auth, json={"model": "gemini-2.5-flash"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "input"
    assert bad.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as info:
        openai_client.responses.create(model="gemini-2.5-flash", input="x", tools=[{"type": "web_search"}])
    assert info.value.body["param"] == "tools[0].type"
    with pytest.raises(openai.BadRequestError) as info:
        openai_client.responses.create(model="gemini-2.5-flash", input="x", temperature=5)
    assert info.value.body["param"] == "temperature"
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.create(model="no-such-model", input="x")
    wrong = openai.OpenAI(base_url=f"{gateway_url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.responses.create(model="gemini-2.5-flash", input="x")
    wrong.close()
    unknown = httpx.post(f"{gateway_url}/v1/responses/resp_1/cancel", headers=auth)
    assert unknown.status_code == 404 and "error" in unknown.json()
    wrong_method = httpx.put(f"{gateway_url}/v1/responses", headers=auth)
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()


def test_upstream_rate_limit_is_429(openai_client, fake_gemini):
    fake_gemini.script("error", status=429)
    with pytest.raises(openai.RateLimitError) as info:
        openai_client.responses.create(model="gemini-2.5-flash", input="x")
    assert info.value.body["code"]
    assert info.value.response.headers["retry-after"]


def test_error_after_stream_started_is_response_failed(openai_client, fake_gemini, usage_rows):
    fake_gemini.script("error_midstream", after=1, status=503)
    events = list(openai_client.responses.create(model="gemini-2.5-flash", input="long story", stream=True))
    names = [e.type for e in events]
    assert names[0] == "response.created" and names[-2:] == ["error", "response.failed"]
    assert events[-1].response.status == "failed" and events[-1].response.error.code == "server_error"
    assert usage_rows()[-1].status != 200


def test_openai_compatible_upstream(openai_client, fake_openai, mapping, usage_rows):
    mapping("gpt-compat", "gpt-4o-mini", upstream="compat")
    resp = openai_client.responses.create(model="gpt-compat", instructions="Be brief.", input="hello compat")
    assert resp.status == "completed" and resp.output_text
    sent = [r for r in fake_openai.requests if r["path"].endswith("/chat/completions")][-1]["json"]
    assert sent["model"] == "gpt-4o-mini"
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    with openai_client.responses.stream(model="gpt-compat", input="stream compat") as stream:
        final = stream.get_final_response()
    assert final.status == "completed" and final.output_text
    assert usage_rows()[-1].dialect == "responses"


def test_reasoning_summary_plain_and_streamed(openai_client, fake_gemini):
    fake_gemini.script("thinking", thought="Pondering.", text="Answer.")
    resp = openai_client.responses.create(
        model="gemini-2.5-flash", input="think", reasoning={"effort": "medium", "summary": "auto"}
    )
    assert [i.type for i in resp.output] == ["reasoning", "message"]
    assert resp.output[0].summary[0].text == "Pondering." and resp.output_text == "Answer."
    assert resp.usage.output_tokens_details.reasoning_tokens > 0
    config = generate_requests(fake_gemini)[-1]["json"]["generationConfig"]
    assert config["thinkingConfig"]["includeThoughts"] is True
    fake_gemini.script("thinking", thought="Pondering.", text="Answer.")
    with openai_client.responses.stream(
        model="gemini-2.5-flash", input="think", reasoning={"effort": "medium", "summary": "auto"}
    ) as stream:
        names = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.reasoning_summary_text.delta" in names
    assert [i.type for i in final.output] == ["reasoning", "message"] and final.output_text == "Answer."


def test_gemini_3_signature_survives_a_stateless_tool_turn(openai_client, fake_gemini, mapping):
    """Codex sends store: false and resends the whole history; the thought signature of the call
    comes back from the gateway's own store."""
    mapping("codex-model", "gemini-3-flash-preview")
    fake_gemini.script("tool_calls", calls=[("get_weather", {"city": "Bern"})])
    events = list(
        openai_client.responses.create(model="codex-model", input="w?", tools=TOOLS, store=False, stream=True)
    )
    call = next(e.item for e in events if e.type == "response.output_item.done" and e.item.type == "function_call")
    second = openai_client.responses.create(
        model="codex-model",
        input=[
            {"role": "user", "content": "w?"},
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": "cold"},
        ],
        tools=TOOLS,
        store=False,
    )
    assert second.status == "completed"
    part = generate_requests(fake_gemini)[-1]["json"]["contents"][1]["parts"][0]
    assert part["functionCall"]["name"] == "get_weather" and part.get("thoughtSignature")


def test_keepalive_comments_fill_silences(openai_client, fake_gemini, gateway_url, api_key, monkeypatch):
    from proxy_app.dialects.responses import surface

    monkeypatch.setattr(surface, "KEEPALIVE_SECONDS", 0.05)
    fake_gemini.script("slow", chunks=["a", "b"], between=0.3)
    with httpx.stream(
        "POST",
        f"{gateway_url}/v1/responses",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"model": "gemini-2.5-flash", "input": "x", "stream": True},
        timeout=20,
    ) as raw:
        body = raw.read().decode()
    assert ": keepalive" in body and "response.completed" in body
    fake_gemini.script("slow", chunks=["a", "b"], between=0.3)
    with openai_client.responses.stream(model="gemini-2.5-flash", input="x") as stream:
        assert stream.get_final_response().output_text == "ab"


def test_input_tokens_estimate(openai_client, fake_gemini, usage_rows):
    counted = openai_client.responses.input_tokens.count(model="gemini-2.5-flash", input="hello there", tools=TOOLS)
    assert counted.input_tokens > 0
    assert generate_requests(fake_gemini) == []
    row = usage_rows()[-1]
    assert (row.endpoint, row.token_source) == ("responses.input_tokens", "estimated")


def test_admin_shows_stored_responses_read_only(openai_client, fake_gemini, admin_client):
    from proxy_app.models import StoredResponse

    resp = openai_client.responses.create(model="gemini-2.5-flash", input="<b>tagged</b> question")
    row = StoredResponse.objects.get(response_id=resp.id)
    listing = admin_client.get("/admin/proxy_app/storedresponse/")
    assert listing.status_code == 200 and resp.id in listing.content.decode()
    page = admin_client.get(f"/admin/proxy_app/storedresponse/{row.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200 and "&lt;b&gt;tagged&lt;/b&gt; question" in html
    assert 'name="_save"' not in html
    assert admin_client.get("/admin/proxy_app/storedresponse/add/").status_code == 403


def test_retention_hides_and_prunes_old_responses(openai_client, fake_gemini, settings):
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    from proxy_app.models import StoredResponse

    old = openai_client.responses.create(model="gemini-2.5-flash", input="old")
    new = openai_client.responses.create(model="gemini-2.5-flash", input="new")
    StoredResponse.objects.filter(response_id=old.id).update(created_at=timezone.now() - timedelta(days=31))
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.retrieve(old.id)
    settings.RESPONSES_RETENTION_DAYS = 0
    assert openai_client.responses.retrieve(old.id).id == old.id  # 0: kept forever
    settings.RESPONSES_RETENTION_DAYS = 30
    call_command("prune_responses")
    assert list(StoredResponse.objects.values_list("response_id", flat=True)) == [new.id]


def test_codex_style_custom_tool_round_trip(openai_client, fake_gemini):
    patch_tool = {
        "type": "custom",
        "name": "apply_patch",
        "description": "Apply a patch.",
        "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"},
    }
    fake_gemini.script("tool_calls", calls=[("apply_patch", {"input": "*** Begin Patch\n*** End Patch"})])
    with openai_client.responses.stream(
        model="gemini-2.5-flash", input="fix it", tools=[patch_tool], store=False
    ) as stream:
        names = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.custom_tool_call_input.done" in names
    (call,) = final.output
    assert call.type == "custom_tool_call" and call.input == "*** Begin Patch\n*** End Patch"
    decl = generate_requests(fake_gemini)[-1]["json"]["tools"][0]["functionDeclarations"][0]
    assert decl["name"] == "apply_patch" and "start: /.+/" in decl["description"]
    openai_client.responses.create(
        model="gemini-2.5-flash",
        input=[
            {"role": "user", "content": "fix it"},
            call.model_dump(exclude_none=True),
            {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Done!"},
        ],
        tools=[patch_tool],
        store=False,
    )
    contents = generate_requests(fake_gemini)[-1]["json"]["contents"]
    assert contents[1]["parts"][0]["functionCall"]["args"] == {"input": "*** Begin Patch\n*** End Patch"}
    assert contents[2]["parts"][0]["functionResponse"]["name"] == "apply_patch"


def test_sdk_parse_with_a_pydantic_format(openai_client, fake_gemini):
    import pydantic

    class City(pydantic.BaseModel):
        name: str
        population: int

    fake_gemini.script("text", text='{"name": "Oslo", "population": 700000}')
    parsed = openai_client.responses.parse(model="gemini-2.5-flash", input="a city", text_format=City)
    assert parsed.output_parsed == City(name="Oslo", population=700000)
    config = generate_requests(fake_gemini)[-1]["json"]["generationConfig"]
    assert config["responseMimeType"] == "application/json" and "responseJsonSchema" in config


def test_openai_compatible_upstream_tool_round_trip_streamed(openai_client, fake_openai, mapping):
    mapping("gpt-compat", "gpt-4o-mini", upstream="compat")
    fake_openai.script("tool_calls", calls=[("get_weather", {"city": "Lima"}, "call_up_1")], fragments=3)
    with openai_client.responses.stream(model="gpt-compat", input="weather?", tools=TOOLS) as stream:
        final = stream.get_final_response()
    (call,) = final.output
    assert call.type == "function_call" and call.call_id == "call_up_1"
    assert json.loads(call.arguments) == {"city": "Lima"}
    sent = [r for r in fake_openai.requests if r["path"].endswith("/chat/completions")][-1]["json"]
    assert sent["tools"][0]["function"]["name"] == "get_weather" and sent["stream"] is True
    openai_client.responses.create(
        model="gpt-compat",
        previous_response_id=final.id,
        input=[{"type": "function_call_output", "call_id": "call_up_1", "output": "warm"}],
        tools=TOOLS,
    )
    messages = [r for r in fake_openai.requests if r["path"].endswith("/chat/completions")][-1]["json"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["id"] == "call_up_1"
    assert messages[2] == {"role": "tool", "tool_call_id": "call_up_1", "content": "warm"}


def test_input_items_pages_and_orders(openai_client, fake_gemini, gateway_url, api_key):
    resp = openai_client.responses.create(
        model="gemini-2.5-flash",
        input=[
            {"role": "user", "content": "one"},
            {"role": "user", "content": "two"},
            {"role": "user", "content": "3"},
        ],
    )
    auth = {"Authorization": f"Bearer {api_key}"}
    url = f"{gateway_url}/v1/responses/{resp.id}/input_items"
    newest = httpx.get(url, headers=auth, params={"limit": 2}).json()
    assert newest["object"] == "list" and newest["has_more"] is True
    assert [i["content"] for i in newest["data"]] == ["3", "two"]
    rest = httpx.get(url, headers=auth, params={"limit": 2, "after": newest["last_id"]}).json()
    assert [i["content"] for i in rest["data"]] == ["one"] and rest["has_more"] is False
    oldest = openai_client.responses.input_items.list(resp.id, order="asc", limit=1)
    assert oldest.data[0].id == rest["data"][0]["id"] and oldest.data[0].type == "message"
    for params, param in (({"limit": "x"}, "limit"), ({"limit": 0}, "limit"), ({"order": "up"}, "order")):
        bad = httpx.get(url, headers=auth, params=params)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == param
    missing = httpx.get(f"{gateway_url}/v1/responses/resp_nope/input_items", headers=auth)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
