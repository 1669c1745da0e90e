"""Single sign-on (accounts/sso.py) against a real OpenID Connect provider: the npm package oidc-provider
(installed pinned by scripts/test.sh) runs tests/oidc/provider.mjs; the gateway runs as operators run it
(`python -m gateway_site.serve`); an HTTP client follows the whole authorization-code flow, logging in
at the provider's own form."""

from __future__ import annotations

import html
import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.test_server import ROOT, Gateway, migrated

PROVIDER_DIR = ROOT / ".cache" / "oidc-provider"
FORM = re.compile(r"<form[^>]*action=\"([^\"]+)\"[^>]*>(.*?)</form>", re.DOTALL | re.IGNORECASE)
INPUT = re.compile(r"<input[^>]*>", re.IGNORECASE)


@pytest.fixture
def provider_for():
    """provider_for(redirect_uri) -> issuer URL of a running oidc-provider."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the SSO test needs it to run the oidc-provider package")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.skip(f"oidc-provider is not installed in {PROVIDER_DIR} (scripts/test.sh installs it with npm)")
    started: list[subprocess.Popen] = []

    def _start(redirect_uri: str) -> str:
        port = free_port()
        script = str(ROOT / "tests" / "oidc" / "provider.mjs")
        proc = subprocess.Popen(
            ["node", script, str(port), redirect_uri, str(PROVIDER_DIR)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(proc)
        issuer = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=2).raise_for_status()
                return issuer
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "oidc-provider did not start"
                time.sleep(0.1)

    yield _start
    for proc in started:
        proc.terminate()
        proc.wait(timeout=10)


def _log_in(gateway_url: str, issuer: str, account: str, start: str) -> httpx.Client:
    """Follow the SSO link of the login page at `start`, log in at the provider as `account`,
    consent, and come back; returns the client (its cookies hold the gateway session)."""
    client = httpx.Client(follow_redirects=True, timeout=20)
    page = client.get(f"{gateway_url}{start}")
    link = re.search(r'id="sso-login" href="([^"]+)"', page.text)
    assert link, page.text
    response = client.get(gateway_url + html.unescape(link.group(1)))
    for _ in range(5):  # the provider's login form, then its consent form
        if not str(response.url).startswith(issuer):
            break
        form = FORM.search(response.text)
        assert form, response.text
        fields = {}
        for tag in INPUT.findall(form.group(2)):
            name = re.search(r'name="([^"]+)"', tag)
            value = re.search(r'value="([^"]*)"', tag)
            if name:
                fields[name.group(1)] = html.unescape(value.group(1)) if value else ""
        if "login" in fields:
            fields.update(login=account, password="any password")
        response = client.post(httpx.URL(str(response.url)).join(html.unescape(form.group(1))), data=fields)
    assert str(response.url).startswith(gateway_url), (response.url, response.text[:500])
    client.landed = response  # type: ignore[attr-defined]
    return client


def test_sso_login_gives_admins_the_admin_and_members_only_their_page(migrated, provider_for, tmp_path: Path):
    port = free_port()
    callback = f"http://127.0.0.1:{port}/oidc/callback/"
    issuer = provider_for(callback)
    env = migrated(
        GATEWAY_OIDC_ISSUER=issuer,
        GATEWAY_OIDC_CLIENT_ID="gateway",
        GATEWAY_OIDC_CLIENT_SECRET="gateway-secret",
        GATEWAY_OIDC_STAFF_GROUP="gateway-admins",
    )
    server = Gateway(env, port=port)
    try:
        boss = _log_in(server.url, issuer, "boss", "/admin/login/?next=/admin/")
        assert boss.landed.url.path == "/admin/" and boss.landed.status_code == 200
        assert "Site administration" in boss.landed.text or 'id="user-tools"' in boss.landed.text
        assert boss.get(f"{server.url}/admin/accounts/apikey/").status_code == 200

        carol = _log_in(server.url, issuer, "carol", "/accounts/login/?next=/account/")
        assert carol.landed.url.path == "/account/" and carol.landed.status_code == 200
        assert "carol" in carol.landed.text
        admin = carol.get(f"{server.url}/admin/", follow_redirects=False)
        assert admin.status_code == 302 and "/admin/login/" in admin.headers["location"]

        refused = httpx.get(f"{server.url}/oidc/callback/?error=access_denied", follow_redirects=True)
        assert refused.url.path == "/accounts/login/" and 'id="sso-failed"' in refused.text  # said, not a 500

        again = _log_in(server.url, issuer, "carol", "/accounts/login/?next=/account/")  # linked, not duplicated
        assert again.landed.url.path == "/account/"
    finally:
        server.stop()
    with sqlite3.connect(tmp_path / "gw.sqlite3") as db:
        users = db.execute("SELECT username, email, is_staff, is_superuser FROM auth_user ORDER BY username").fetchall()
    assert users == [("boss", "boss@example.test", 1, 1), ("carol", "carol@example.test", 0, 0)]


def test_without_an_issuer_there_is_no_sso(migrated):
    server = Gateway(migrated())
    try:
        assert 'id="sso-login"' not in httpx.get(f"{server.url}/accounts/login/").text
        assert 'id="sso-login"' not in httpx.get(f"{server.url}/admin/login/").text
        assert httpx.get(f"{server.url}/oidc/authenticate/").status_code == 404
    finally:
        server.stop()
