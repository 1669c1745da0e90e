"""The admin: keys shown once, upstream keys never rendered, usage read-only with totals."""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounts.keys import hash_secret
from accounts.models import ApiKey
from proxy_app.models import Upstream, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="pw-root-123")
    client.force_login(admin)
    return client


def test_key_created_in_admin_shows_secret_once(staff, user):
    resp = staff.post(
        "/admin/accounts/apikey/add/",
        {"user": user.pk, "name": "from-admin", "allowed_models": "gpt-4o, gemini-2.5-flash", "expires_at": ""},
    )
    assert resp.status_code == 200
    html = resp.content.decode()
    key = ApiKey.objects.get(name="from-admin")
    secret = html.split('id="new-api-key" type="text" readonly value="')[1].split('"')[0]
    assert hash_secret(secret) == key.secret_hash
    assert key.allowed_models == ["gpt-4o", "gemini-2.5-flash"]
    for page in ("/admin/accounts/apikey/", f"/admin/accounts/apikey/{key.pk}/change/"):
        body = staff.get(page).content.decode()
        assert key.prefix in body and secret not in body and key.secret_hash not in body


def test_duplicate_key_name_is_a_form_error(staff, user, issue):
    issue(user, name="dup")
    resp = staff.post("/admin/accounts/apikey/add/", {"user": user.pk, "name": "dup", "allowed_models": ""})
    assert resp.status_code == 200 and "already has a key named" in resp.content.decode()
    assert ApiKey.objects.filter(name="dup").count() == 1


def test_revoke_action(staff, user, issue):
    issue(user, name="k1")
    key = ApiKey.objects.get(name="k1")
    staff.post("/admin/accounts/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_upstream_key_is_never_rendered(staff):
    resp = staff.post(
        "/admin/proxy_app/upstream/add/",
        {"name": "g", "kind": "gemini", "base_url": "https://g.example", "api_key": "upstream-sekrit", "enabled": "on"},
    )
    assert resp.status_code == 302
    up = Upstream.objects.get(name="g")
    assert up.api_key() == "upstream-sekrit"
    for page in ("/admin/proxy_app/upstream/", f"/admin/proxy_app/upstream/{up.pk}/change/"):
        body = staff.get(page).content.decode()
        assert "upstream-sekrit" not in body and up.api_key_encrypted not in body
    staff.post(
        f"/admin/proxy_app/upstream/{up.pk}/change/",
        {"name": "g", "kind": "gemini", "base_url": "https://g.example", "api_key": "", "enabled": "on"},
    )
    up.refresh_from_db()
    assert up.api_key() == "upstream-sekrit"  # empty field keeps the stored key


def test_usage_admin_is_read_only_with_filters_and_totals(staff, user):
    for model, tokens in [("gpt-4o", 10), ("gpt-4o", 5), ("other", 100)]:
        UsageRecord.objects.create(
            created_at=timezone.now(),
            request_id="r",
            user=user,
            dialect="openai",
            endpoint="chat.completions",
            requested_model=model,
            prompt_tokens=tokens,
            total_tokens=tokens,
            status=200,
        )
    body = staff.get("/admin/proxy_app/usagerecord/?requested_model=gpt-4o").content.decode()
    assert "2 requests" in body and "15 total tokens" in body
    assert staff.get("/admin/proxy_app/usagerecord/add/").status_code == 403
    row = UsageRecord.objects.first()
    assert staff.post(f"/admin/proxy_app/usagerecord/{row.pk}/delete/").status_code == 403
