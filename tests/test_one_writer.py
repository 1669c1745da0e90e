"""One writer per table: ApiKey and Limits rows are written only by accounts/services.py.

Two guards. A source scan finds writes that name the table or the revocation field anywhere in
the code (`ApiKey.objects....update(...)`, `.update(revoked_at=...)`, `key.revoked_at = ...`).
And every write path of the admin, the member page and the commands is driven for real while a
database execute wrapper records each INSERT/UPDATE/DELETE on the two tables together with
whether accounts/services.py was on the Python stack when it ran.
"""

from __future__ import annotations

import ast
import re
import traceback
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from accounts.models import ApiKey, Limits

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent
WRITER = Path("accounts/services.py")
TABLES = {"accounts_apikey", "accounts_limits"}
WRITE_METHODS = {"create", "get_or_create", "update_or_create", "bulk_create", "bulk_update", "update", "delete"}
# The one write outside services, on purpose: the usage writer bumps ApiKey.last_used_at in batches.
ALLOWED = {(Path("proxy_app/ledger/usage.py"), "update", "last_used_at")}


# --- the source scan ----------------------------------------------------------------------------


def _sources():
    for package in ("accounts", "proxy_app", "gateway_site"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path.relative_to(ROOT)


def _names_a_manager_of(node: ast.AST) -> str | None:
    """'ApiKey' / 'Limits' when `node` is a call chain starting at ApiKey.objects / Limits.objects."""
    while isinstance(node, ast.Call | ast.Attribute):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "objects"
            and isinstance(node.value, ast.Name)
            and node.value.id in {"ApiKey", "Limits"}
        ):
            return node.value.id
        node = node.func if isinstance(node, ast.Call) else node.value
    return None


def _writes(tree: ast.AST, path: Path) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method = node.func.attr
            keywords = {k.arg for k in node.keywords}
            if (path, method, *keywords) in ALLOWED:
                continue
            if method in WRITE_METHODS and _names_a_manager_of(node.func.value):
                found.append(f"{path}:{node.lineno} {_names_a_manager_of(node.func.value)}.objects...{method}()")
            elif method == "update" and "revoked_at" in keywords:
                found.append(f"{path}:{node.lineno} .update(revoked_at=...)")
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            for target in targets:
                if isinstance(target, ast.Attribute) and target.attr == "revoked_at":
                    found.append(f"{path}:{node.lineno} .revoked_at = ...")
    return found


def test_no_module_but_the_services_writes_keys_or_limits_in_its_source():
    offenders = []
    for path in _sources():
        if path != WRITER:
            offenders += _writes(ast.parse((ROOT / path).read_text(), str(path)), path)
    assert offenders == []


def test_the_scan_sees_the_writes_it_is_for():
    sample = """
ApiKey.objects.filter(pk=1, revoked_at__isnull=True).update(revoked_at=now)
queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
row, _ = Limits.objects.get_or_create(is_default=True)
key.revoked_at = now
ApiKey.objects.filter(pk=1).exists()
"""
    assert len(_writes(ast.parse(sample), Path("x.py"))) == 4


# --- every write path, recorded at the database ---------------------------------------------------

WRITE_SQL = re.compile(r'^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)"?', re.IGNORECASE)


class WriteRecorder:
    """An execute wrapper: (table, from services?) for every write on the keys and limits tables."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, bool]] = []

    def __call__(self, execute, sql, params, many, context):
        match = WRITE_SQL.match(sql)
        if match and match.group(1) in TABLES:
            stack = traceback.extract_stack()
            self.writes.append((match.group(1), any(Path(f.filename).match(f"*/{WRITER}") for f in stack)))
        return execute(sql, params, many, context)

    def take(self) -> list[tuple[str, bool]]:
        taken, self.writes = self.writes, []
        return taken


@pytest.fixture
def recorder():
    recording = WriteRecorder()
    with connection.execute_wrapper(recording):
        yield recording


@pytest.fixture
def staff(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="pw-root-123")
    client.force_login(admin)
    return client


def all_from_services(writes: list[tuple[str, bool]], *tables: str) -> bool:
    """The flow wrote each of `tables` at least once (the recorder saw it), and only via services."""
    return bool(writes) and {t for t, _ in writes} >= set(tables) and all(ok for _, ok in writes)


def command(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def key_form(key: ApiKey, **limits) -> dict:
    data = {
        "name": key.name,
        "allowed_models": "",
        "expires_at_0": "",
        "expires_at_1": "",
        "limits-TOTAL_FORMS": "1",
        "limits-INITIAL_FORMS": "0",
        "limits-MIN_NUM_FORMS": "0",
        "limits-MAX_NUM_FORMS": "1",
        "limits-0-id": "",
        "limits-0-api_key": key.pk,
    }
    data.update({f"limits-0-{name}": value for name, value in limits.items()})
    return data


def test_admin_key_and_limits_writes_go_through_the_services(staff, user, issue, recorder):
    issue(user, name="k1")
    issue(user, name="k2")
    recorder.take()
    keys = list(ApiKey.objects.order_by("name"))

    staff.post("/admin/accounts/apikey/", {"action": "revoke", "_selected_action": [k.pk for k in keys]})
    assert all_from_services(recorder.take(), "accounts_apikey")
    assert ApiKey.objects.filter(revoked_at__isnull=False).count() == 2

    key = keys[0]
    response = staff.post(f"/admin/accounts/apikey/{key.pk}/change/", key_form(key, rpm="5") | {"name": "renamed"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert all_from_services(recorder.take(), "accounts_apikey", "accounts_limits")
    row = Limits.objects.get(api_key=key)
    assert (row.rpm, ApiKey.objects.get(pk=key.pk).name) == (5, "renamed")

    data = key_form(key, rpm="5") | {"name": "renamed", "limits-INITIAL_FORMS": "1", "limits-0-id": row.pk}
    response = staff.post(f"/admin/accounts/apikey/{key.pk}/change/", data | {"limits-0-DELETE": "on"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert all_from_services(recorder.take(), "accounts_limits")
    assert not Limits.objects.filter(api_key=key).exists()

    default = staff.get("/admin/accounts/limits/default/")
    assert default.status_code == 302
    assert all_from_services(recorder.take(), "accounts_limits")
    default_row = Limits.objects.get(is_default=True)
    response = staff.post(
        f"/admin/accounts/limits/{default_row.pk}/change/",
        {"is_default": "on", "user": "", "api_key": "", "daily_tokens": "5000"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert all_from_services(recorder.take(), "accounts_limits")

    response = staff.post("/admin/accounts/limits/add/", {"user": user.pk, "api_key": "", "rpm": "3"})
    assert response.status_code == 302, response.content.decode()[:2000]
    user_row = Limits.objects.get(user=user)
    staff.post(f"/admin/accounts/limits/{user_row.pk}/delete/", {"post": "yes"})
    staff.post(
        "/admin/accounts/limits/", {"action": "delete_selected", "_selected_action": [default_row.pk], "post": "yes"}
    )
    assert all_from_services(recorder.take(), "accounts_limits")
    assert not Limits.objects.exists()

    staff.post(f"/admin/accounts/apikey/{keys[1].pk}/delete/", {"post": "yes"})
    staff.post("/admin/accounts/apikey/", {"action": "delete_selected", "_selected_action": [key.pk], "post": "yes"})
    assert all_from_services(recorder.take(), "accounts_apikey")
    assert not ApiKey.objects.exists()


def test_user_admin_limits_inline_writes_go_through_the_services(staff, user, recorder):
    data = {
        "username": user.username,
        "first_name": "",
        "last_name": "",
        "email": "",
        "is_active": "on",
        "date_joined_0": timezone.now().strftime("%Y-%m-%d"),
        "date_joined_1": "00:00:00",
        "initial-date_joined_0": timezone.now().strftime("%Y-%m-%d"),
        "initial-date_joined_1": "00:00:00",
        "limits-TOTAL_FORMS": "1",
        "limits-INITIAL_FORMS": "0",
        "limits-MIN_NUM_FORMS": "0",
        "limits-MAX_NUM_FORMS": "1",
        "limits-0-id": "",
        "limits-0-user": user.pk,
        "limits-0-tpm": "900",
        "api_keys-TOTAL_FORMS": "0",
        "api_keys-INITIAL_FORMS": "0",
        "api_keys-MIN_NUM_FORMS": "0",
        "api_keys-MAX_NUM_FORMS": "1000",
    }
    response = staff.post(f"/admin/auth/user/{user.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert all_from_services(recorder.take(), "accounts_limits")
    assert Limits.objects.get(user=user).tpm == 900


def test_member_revocation_goes_through_the_services(client, user, issue, recorder):
    issue(user, name="mine")
    recorder.take()
    client.force_login(user)
    key = ApiKey.objects.get(name="mine")
    response = client.post(f"/account/keys/{key.pk}/revoke/", follow=True)
    assert "is revoked" in response.content.decode()
    assert all_from_services(recorder.take(), "accounts_apikey")
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None


def test_command_writes_go_through_the_services(user, recorder):
    command("issue_token", "alice", "--name", "laptop")
    assert all_from_services(recorder.take(), "accounts_apikey")
    command("set_limits", "--user", "alice", "--rpm", "60")
    command("set_limits", "--token", "laptop", "--max-parallel", "2")
    command("set_limits", "--default", "--tpm", "1000")
    command("set_limits", "--user", "alice", "--clear", "rpm")
    command("set_limits", "--token", "laptop", "--clear")
    assert all_from_services(recorder.take(), "accounts_limits")
    assert Limits.objects.count() == 2
    command("revoke_token", "laptop")
    assert all_from_services(recorder.take(), "accounts_apikey")


def test_apply_config_writes_go_through_the_services(user, issue, recorder, tmp_path):
    issue(user, name="laptop")
    recorder.take()
    path = tmp_path / "gw.toml"
    path.write_text(
        '[[keys]]\nuser = "alice"\nname = "laptop"\nmodels = ["gpt-4o"]\nrevoked = true\n\n'
        '[[limits]]\nuser = "alice"\nrpm = 5\n\n[[limits]]\nkey = "alice/laptop"\nrpm = 2\n\n'
        "[[limits]]\ndefault = true\ntpm = 1000\n"
    )
    command("apply_config", str(path))
    assert all_from_services(recorder.take(), "accounts_apikey", "accounts_limits")
    assert Limits.objects.count() == 3 and ApiKey.objects.get().revoked_at is not None
    path.write_text('[[limits]]\nuser = "alice"\nrpm = 5\n')
    command("apply_config", str(path), "--prune")  # deletes the default row (keys' limits: no [[keys]] given)
    assert all_from_services(recorder.take(), "accounts_limits")
    assert Limits.objects.count() == 2
