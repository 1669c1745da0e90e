"""The real client address (gateway_site/client_ip.py): a forged X-Forwarded-For from an untrusted
peer changes nothing; behind a GATEWAY_TRUSTED_PROXIES proxy the forwarded client counts, the same
for the access log, /metrics and the login lockout (all over the real server: its peer is 127.0.0.1)."""

from __future__ import annotations

import ipaddress
import re

import httpx
import pytest
from django.contrib.auth import get_user_model

from gateway_site.client_ip import resolve
from tests.test_observability import access_log, post_chat  # noqa: F401  (fixture)

LOOPBACK = [ipaddress.ip_network("127.0.0.1/32")]
PROXIES = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32")]


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "client"),
    [
        ("198.51.100.1", "203.0.113.9", [], "198.51.100.1"),  # nothing trusted: the peer, always
        ("198.51.100.1", "203.0.113.9", PROXIES, "198.51.100.1"),  # peer is not a proxy: forged header
        ("127.0.0.1", "203.0.113.9", PROXIES, "203.0.113.9"),
        ("127.0.0.1", "", PROXIES, "127.0.0.1"),  # a proxy that forwarded nothing
        ("127.0.0.1", "6.6.6.6, 203.0.113.9", PROXIES, "203.0.113.9"),  # the client wrote 6.6.6.6 itself
        ("127.0.0.1", "6.6.6.6, 203.0.113.9, 10.1.1.1", PROXIES, "203.0.113.9"),  # two proxies in a row
        ("127.0.0.1", "10.2.2.2, 10.1.1.1", PROXIES, "10.2.2.2"),  # all hops trusted: the leftmost
        ("127.0.0.1", "junk, 10.1.1.1", PROXIES, "10.1.1.1"),  # not an address: stop at the last proxy
        ("127.0.0.1", " 2001:db8::7 ", PROXIES, "2001:db8::7"),
        ("::ffff:127.0.0.1", "203.0.113.9", PROXIES, "203.0.113.9"),  # IPv4-mapped peer
    ],
)
def test_rightmost_untrusted_hop(peer, forwarded, trusted, client):
    assert resolve(peer, forwarded, trusted) == client


FORGED = {"x-forwarded-for": "203.0.113.9"}


def test_a_forged_forwarded_for_is_ignored_in_the_access_log(gateway_url, api_key, fake_gemini, access_log, settings):  # noqa: F811
    settings.TRUSTED_PROXIES = []  # the default: trust no forwarding header
    resp = httpx.post(
        f"{gateway_url}/v1/chat/completions",
        json={"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {api_key}", "x-request-id": "req-ip-forged", **FORGED},
        timeout=20,
    )
    assert resp.status_code == 200
    assert access_log.line_for("req-ip-forged")["client_ip"] == "127.0.0.1"


def test_behind_a_trusted_proxy_the_forwarded_client_is_logged(gateway_url, api_key, fake_gemini, access_log, settings):  # noqa: F811
    settings.TRUSTED_PROXIES = LOOPBACK
    body = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]}
    auth = ("authorization", f"Bearer {api_key}")
    # two headers, as a proxy appends to what the client sent: the client's own claim, then the proxy's
    chain = [auth, ("x-request-id", "req-ip-chain"), ("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "203.0.113.9")]
    direct = [auth, ("x-request-id", "req-ip-direct")]
    for headers in (chain, direct):
        assert (
            httpx.post(f"{gateway_url}/v1/chat/completions", json=body, headers=headers, timeout=20).status_code == 200
        )
    assert access_log.line_for("req-ip-chain")["client_ip"] == "203.0.113.9"
    assert access_log.line_for("req-ip-direct")["client_ip"] == "127.0.0.1"  # no header: the proxy itself


def test_metrics_allow_list_sees_the_real_client(gateway_url, settings):
    settings.METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network("203.0.113.0/24")]
    settings.TRUSTED_PROXIES = []
    assert httpx.get(f"{gateway_url}/metrics", headers=FORGED, timeout=20).status_code == 403  # forged: refused
    settings.TRUSTED_PROXIES = LOOPBACK
    assert httpx.get(f"{gateway_url}/metrics", headers=FORGED, timeout=20).status_code == 200
    assert httpx.get(f"{gateway_url}/metrics", timeout=20).status_code == 403  # the proxy itself is not allowed
    # and the loopback default no longer admits an outside client relayed by a local proxy
    settings.METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]
    assert httpx.get(f"{gateway_url}/metrics", headers=FORGED, timeout=20).status_code == 403


def _login(gateway_url: str, password: str, forwarded: str | None) -> int:
    headers = {"x-forwarded-for": forwarded} if forwarded else {}
    with httpx.Client(base_url=gateway_url, headers=headers, timeout=20) as web:
        page = web.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        form = {"username": "mallory", "password": password, "csrfmiddlewaretoken": token}
        return web.post(
            "/accounts/login/", data=form, headers={"referer": f"{gateway_url}/accounts/login/"}
        ).status_code


@pytest.fixture
def mallory(transactional_db, gateway_url):
    return get_user_model().objects.create_user("mallory", password="right-password-1")


def test_login_lockout_counts_the_real_client_behind_a_proxy(gateway_url, mallory, settings):
    settings.AXES_FAILURE_LIMIT = 2
    settings.TRUSTED_PROXIES = LOOPBACK
    assert _login(gateway_url, "guess", "203.0.113.9") == 200  # the form again
    assert _login(gateway_url, "guess", "203.0.113.9") == 429  # that client is locked out...
    assert _login(gateway_url, "right-password-1", "198.51.100.4") == 302  # ...not everyone behind the proxy


def test_forged_forwarded_for_does_not_dodge_the_lockout(gateway_url, mallory, settings):
    settings.AXES_FAILURE_LIMIT = 2
    settings.TRUSTED_PROXIES = []
    assert _login(gateway_url, "guess", "203.0.113.1") == 200
    assert _login(gateway_url, "guess", "203.0.113.2") == 429  # a fresh forged address per try changes nothing
    assert _login(gateway_url, "right-password-1", "203.0.113.3") == 429
