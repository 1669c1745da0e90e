"""No admin page or export shows a secret: upstream keys (stored encrypted, or named by an
environment variable), gateway API keys and their HMAC hashes. Every registered model's change
list, add form and change form, the dashboard, the usage CSV export and the autocomplete JSON are
crawled with real rows in place; and the key admin shows and edits a key's IP allow-list."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import issue_key, set_limits
from proxy_app.models import ModelMapping, PoolMember, Upstream, UsageRecord
from tests.test_admin_dashboard import streamed_body

pytestmark = pytest.mark.django_db(transaction=True)
UPSTREAM_SECRET = "sk-upstream-plaintext-0123456789"
ENV_SECRET = "sk-from-env-abcdefghijklmnop"


@pytest.fixture
def staff(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="pw-root-123"))
    return client


@pytest.fixture
def secrets(user, monkeypatch) -> list[str]:
    """Rows of every kind an admin page lists, and the secret strings none of them may show."""
    monkeypatch.setenv("GW_TEST_UPSTREAM_KEY", ENV_SECRET)
    stored = Upstream(name="stored", kind="openai", base_url="https://stored.example/v1")
    stored.set_api_key(UPSTREAM_SECRET)
    stored.save()
    Upstream.objects.create(
        name="fromenv", kind="openai", base_url="https://env.example/v1", api_key_env="GW_TEST_UPSTREAM_KEY"
    )
    team = ModelMapping.objects.create(alias="team")
    PoolMember.objects.create(mapping=team, upstream_model="m", upstream=stored)
    key, secret = issue_key(user, name="laptop", allowed_ips=["10.0.0.0/8"])
    set_limits({"api_key": key}, {"rpm": 5}, None)
    UsageRecord.objects.create(
        created_at=timezone.now(), request_id="r1", user=user, api_key=key, key_prefix=key.prefix,
        dialect="openai", endpoint="chat", requested_model="team", upstream_name="stored", status=200,
    )  # fmt: skip
    return [UPSTREAM_SECRET, ENV_SECRET, stored.api_key_encrypted, secret, secret.split("_", 1)[1], key.secret_hash]


def admin_pages() -> list[str]:
    pages = [reverse("admin:index"), reverse("admin_dashboard"), reverse("admin:proxy_app_usagerecord_export")]
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        pages.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        pages.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
        for pk in model.objects.values_list("pk", flat=True)[:5]:
            pages.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk]))
            pages.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_history", args=[pk]))
        if model_admin.search_fields:
            pages.append(f"{reverse('admin:autocomplete')}?app_label={opts.app_label}&model_name={opts.model_name}")
    return pages


def test_no_admin_page_or_export_shows_a_secret(staff, secrets):
    pages = admin_pages()
    assert len(pages) > 30
    seen = 0
    for page in pages:
        resp = staff.get(page)
        if page.endswith("autocomplete/"):
            continue
        body = streamed_body(resp).decode() if resp.streaming else resp.content.decode()
        assert resp.status_code in (200, 302, 403), (page, resp.status_code)
        seen += resp.status_code == 200
        for secret in secrets:
            assert secret not in body, f"{page} shows a secret"
    assert seen > 30
    csv_text = streamed_body(staff.get(reverse("admin:proxy_app_usagerecord_export"))).decode()
    assert "r1" in csv_text  # the export did contain the row, without any secret


def test_key_autocomplete_shows_no_hash(staff, secrets):
    url = reverse("admin:autocomplete") + "?app_label=accounts&model_name=limits&field_name=api_key&term=lap"
    resp = staff.get(url)
    assert resp.status_code == 200 and "laptop" in resp.content.decode()
    assert not any(secret in resp.content.decode() for secret in secrets)


def test_key_admin_shows_and_edits_the_ip_allow_list(staff, secrets):
    key = ApiKey.objects.get(name="laptop")
    listing = staff.get(reverse("admin:accounts_apikey_changelist")).content.decode()
    assert "10.0.0.0/8" in listing
    change = reverse("admin:accounts_apikey_change", args=[key.pk])
    assert 'value="10.0.0.0/8"' in staff.get(change).content.decode()
    form = {"name": "laptop", "allowed_models": "", "allowed_ips": "203.0.113.7, 2001:db8::/32", "expires_at": ""}
    form |= {"limits-TOTAL_FORMS": 0, "limits-INITIAL_FORMS": 0}
    assert staff.post(change, form).status_code == 302
    key.refresh_from_db()
    assert key.allowed_ips == ["203.0.113.7/32", "2001:db8::/32"]
    bad = staff.post(change, {**form, "allowed_ips": "203.0.113.300"})
    assert bad.status_code == 200 and "is not an IP address or CIDR" in bad.content.decode()
    key.refresh_from_db()
    assert key.allowed_ips == ["203.0.113.7/32", "2001:db8::/32"]
    staff.post(change, {**form, "allowed_ips": ""})
    key.refresh_from_db()
    assert (
        key.allowed_ips == []
        and "any address" in staff.get(reverse("admin:accounts_apikey_changelist")).content.decode()
    )
