"""Per-key IP allow-lists (ApiKey.allowed_ips): a key used from another address gets 403 in each
dialect's own shape (never echoing the key), with a usage row; the check rides the cached key
lookup (no query per request); set by issue_token --allow-ip, set_key_ips and the admin.
The real server's peer is 127.0.0.1; behind a trusted proxy the forwarded client counts."""

from __future__ import annotations

import ipaddress

import anthropic
import httpx
import ollama
import openai
import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.core.management.base import CommandError
from google.genai import errors as genai_errors
from google.genai import types

from accounts import authentication
from accounts.models import ApiKey
from accounts.services import set_allowed_ips

CHAT = [{"role": "user", "content": "hi"}]
MODEL = "gemini-2.5-flash"


@pytest.fixture
def far_key(user, issue) -> str:
    """A key that may only be used from 10.0.0.0/8 (the test server's clients come from 127.0.0.1)."""
    return issue(user, name="office", allowed_ips=["10.0.0.0/8"])


def _no_key_in(text: str, secret: str) -> None:
    assert secret not in text and secret.split("_", 1)[1] not in text


def test_openai_sdk_gets_403_in_openai_shape(gateway_url, far_key, fake_gemini, usage_rows):
    client = openai.OpenAI(base_url=f"{gateway_url}/v1", api_key=far_key, max_retries=0, timeout=20)
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.chat.completions.create(model=MODEL, messages=CHAT)
    err = info.value
    assert err.status_code == 403 and err.code == "ip_not_allowed"
    assert err.body["message"] == "This API key may not be used from 127.0.0.1."
    _no_key_in(err.response.text, far_key)
    with pytest.raises(openai.PermissionDeniedError):  # every route, streams too
        list(client.chat.completions.create(model=MODEL, messages=CHAT, stream=True))
    with pytest.raises(openai.PermissionDeniedError):
        client.models.list()
    assert fake_gemini.requests == []  # refused before anything reached the upstream
    rows = [r for r in usage_rows() if r.endpoint != "models"]
    assert rows and all((r.status, r.error_code) == (403, "ip_not_allowed") for r in rows)
    assert rows[0].key_prefix == far_key.split("_")[0]


def test_ollama_sdk_gets_403_in_ollama_shape(gateway_url, far_key, fake_gemini):
    client = ollama.Client(host=gateway_url, headers={"Authorization": f"Bearer {far_key}"}, timeout=20)
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model=MODEL, messages=CHAT)
    assert info.value.status_code == 403 and info.value.error == "This API key may not be used from 127.0.0.1."
    raw = httpx.post(f"{gateway_url}/api/generate", json={"model": MODEL, "prompt": "x"}, headers=_bearer(far_key))
    assert raw.status_code == 403 and set(raw.json()) == {"error"}
    _no_key_in(raw.text, far_key)


def test_genai_sdk_gets_403_in_gemini_shape(gateway_url, far_key, fake_gemini):
    from google import genai

    client = genai.Client(api_key=far_key, http_options=types.HttpOptions(base_url=gateway_url, timeout=20_000))
    with pytest.raises(genai_errors.ClientError) as info:
        client.models.generate_content(model=MODEL, contents="x")
    assert info.value.code == 403 and info.value.status == "PERMISSION_DENIED"
    raw = httpx.post(f"{gateway_url}/v1beta/models/{MODEL}:generateContent?key={far_key}", json={"contents": []})
    assert raw.status_code == 403 and raw.json()["error"]["status"] == "PERMISSION_DENIED"
    _no_key_in(raw.text, far_key)


def test_anthropic_sdk_gets_403_in_anthropic_shape(gateway_url, far_key, fake_gemini):
    client = anthropic.Anthropic(base_url=gateway_url, api_key=far_key, max_retries=0, timeout=20)
    with pytest.raises(anthropic.PermissionDeniedError) as info:
        client.messages.create(model=MODEL, max_tokens=16, messages=CHAT)
    assert info.value.response.json() == {
        "type": "error",
        "error": {"type": "permission_error", "message": "This API key may not be used from 127.0.0.1."},
    }
    _no_key_in(info.value.response.text, far_key)


def _bearer(key: str) -> dict:
    return {"authorization": f"Bearer {key}"}


def test_an_allowed_address_is_served(gateway_url, user, issue, fake_gemini):
    key = issue(user, name="here", allowed_ips=["127.0.0.0/8", "2001:db8::/32"])
    client = openai.OpenAI(base_url=f"{gateway_url}/v1", api_key=key, max_retries=0, timeout=20)
    assert client.chat.completions.create(model=MODEL, messages=CHAT).choices[0].message.content


def test_behind_a_trusted_proxy_the_forwarded_client_is_checked(gateway_url, far_key, fake_gemini, settings):
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32")]
    inside = openai.OpenAI(
        base_url=f"{gateway_url}/v1",
        api_key=far_key,
        max_retries=0,
        timeout=20,
        default_headers={"x-forwarded-for": "10.9.8.7"},
    )
    assert inside.chat.completions.create(model=MODEL, messages=CHAT).choices[0].message.content
    # a client behind the proxy that claims an inside address is judged by the hop the proxy added
    outside = httpx.post(
        f"{gateway_url}/v1/chat/completions",
        json={"model": MODEL, "messages": CHAT},
        headers=[*_bearer(far_key).items(), ("x-forwarded-for", "10.9.8.7, 198.51.100.20")],
        timeout=20,
    )
    assert outside.status_code == 403 and "198.51.100.20" in outside.json()["error"]["message"]
    settings.TRUSTED_PROXIES = []  # the same header from an untrusted peer proves nothing
    forged = httpx.post(
        f"{gateway_url}/v1/chat/completions",
        json={"model": MODEL, "messages": CHAT},
        headers={**_bearer(far_key), "x-forwarded-for": "10.9.8.7"},
        timeout=20,
    )
    assert forged.status_code == 403


def test_the_check_runs_on_the_cached_lookup_without_a_query(far_key, django_assert_num_queries):
    with django_assert_num_queries(1):  # the first lookup loads the key row, allow-list included
        identity = async_to_sync(authentication.authenticate_secret)(far_key)
        for _ in range(50):
            assert async_to_sync(authentication.authenticate_secret)(far_key) is identity
            assert identity.allows_address("10.1.2.3") and not identity.allows_address("127.0.0.1")
    assert not identity.allows_address("")  # no address known (a unix socket): refused


def test_changing_the_list_applies_after_the_key_cache(gateway_url, far_key, fake_gemini):
    key = ApiKey.objects.get(prefix=far_key.split("_")[0])
    refused = httpx.post(f"{gateway_url}/api/chat", json={"model": MODEL, "messages": CHAT}, headers=_bearer(far_key))
    assert refused.status_code == 403
    set_allowed_ips(key, [])  # any address again
    authentication.clear_cache()  # what GATEWAY_KEY_CACHE_SECONDS does on its own
    ok = httpx.post(
        f"{gateway_url}/api/chat", json={"model": MODEL, "messages": CHAT, "stream": False}, headers=_bearer(far_key)
    )
    assert ok.status_code == 200


def test_issue_token_and_set_key_ips_commands(user, capsys):
    call_command("issue_token", "alice", "--name", "ci", "--allow-ip", "10.0.0.1", "--allow-ip", "192.168.0.0/16")
    out = capsys.readouterr().out
    assert "usable from: 10.0.0.1/32, 192.168.0.0/16." in out
    key = ApiKey.objects.get(name="ci")
    assert key.allowed_ips == ["10.0.0.1/32", "192.168.0.0/16"]
    call_command("set_key_ips", key.prefix, "--allow-ip", "2001:db8::/48")
    key.refresh_from_db()
    assert key.allowed_ips == ["2001:db8::/48"] and "usable from: 2001:db8::/48." in capsys.readouterr().out
    call_command("set_key_ips", "ci", "--any")
    key.refresh_from_db()
    assert key.allowed_ips == []
    with pytest.raises(CommandError, match="'10.0.0.300' is not an IP address or CIDR"):
        call_command("issue_token", "alice", "--name", "bad", "--allow-ip", "10.0.0.300")
    with pytest.raises(CommandError, match="host bits"):  # 10.0.0.1/8 is most likely a typo
        call_command("set_key_ips", key.prefix, "--allow-ip", "10.0.0.1/8")
    with pytest.raises(CommandError, match="no key with prefix or name"):
        call_command("set_key_ips", "gw-nothing", "--any")
    assert not ApiKey.objects.filter(name="bad").exists()


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "allowed"),
    [
        ("10.1.2.3", None, [], True),
        ("127.0.0.1", None, [], False),
        ("127.0.0.1", "10.1.2.3", [], False),  # forged: the peer counts
        ("127.0.0.1", "10.1.2.3", ["127.0.0.1/32"], True),  # from the trusted proxy: the forwarded client
    ],
)
async def test_websocket_chat_checks_the_allow_list(far_key, settings, peer, forwarded, trusted, allowed):
    from channels.testing import WebsocketCommunicator

    from gateway_site.asgi import application

    settings.TRUSTED_PROXIES = [ipaddress.ip_network(n) for n in trusted]
    hdrs = [(b"authorization", f"Bearer {far_key}".encode())]
    hdrs += [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    comm = WebsocketCommunicator(application, "/ws/chat/", headers=hdrs)
    comm.scope["client"] = (peer, 50000)  # the socket peer a server would put in the scope
    assert (await comm.connect())[0]
    first = await comm.receive_json_from(timeout=10)
    if allowed:
        assert first["type"] == "ready"
        await comm.disconnect()
    else:
        assert (first["type"], first["code"]) == ("error", "ip_not_allowed") and far_key not in str(first)
        assert await comm.receive_output() == {"type": "websocket.close", "code": 4401}
