"""The audit log (django-auditlog): admin and command changes of keys, limits, upstreams, mappings and
prices are recorded with who, when and before → after, shown and filtered in the admin, exported as
CSV, and never hold a secret (key secrets and hashes, upstream keys in plain or encrypted form)."""

from __future__ import annotations

import csv
import io
from io import StringIO

import pytest
from auditlog.models import LogEntry
from django.core.management import call_command

from accounts.models import ApiKey, Limits
from proxy_app.models import Upstream

pytestmark = pytest.mark.django_db
UPSTREAM_SECRET = "sk-upstream-very-secret-42"


@pytest.fixture
def staff(client, django_user_model):
    root = django_user_model.objects.create_superuser("root", password="pw-root-123")
    client.force_login(root)
    return client


def every_entry_text() -> str:
    """Everything the audit table holds, as text (changes, reprs, extra data, serialized data)."""
    rows = LogEntry.objects.values_list("changes", "changes_text", "object_repr", "additional_data", "serialized_data")
    return repr(list(rows))


def command(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_an_admin_change_shows_in_the_audit_admin_with_before_and_after_and_no_secret(staff, django_user_model):
    alice = django_user_model.objects.create_user("alice")
    assert staff.post("/admin/accounts/limits/add/", {"user": alice.pk, "api_key": "", "rpm": "3"}).status_code == 302
    row = Limits.objects.get(user=alice)
    response = staff.post(f"/admin/accounts/limits/{row.pk}/change/", {"user": alice.pk, "api_key": "", "rpm": "5"})
    assert response.status_code == 302, response.content.decode()[:2000]

    form = {"name": "ds", "kind": "openai", "base_url": "https://api.ds.test/v1", "api_key": UPSTREAM_SECRET}
    assert staff.post("/admin/proxy_app/upstream/add/", form | {"api_key_env": "", "enabled": "on"}).status_code == 302
    stored = Upstream.objects.get(name="ds").api_key_encrypted
    new_key = staff.post("/admin/accounts/apikey/add/", {"user": alice.pk, "name": "laptop", "allowed_models": ""})
    secret = new_key.context["secret"]
    key = ApiKey.objects.get(name="laptop")
    staff.post("/admin/accounts/apikey/", {"action": "revoke", "_selected_action": [key.pk]})

    change = LogEntry.objects.get(action=LogEntry.Action.UPDATE, object_pk=str(row.pk), content_type__model="limits")
    assert change.changes_dict == {"rpm": [3, 5]} and change.actor.username == "root"
    assert change.additional_data == {"source": "admin"} and change.remote_addr == "127.0.0.1"
    upstream_entry = LogEntry.objects.get(content_type__model="upstream")
    assert upstream_entry.changes_dict["api_key_encrypted"] == ["(none)", "(set)"]
    revoked = LogEntry.objects.get(content_type__model="apikey", action=LogEntry.Action.UPDATE)
    assert revoked.changes_dict["revoked_at"][0] is None and revoked.actor.username == "root"

    page = staff.get("/admin/auditlog/logentry/?source=admin").content.decode()
    assert "rpm: 3 → 5" in page and "root" in page and "api_key_encrypted: (none) → (set)" in page
    detail = staff.get(f"/admin/auditlog/logentry/{change.pk}/change/").content.decode()
    assert "root" in detail and "127.0.0.1" in detail
    exported = staff.get("/admin/auditlog/logentry/export.csv?source=admin").content.decode()
    for text in (every_entry_text(), page, exported):
        for hidden in (UPSTREAM_SECRET, stored, secret, key.secret_hash):
            assert hidden not in text


def test_a_command_change_shows_in_the_audit_admin_as_the_command(staff, django_user_model):
    django_user_model.objects.create_user("alice")
    command("set_limits", "--user", "alice", "--rpm", "60")
    command("set_limits", "--user", "alice", "--rpm", "61", "--budget-usd", "25")
    secret = command("issue_token", "alice", "--name", "desk").strip().splitlines()[-1]
    command("add_upstream", "ds", "--kind", "openai", "--base-url", "https://ds.test/v1", "--api-key", UPSTREAM_SECRET)
    command("map_model", "gpt-4o", "deepseek-chat", "--upstream", "ds")

    change = LogEntry.objects.filter(content_type__model="limits", action=LogEntry.Action.UPDATE).get()
    assert change.changes_dict == {"rpm": [60, 61], "budget_usd": [None, "25"]} and change.actor is None
    assert change.additional_data == {"source": "command:set_limits"}
    assert change.cid.startswith("command:set_limits:")
    sources = set(LogEntry.objects.values_list("additional_data__source", flat=True))
    assert sources == {"command:set_limits", "command:issue_token", "command:add_upstream", "command:map_model"}

    page = staff.get("/admin/auditlog/logentry/?source=command:set_limits").content.decode()
    assert "rpm: 60 → 61; budget_usd: null → 25" in page and "command:set_limits" in page
    assert "command:map_model" not in page.split("<tbody>")[1].split("</tbody>")[0]  # only that command
    exported = list(csv.reader(io.StringIO(staff.get("/admin/auditlog/logentry/export.csv").content.decode())))
    assert exported[0][:3] == ["timestamp", "action", "resource"]
    assert {row[5] for row in exported[1:]} == sources
    assert any(row[7] == "rpm: 60 → 61; budget_usd: null → 25" for row in exported[1:])
    key = ApiKey.objects.get(name="desk")
    for hidden in (UPSTREAM_SECRET, Upstream.objects.get().api_key_encrypted, secret, key.secret_hash):
        assert hidden not in every_entry_text() and hidden not in repr(exported)


def test_apply_config_changes_are_attributed_to_it_and_a_dry_run_records_nothing(tmp_path):
    path = tmp_path / "gw.toml"
    path.write_text('[[models]]\nalias = "gpt-4o"\nmodel = "gemini-2.5-flash"\n')
    command("apply_config", str(path), "--dry-run")
    assert not LogEntry.objects.exists()
    command("apply_config", str(path))
    entries = list(LogEntry.objects.all())
    assert {e.content_type.model for e in entries} == {"modelmapping", "poolmember"}  # the alias, its one member
    assert all(e.additional_data == {"source": "command:apply_config"} for e in entries)
    member = next(e for e in entries if e.content_type.model == "poolmember")
    assert member.changes_dict["upstream_model"] == [None, "gemini-2.5-flash"]


def test_a_member_page_change_is_recorded_with_the_member_as_actor(client, django_user_model):
    alice = django_user_model.objects.create_user("alice", password="pw-alice-123")
    client.force_login(alice)
    created = client.post("/account/keys/new/", {"name": "phone"})
    secret = created.context["secret"]
    key = ApiKey.objects.get(name="phone")
    assert client.post(f"/account/keys/{key.pk}/revoke/").status_code == 302
    entries = list(LogEntry.objects.filter(content_type__model="apikey").order_by("pk"))
    assert [e.action for e in entries] == [LogEntry.Action.CREATE, LogEntry.Action.UPDATE]
    assert all(e.actor == alice and e.additional_data == {"source": "web"} for e in entries)
    assert entries[0].changes_dict["secret_hash"] == ["(none)", "(set)"]
    assert entries[1].changes_dict["revoked_at"][0] is None
    assert secret not in every_entry_text() and key.secret_hash not in every_entry_text()
