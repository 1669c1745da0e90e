"""Chat sessions over HTTP, end to end on the real gateway: the earlier session proxies' /start_chat, /send_message,
/end_chat, and the REST resource /v1/sessions (with SSE streaming)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from django.core.management import call_command

from accounts import authentication
from proxy_app.call import routing
from proxy_app.chat import state
from proxy_app.dialects.sessions import codec
from proxy_app.ledger import counters, quota
from proxy_app.ledger.counters import MemoryCounters
from proxy_app.models import ChatSession

pytestmark = pytest.mark.django_db(transaction=True)
SEED_CONFIG = {"max_output_tokens": 1000, "temperature": 0.7, "top_p": 0.9}


@pytest.fixture
def gw(gateway_url, api_key, fake_gemini):
    """An httpx client on the gateway with alice's key, like a client of the earlier session proxies plus the header."""
    with httpx.Client(base_url=gateway_url, headers={"authorization": f"Bearer {api_key}"}, timeout=20) as client:
        yield client


@pytest.fixture
def bob_key(django_user_model, issue):
    return issue(django_user_model.objects.create_user(username="bob", password="pw-bob-12345"), name="bob-laptop")


def generate_bodies(fake) -> list[dict]:
    return [r["json"] for r in fake.requests if r["action"] in ("generateContent", "streamGenerateContent")]


def texts(contents: list[dict]) -> list[tuple[str, str]]:
    return [(c["role"], "".join(p["text"] for p in c["parts"])) for c in contents]


def start(gw, **body) -> str:
    resp = gw.post("/start_chat", json={"model_name": "gemini-2.5-flash", **body})
    assert resp.status_code == 200, resp.text
    return resp.json()["chat_id"]


# ------------------------------------------------------------------------------ the earlier session proxies' API


def test_seed_flow_sends_history_upstream_and_records_usage(gw, fake_gemini, usage_rows, user):
    chat_id = start(gw, user_id="alice", generation_config=SEED_CONFIG, system_instruction="Be brief.")
    first = gw.post("/send_message", json={"chat_id": chat_id, "message": "What is the capital of California?"})
    assert first.status_code == 200, first.text
    assert first.json()["response"] == "Hello from fake Gemini: What is the capital of California?"
    second = gw.post(
        "/send_message", json={"chat_id": chat_id, "message": "What about New Jersey?", "user_id": "alice"}
    )
    body = second.json()
    assert body["response"] == "Hello from fake Gemini: What about New Jersey?"
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"] > 0
    assert body["usage"]["source"] == "reported" and body["chat_id"] == chat_id

    one, two = generate_bodies(fake_gemini)
    assert texts(two["contents"]) == [
        ("user", "What is the capital of California?"),
        ("model", "Hello from fake Gemini: What is the capital of California?"),
        ("user", "What about New Jersey?"),
    ]
    assert two["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert two["generationConfig"] == {"maxOutputTokens": 1000, "temperature": 0.7, "topP": 0.9}
    assert len(one["contents"]) == 1

    ended = gw.post("/end_chat", json={"chat_id": chat_id})
    assert ended.status_code == 200 and ended.json() == {"message": f"Chat session {chat_id} ended."}

    rows = usage_rows()
    assert [(r.dialect, r.endpoint, r.status) for r in rows] == [("sessions", "send_message", 200)] * 2
    assert all(r.user == user and r.requested_model == "gemini-2.5-flash" and r.prompt_tokens > 0 for r in rows)
    assert rows[1].prompt_tokens > rows[0].prompt_tokens  # the history counts
    row = ChatSession.objects.get(public_id=chat_id)
    assert row.ended_at is not None and row.api_key.name == "laptop" and len(row.history) == 4


def test_user_id_must_match_the_keys_user(gw, user):
    assert start(gw, user_id=str(user.pk))  # the numeric id is accepted too
    resp = gw.post("/start_chat", json={"model_name": "gemini-2.5-flash", "user_id": "bob"})
    assert resp.status_code == 403
    assert resp.json() == {
        "error": {"code": "user_mismatch", "message": "'user_id' does not match the owner of this API key."}
    }
    chat_id = start(gw)
    assert gw.post("/send_message", json={"chat_id": chat_id, "message": "hi", "user_id": "mallory"}).status_code == 403
    assert gw.post("/end_chat", json={"chat_id": chat_id, "user_id": "mallory"}).status_code == 403


def test_unknown_ended_and_foreign_chats_are_404(gw, gateway_url, bob_key, fake_gemini):
    chat_id = start(gw)
    missing = gw.post("/send_message", json={"chat_id": "chat_nope", "message": "hi"})
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {"code": "chat_not_found", "message": "No active chat session 'chat_nope' for this user."}
    }
    bob = {"authorization": f"Bearer {bob_key}"}
    assert (
        httpx.post(f"{gateway_url}/send_message", headers=bob, json={"chat_id": chat_id, "message": "hi"}).status_code
        == 404
    )
    assert httpx.post(f"{gateway_url}/end_chat", headers=bob, json={"chat_id": chat_id}).status_code == 404
    assert httpx.get(f"{gateway_url}/v1/sessions/{chat_id}", headers=bob).status_code == 404
    assert gw.post("/end_chat", json={"chat_id": chat_id}).status_code == 200
    assert gw.post("/end_chat", json={"chat_id": chat_id}).status_code == 404
    assert gw.post("/send_message", json={"chat_id": chat_id, "message": "hi"}).status_code == 404
    assert generate_bodies(fake_gemini) == []


@pytest.mark.parametrize(
    "path, body, status, code",
    [
        ("/start_chat", {}, 400, "invalid_request"),
        ("/start_chat", {"model_name": "nope-model"}, 404, "model_not_found"),
        ("/start_chat", {"model_name": "gemini-2.5-flash", "generation_config": {"top_q": 1}}, 400, "invalid_request"),
        (
            "/start_chat",
            {"model_name": "gemini-2.5-flash", "generation_config": {"temperature": "hot"}},
            400,
            "invalid_request",
        ),
        (
            "/start_chat",
            {"model_name": "gemini-2.5-flash", "generation_config": {"candidate_count": 2}},
            400,
            "invalid_request",
        ),
        ("/start_chat", [1, 2], 400, "invalid_request"),
        ("/send_message", {"chat_id": "x"}, 400, "invalid_request"),
        ("/end_chat", {"chat_id": 5}, 400, "invalid_request"),
    ],
)
def test_bad_requests_get_the_error_shape(gw, path, body, status, code):
    resp = gw.post(path, json=body)
    assert resp.status_code == status
    assert set(resp.json()["error"]) == {"code", "message"} and resp.json()["error"]["code"] == code


def test_bad_json_wrong_method_and_no_key(gw, gateway_url):
    assert gw.post("/start_chat", content=b"{oops").json()["error"]["code"] == "invalid_request"
    wrong = gw.get("/start_chat")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    anonymous = httpx.post(f"{gateway_url}/start_chat", json={"user_id": "alice", "model_name": "gemini-2.5-flash"})
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == 'Bearer realm="gateway"'
    assert anonymous.json()["error"]["code"] == "invalid_api_key"


def test_generation_config_maps_to_upstream_fields(gw, fake_gemini):
    config = {
        "temperature": 0,
        "topK": 5,
        "max_output_tokens": 64,
        "stop_sequences": ["END"],
        "seed": 7,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
        "response_mime_type": "application/json",
    }
    chat_id = start(gw, generation_config=config)
    assert gw.post("/send_message", json={"chat_id": chat_id, "message": "hi"}).status_code == 200
    assert generate_bodies(fake_gemini)[0]["generationConfig"] == {
        "temperature": 0,
        "topK": 5,
        "maxOutputTokens": 64,
        "stopSequences": ["END"],
        "seed": 7,
        "presencePenalty": 0.5,
        "frequencyPenalty": 0.25,
        "responseMimeType": "application/json",
    }


def test_history_cap_drops_oldest_and_keeps_the_system_instruction(gw, fake_gemini, settings):
    settings.SESSION_MAX_TURNS = 4
    chat_id = start(gw, system_instruction="You are terse.")
    for n in range(1, 5):
        assert gw.post("/send_message", json={"chat_id": chat_id, "message": f"m{n}"}).status_code == 200
    last = generate_bodies(fake_gemini)[-1]
    assert last["systemInstruction"] == {"parts": [{"text": "You are terse."}]}
    assert texts(last["contents"]) == [
        ("user", "m2"),
        ("model", "Hello from fake Gemini: m2"),
        ("user", "m3"),
        ("model", "Hello from fake Gemini: m3"),
        ("user", "m4"),
    ]
    row = ChatSession.objects.get(public_id=chat_id)
    assert [e["text"] for e in row.history] == ["m3", "Hello from fake Gemini: m3", "m4", "Hello from fake Gemini: m4"]
    assert row.turns_dropped == 4 and row.system_instruction == "You are terse."


def test_state_lives_only_in_the_database(gw, fake_gemini):
    chat_id = start(gw)
    gw.post("/send_message", json={"chat_id": chat_id, "message": "remember 42"})
    # A "restart": every in-process cache is gone; only the database row remains.
    authentication.clear_cache()
    routing.clear_cache()
    quota.clear_cache()
    ChatSession.objects.filter(public_id=chat_id).update(
        history=[{"role": "user", "text": "edited in the DB"}, {"role": "model", "text": "ok"}]
    )
    assert gw.post("/send_message", json={"chat_id": chat_id, "message": "what number?"}).status_code == 200
    assert texts(generate_bodies(fake_gemini)[-1]["contents"])[:2] == [("user", "edited in the DB"), ("model", "ok")]


def test_one_message_at_a_time_per_session(gateway_url, api_key, fake_gemini, usage_rows):
    headers = {"authorization": f"Bearer {api_key}"}
    chat_id = httpx.post(f"{gateway_url}/start_chat", headers=headers, json={"model_name": "gemini-2.5-flash"}).json()[
        "chat_id"
    ]
    fake_gemini.script("slow", delay=1.0, text="slow answer")

    async def both():
        async with httpx.AsyncClient(base_url=gateway_url, headers=headers, timeout=20) as client:
            slow = asyncio.create_task(client.post("/send_message", json={"chat_id": chat_id, "message": "first"}))
            await asyncio.sleep(0.4)
            busy = await client.post("/send_message", json={"chat_id": chat_id, "message": "second"})
            return await slow, busy

    slow, busy = asyncio.run(both())
    assert slow.status_code == 200 and slow.json()["response"] == "slow answer"
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "chat_busy"
    again = httpx.post(f"{gateway_url}/send_message", headers=headers, json={"chat_id": chat_id, "message": "third"})
    assert again.status_code == 200  # the lease was given back
    assert [e["text"] for e in ChatSession.objects.get(public_id=chat_id).history][::2] == ["first", "third"]


def test_session_messages_count_against_limits(gw, fake_gemini):
    counters.set_counters(MemoryCounters())
    quota.clear_cache()
    try:
        call_command("set_limits", "--user", "alice", "--rpm", "1")
        quota.clear_cache()
        chat_id = start(gw)
        assert gw.post("/send_message", json={"chat_id": chat_id, "message": "one"}).status_code == 200
        refused = gw.post("/send_message", json={"chat_id": chat_id, "message": "two"})
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert "retry-after" in refused.headers
        assert len(ChatSession.objects.get(public_id=chat_id).history) == 2  # the refused message is not kept
    finally:
        counters.set_counters(None)
        quota.clear_cache()


def test_upstream_failure_keeps_the_session_usable(gw, fake_gemini, usage_rows):
    chat_id = start(gw)
    fake_gemini.script("error", status=503)
    failed = gw.post("/send_message", json={"chat_id": chat_id, "message": "hi"})
    assert failed.status_code == 503 and failed.json()["error"]["code"]
    assert gw.post("/send_message", json={"chat_id": chat_id, "message": "hi again"}).status_code == 200
    assert [e["text"] for e in ChatSession.objects.get(public_id=chat_id).history][0] == "hi again"
    assert [(r.endpoint, r.status) for r in usage_rows()] == [("send_message", 503), ("send_message", 200)]


# ------------------------------------------------------------------------------ /v1/sessions


def test_rest_resource_create_list_get_message_delete(gw, fake_gemini, usage_rows):
    created = gw.post(
        "/v1/sessions",
        json={"model": "gemini-2.5-flash", "system_instruction": "Hi.", "generation_config": {"temperature": 0.2}},
    )
    assert created.status_code == 201, created.text
    session = created.json()
    chat_id = session["id"]
    assert session["object"] == "chat.session" and session["history"] == [] and session["ended_at"] is None
    assert session["generation_config"] == {"temperature": 0.2}

    reply = gw.post(f"/v1/sessions/{chat_id}/messages", json={"message": "hello"})
    assert reply.status_code == 200 and reply.json()["response"] == "Hello from fake Gemini: hello"

    got = gw.get(f"/v1/sessions/{chat_id}").json()
    assert got["history"] == [
        {"role": "user", "text": "hello"},
        {"role": "model", "text": "Hello from fake Gemini: hello"},
    ]
    assert got["turns"] == 2

    listed = gw.get("/v1/sessions").json()
    assert listed["object"] == "list" and [s["id"] for s in listed["data"]] == [chat_id]
    assert "history" not in listed["data"][0]

    deleted = gw.delete(f"/v1/sessions/{chat_id}")
    assert deleted.status_code == 200 and deleted.json()["ended_at"]
    assert gw.get("/v1/sessions").json()["data"] == []
    assert [s["id"] for s in gw.get("/v1/sessions?include_ended=true").json()["data"]] == [chat_id]
    assert gw.get(f"/v1/sessions/{chat_id}").json()["ended_at"]  # still readable, read-only
    assert gw.post(f"/v1/sessions/{chat_id}/messages", json={"message": "more"}).status_code == 404
    assert gw.delete(f"/v1/sessions/{chat_id}").status_code == 404
    put = gw.put(f"/v1/sessions/{chat_id}", json={})
    assert put.status_code == 405 and put.headers["allow"] == "DELETE, GET"
    assert gw.get("/v1/sessions?limit=0").status_code == 400
    assert gw.get("/v1/sessions/x/y/z").json()["error"]["code"] == "not_found"
    assert [(r.dialect, r.endpoint, r.status) for r in usage_rows()][:1] == [("sessions", "sessions.message", 200)]


def sse_events(resp: httpx.Response) -> list[tuple[float, dict]]:
    out, started = [], time.monotonic()
    for line in resp.iter_lines():
        if line.startswith("data: "):
            out.append((time.monotonic() - started, json.loads(line[6:])))
    return out


def test_rest_message_streams_sse_deltas_then_done(gw, fake_gemini, usage_rows):
    chat_id = gw.post("/v1/sessions", json={"model": "gemini-2.5-flash"}).json()["id"]
    fake_gemini.chunk_delay = 0.15
    fake_gemini.script("text", chunks=["one ", "two ", "three ", "four"])
    with gw.stream("POST", f"/v1/sessions/{chat_id}/messages", json={"message": "count", "stream": True}) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        events = sse_events(resp)
    kinds = [e["type"] for _, e in events]
    assert kinds == ["delta"] * 4 + ["done"]
    assert "".join(e["text"] for _, e in events if e["type"] == "delta") == "one two three four"
    assert events[-1][0] - events[0][0] > 0.3  # deltas arrived as they were produced
    done = events[-1][1]
    assert (
        done["chat_id"] == chat_id and done["text"] == "one two three four" and done["usage"]["completion_tokens"] > 0
    )
    assert gw.get(f"/v1/sessions/{chat_id}").json()["history"][-1] == {"role": "model", "text": "one two three four"}
    (row,) = usage_rows()
    assert (row.dialect, row.endpoint, row.streamed, row.status) == ("sessions", "sessions.message", True, 200)


def test_rest_stream_error_midway_arrives_in_band_and_partial_is_kept(gw, fake_gemini, usage_rows):
    chat_id = gw.post("/v1/sessions", json={"model": "gemini-2.5-flash"}).json()["id"]
    fake_gemini.script("error_midstream", after=1, text="alpha beta gamma")
    with gw.stream("POST", f"/v1/sessions/{chat_id}/messages", json={"message": "go", "stream": True}) as resp:
        events = [e for _, e in sse_events(resp)]
    assert events[0]["type"] == "delta" and events[-1]["type"] == "error" and events[-1]["code"]
    history = gw.get(f"/v1/sessions/{chat_id}").json()["history"]
    assert history[0] == {"role": "user", "text": "go"} and history[1]["partial"] is True
    assert usage_rows()[0].status >= 500


def test_rest_stream_errors_before_the_first_byte_are_plain_http_errors(gw, fake_gemini):
    chat_id = gw.post("/v1/sessions", json={"model": "gemini-2.5-flash"}).json()["id"]
    fake_gemini.script("error", status=429)
    resp = gw.post(f"/v1/sessions/{chat_id}/messages", json={"message": "go", "stream": True})
    assert resp.status_code == 429 and resp.json()["error"]["code"]
    assert gw.post("/v1/sessions", json={"model_name": "gemini-2.5-flash"}).status_code == 400
    assert gw.post(f"/v1/sessions/{chat_id}/messages", json={"message": "go", "stream": "yes"}).status_code == 400


def test_rest_stream_client_disconnect_records_usage_and_keeps_partial(gw, fake_gemini, usage_rows):
    chat_id = gw.post("/v1/sessions", json={"model": "gemini-2.5-flash"}).json()["id"]
    fake_gemini.chunk_delay = 0.3
    fake_gemini.script("text", chunks=[f"w{i} " for i in range(20)])
    with gw.stream("POST", f"/v1/sessions/{chat_id}/messages", json={"message": "long", "stream": True}) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: "):
                break  # leave after the first delta
    deadline = time.monotonic() + 10
    while not (rows := usage_rows()):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert (rows[0].status, rows[0].client_disconnected, rows[0].error_code) == (499, True, "client_disconnected")
    deadline = time.monotonic() + 10
    while ChatSession.objects.get(public_id=chat_id).lock_token:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    history = ChatSession.objects.get(public_id=chat_id).history
    assert history[0]["text"] == "long" and history[1]["partial"] is True and history[1]["text"].startswith("w0")


def test_openai_routes_still_answer_beside_sessions(gw):
    assert (
        gw.post(
            "/v1/chat/completions", json={"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}]}
        ).status_code
        == 200
    )
    assert gw.get("/v1/nothing-here").json()["error"]["code"] == "not_found"


# ------------------------------------------------------------------------------ codec (pure)


def test_trim_history_starts_on_a_user_entry():
    history = [{"role": r, "text": str(i)} for i, r in enumerate(["user", "model"] * 3)]
    kept, dropped = state.trim_history(history, 3)
    assert [e["text"] for e in kept] == ["4", "5"] and dropped == 4
    assert state.trim_history(history, 10) == (history, 0)


@pytest.mark.parametrize(
    "claimed, ok",
    [(None, True), ("alice", True), ("7", True), ("bob", False), ("07", False)],
)
def test_user_matches(claimed, ok):
    assert codec.user_matches(claimed, "alice", 7) is ok


def test_partial_answers_without_text_are_not_kept():
    assert state.new_entries("hi", "", partial=True) == []
    assert state.new_entries("hi", "half", partial=True) == [
        {"role": "user", "text": "hi"},
        {"role": "model", "text": "half", "partial": True},
    ]


# ------------------------------------------------------------------------------ admin


def test_admin_shows_sessions_read_only_with_history(gw, fake_gemini, admin_client):
    chat_id = start(gw, system_instruction="Stay <b>calm</b>.")
    gw.post("/send_message", json={"chat_id": chat_id, "message": "What is 2+2?"})
    row = ChatSession.objects.get(public_id=chat_id)
    listing = admin_client.get("/admin/proxy_app/chatsession/")
    assert listing.status_code == 200 and chat_id in listing.content.decode()
    page = admin_client.get(f"/admin/proxy_app/chatsession/{row.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "What is 2+2?" in html and "Hello from fake Gemini: What is 2+2?" in html
    assert "Stay &lt;b&gt;calm&lt;/b&gt;." in html  # escaped
    assert 'name="_save"' not in html
    assert admin_client.get("/admin/proxy_app/chatsession/add/").status_code == 403
