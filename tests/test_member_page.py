"""/account/: a member's own keys, usage and remaining quota; creating (secret shown once) and
revoking their own keys when the admin allows it; never anyone else's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client

from accounts.keys import hash_secret
from accounts.models import ApiKey, Limits
from proxy_app.ledger import reports as dashboard
from proxy_app.models import UsageDaily, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def member(client, user):
    client.force_login(user)
    return client


def usage(user, when, *, model="gpt-4o", tokens=100, cost="0.01", status=200):
    return UsageRecord.objects.create(
        created_at=when,
        request_id="r",
        user=user,
        dialect="openai",
        endpoint="chat.completions",
        requested_model=model,
        prompt_tokens=tokens // 2,
        completion_tokens=tokens // 2,
        total_tokens=tokens,
        status=status,
        cost_usd=Decimal(cost),
    )


def secret_on(body: str) -> str:
    return body.split('id="new-api-key" type="text" readonly value="')[1].split('"')[0]


def test_anonymous_is_sent_to_the_login_page(client):
    response = client.get("/account/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=/account/"
    assert 'name="password"' in client.get("/accounts/login/").content.decode()


def test_login_with_the_django_account_then_logout(client, user):
    response = client.post("/accounts/login/", {"username": "alice", "password": "pw-alice-123", "next": "/account/"})
    assert response.status_code == 302 and response["Location"] == "/account/"
    assert client.get("/account/").status_code == 200
    bad = Client().post("/accounts/login/", {"username": "alice", "password": "wrong"})
    assert bad.status_code == 200 and "didn't match" in bad.content.decode()
    client.post("/accounts/logout/")
    assert client.get("/account/").status_code == 302


def test_page_shows_own_keys_usage_and_remaining_quota(member, user, issue, django_user_model):
    issue(user, name="laptop")
    bob = django_user_model.objects.create_user("bob")
    issue(bob, name="bobs-key")
    Limits.objects.create(is_default=True, daily_tokens=1000, budget_usd=Decimal("2"), rpm=60)
    Limits.objects.create(api_key=ApiKey.objects.get(name="laptop"), max_parallel=2)
    now = datetime.now(UTC)
    usage(user, now, tokens=300, cost="0.25")
    usage(user, now, model="gemini-2.5-flash", tokens=100, cost="0.05")
    usage(bob, now, tokens=5000)
    body = member.get("/account/").content.decode()
    laptop, bobs = ApiKey.objects.get(name="laptop"), ApiKey.objects.get(name="bobs-key")
    assert laptop.prefix in body and "max_parallel=2" in body
    assert bobs.prefix not in body and "bobs-key" not in body
    assert 'id="tokens-today">400<' in body and "$0.3000" in body
    models = body.split('id="member-models"')[1].split("</section>")[0]
    assert "gpt-4o" in models and "gemini-2.5-flash" in models and "300" in models
    quota = body.split('id="member-quota"')[1].split("</section>")[0]
    assert "tokens today" in quota and "600" in quota  # remaining of the default 1,000
    assert "budget this month" in quota and "$1.70" in quota
    assert "requests this minute" in quota and ">60<" in quota  # the per-minute limit and its counter


def test_no_limits_says_so(member, user):
    assert "No limits apply to your account." in member.get("/account/").content.decode()


def test_create_key_shows_the_secret_once(member, user):
    response = member.post("/account/keys/new/", {"name": "phone"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    secret = secret_on(response.content.decode())
    key = ApiKey.objects.get(user=user, name="phone")
    assert hash_secret(secret) == key.secret_hash
    page = member.get("/account/").content.decode()
    assert key.prefix in page and secret not in page and key.secret_hash not in page


def test_duplicate_key_name_is_an_error_message(member, user, issue):
    issue(user, name="phone")
    response = member.post("/account/keys/new/", {"name": "phone"}, follow=True)
    assert "already has a key named" in response.content.decode()
    assert ApiKey.objects.filter(user=user).count() == 1


def test_active_key_cap(member, user, issue, settings):
    settings.MEMBERS_MAX_KEYS = 2
    issue(user, name="a")
    issue(user, name="b")
    response = member.post("/account/keys/new/", {"name": "c"}, follow=True)
    assert "the most allowed" in response.content.decode()
    assert not ApiKey.objects.filter(name="c").exists()


def test_revoke_own_key_only(member, user, issue, django_user_model):
    issue(user, name="laptop")
    bob = django_user_model.objects.create_user("bob")
    issue(bob, name="bobs-key")
    mine, theirs = ApiKey.objects.get(name="laptop"), ApiKey.objects.get(name="bobs-key")
    assert member.post(f"/account/keys/{theirs.pk}/revoke/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None
    assert member.get(f"/account/keys/{mine.pk}/revoke/").status_code == 405  # POST only
    response = member.post(f"/account/keys/{mine.pk}/revoke/", follow=True)
    mine.refresh_from_db()
    assert mine.revoked_at is not None and "is revoked" in response.content.decode()


def test_post_needs_the_csrf_token(user, issue):
    issue(user, name="laptop")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    key = ApiKey.objects.get(name="laptop")
    assert client.post(f"/account/keys/{key.pk}/revoke/").status_code == 403
    assert client.post("/account/keys/new/", {"name": "x"}).status_code == 403
    page = client.get("/account/").content.decode()
    token = page.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
    assert client.post(f"/account/keys/{key.pk}/revoke/", {"csrfmiddlewaretoken": token}).status_code == 302


def test_when_the_admin_turns_key_management_off(member, user, issue, settings):
    settings.MEMBERS_MANAGE_KEYS = False
    issue(user, name="laptop")
    key = ApiKey.objects.get(name="laptop")
    page = member.get("/account/").content.decode()
    assert key.prefix in page and "new-key-form" not in page and "Revoke" not in page
    assert member.post("/account/keys/new/", {"name": "x"}).status_code == 403
    assert member.post(f"/account/keys/{key.pk}/revoke/").status_code == 403
    key.refresh_from_db()
    assert key.revoked_at is None


def test_month_usage_includes_rolled_up_days():
    """member_usage sums the roll-up for rolled days and raw rows after (fixed clock, mid-month)."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("carol")
    now = datetime(2026, 3, 15, 12, tzinfo=UTC)
    UsageDaily.objects.create(
        day=now.date() - timedelta(days=3),
        user=user,
        model="gpt-4o",
        requests=4,
        total_tokens=4000,
        cost_usd=Decimal("1"),
    )
    UsageDaily.objects.create(
        day=datetime(2026, 2, 27).date(), user=user, model="gpt-4o", requests=9, total_tokens=9000
    )  # last month: not counted
    usage(user, now - timedelta(hours=1), tokens=10, cost="0.5")
    usage(user, now - timedelta(days=1), tokens=20)
    found = dashboard.member_usage(user.pk, now=now)
    assert found["today"]["total_tokens"] == 10
    assert found["month"]["total_tokens"] == 4030 and found["month"]["requests"] == 6
    assert found["month"]["cost_usd"] == Decimal("1.51")
