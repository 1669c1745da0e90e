"""Password logins lock out after repeated failures (django-axes), on the member page and the admin;
API keys are not passwords and never count."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model


@pytest.fixture
def member(db):
    return get_user_model().objects.create_user("mallory", password="right-password-1")


@pytest.mark.parametrize("login_url", ["/accounts/login/", "/admin/login/"])
def test_repeated_wrong_passwords_lock_the_login(client, member, settings, login_url):
    settings.AXES_FAILURE_LIMIT = 3
    if login_url == "/admin/login/":
        member.is_staff = True
        member.save()
    for _ in range(2):
        wrong = client.post(login_url, {"username": "mallory", "password": "guess"})
        assert wrong.status_code == 200  # the form again, with its error
    assert client.post(login_url, {"username": "mallory", "password": "guess"}).status_code == 429  # the 3rd
    locked = client.post(login_url, {"username": "mallory", "password": "right-password-1"})
    assert locked.status_code == 429  # even the right password, until the lockout passes
    assert "_auth_user_id" not in client.session


def test_a_right_password_before_the_limit_logs_in_and_resets_the_count(client, member, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(2):
        client.post("/accounts/login/", {"username": "mallory", "password": "guess"})
    ok = client.post("/accounts/login/", {"username": "mallory", "password": "right-password-1"})
    assert ok.status_code == 302 and client.session["_auth_user_id"] == str(member.pk)
    client.logout()
    for _ in range(2):  # counted afresh after the success
        client.post("/accounts/login/", {"username": "mallory", "password": "guess"})
    assert client.post("/accounts/login/", {"username": "mallory", "password": "right-password-1"}).status_code == 302


def test_https_setting_makes_the_page_cookies_secure(tmp_path):
    from tests.test_server import gateway_env, manage

    probe = "from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
    probe += "s.SECURE_PROXY_SSL_HEADER)"
    plain = manage(gateway_env(tmp_path), "shell", "-c", probe).stdout.strip().splitlines()[-1].split()
    secure = manage(gateway_env(tmp_path, GATEWAY_HTTPS="true"), "shell", "-c", probe).stdout.strip().splitlines()[-1]
    assert plain == ["False", "False", "None"]
    assert secure == "True True ('HTTP_X_FORWARDED_PROTO', 'https')"
