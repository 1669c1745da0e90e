"""The ops commands, run as scripts would run them (real subprocess for the last-line contract)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from accounts.keys import hash_secret
from accounts.models import ApiKey
from proxy_app.models import ModelMapping, Upstream, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_issue_token_prints_key_alone_on_last_line(settings):
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        url = f"sqlite:///{db['NAME']}"
    else:
        url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = {**os.environ, "DATABASE_URL": url}
    proc = subprocess.run(
        [sys.executable, "manage.py", "issue_token", "bob", "--create-user", "--name", "ci", "--models", "gpt-4o,x"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    secret = proc.stdout.strip().splitlines()[-1]
    key = ApiKey.objects.get(name="ci")
    assert key.secret_hash == hash_secret(secret) and secret.startswith(key.prefix)
    assert key.allowed_models == ["gpt-4o", "x"] and key.user.username == "bob"
    assert secret not in key.secret_hash


def test_issue_token_mistakes_exit_non_zero(user):
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        run("issue_token", "nobody")
    run("issue_token", "alice", "--name", "laptop")
    with pytest.raises(CommandError, match="already has a key named 'laptop'"):
        run("issue_token", "alice", "--name", "laptop")
    with pytest.raises(CommandError, match="0 \\(expires now\\) or more"):
        run("issue_token", "alice", "--expires-days", "-1")


def test_issue_token_expiry(user):
    run("issue_token", "alice", "--name", "temp", "--expires-days", "3")
    assert ApiKey.objects.get(name="temp").expires_at is not None


def test_revoke_token_by_prefix_and_name(user, issue):
    issue(user, name="one")
    two = issue(user, name="two")
    assert "Revoked 'one'" in run("revoke_token", "one")
    assert "Revoked 'two'" in run("revoke_token", two.split("_")[0])
    assert ApiKey.objects.filter(revoked_at__isnull=True).count() == 0
    with pytest.raises(CommandError, match="no key"):
        run("revoke_token", "missing")


def test_add_upstream_and_map_model(monkeypatch):
    out = run(
        "add_upstream", "google", "--kind", "gemini", "--base-url", "https://g.example", "--api-key", "sekrit-123"
    )
    assert "Added upstream 'google'" in out and "sekrit-123" not in out
    up = Upstream.objects.get(name="google")
    assert "sekrit-123" not in up.api_key_encrypted and up.api_key() == "sekrit-123"
    run(
        "add_upstream",
        "envy",
        "--kind",
        "openai",
        "--base-url",
        "http://127.0.0.1:11434/v1",
        "--api-key-env",
        "ENVY_KEY",
    )
    monkeypatch.setenv("ENVY_KEY", "from-env")
    assert Upstream.objects.get(name="envy").api_key() == "from-env"
    with pytest.raises(CommandError, match="not an http"):
        run("add_upstream", "bad", "--kind", "gemini", "--base-url", "ftp://x")

    run("map_model", "gpt-4o", "gemini-2.5-flash", "--upstream", "google")
    run("map_model", "internal", "gemini-2.5-pro", "--hidden")
    assert [m.upstream for m in ModelMapping.objects.get(alias="gpt-4o").members.all()] == [up]
    assert ModelMapping.objects.get(alias="internal").hidden
    assert "Re-mapped" in run("map_model", "gpt-4o", "gemini-2.5-pro", "--upstream", "google")
    # Another upstream (here the default Gemini one) adds a pool member; the same one updates it.
    assert "pool of 2" in run("map_model", "gpt-4o", "gemini-2.5-flash", "--priority", "1", "--weight", "3")
    assert "Re-mapped" in run("map_model", "gpt-4o", "gemini-2.5-flash-lite", "--weight", "2")
    pool = ModelMapping.objects.get(alias="gpt-4o").members.all()
    members = [(m.upstream, m.upstream_model, m.priority, m.weight) for m in pool]
    assert members == [(up, "gemini-2.5-pro", 0, 1), (None, "gemini-2.5-flash-lite", 1, 2)]
    with pytest.raises(CommandError, match="at least 1"):
        run("map_model", "gpt-4o", "gemini-2.5-flash", "--weight", "0")
    with pytest.raises(CommandError, match="no upstream named"):
        run("map_model", "x", "y", "--upstream", "nope")


def test_usage_report(user, django_user_model):
    from django.utils import timezone

    other = django_user_model.objects.create_user("carol")
    for owner, model, p, c in [(user, "gpt-4o", 10, 5), (user, "gpt-4o", 1, 1), (other, "gemini-2.5-pro", 7, 3)]:
        UsageRecord.objects.create(
            created_at=timezone.now(),
            request_id="r",
            user=owner,
            dialect="openai",
            endpoint="chat.completions",
            requested_model=model,
            prompt_tokens=p,
            completion_tokens=c,
            total_tokens=p + c,
            status=200,
        )
    data = json.loads(run("usage_report", "--json"))
    assert data["rows"] == [
        {
            "user": "alice",
            "model": "gpt-4o",
            "requests": 2,
            "prompt_tokens": 11,
            "completion_tokens": 6,
            "total_tokens": 17,
            "cost_usd": 0.0,
        },
        {
            "user": "carol",
            "model": "gemini-2.5-pro",
            "requests": 1,
            "prompt_tokens": 7,
            "completion_tokens": 3,
            "total_tokens": 10,
            "cost_usd": 0.0,
        },
    ]
    assert data["totals"]["total_tokens"] == 27
    assert json.loads(run("usage_report", "--json", "--user", "carol"))["totals"]["requests"] == 1
    assert json.loads(run("usage_report", "--json", "--since", "2999-01-01"))["rows"] == []
    assert "TOTAL" in run("usage_report")
    with pytest.raises(CommandError):
        run("usage_report", "--since", "yesterday")


def test_ensure_admin(monkeypatch, django_user_model):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "pw-from-env-1")
    assert "Created admin" in run("ensure_admin")
    assert django_user_model.objects.get(username="admin").check_password("pw-from-env-1")
    assert "exists already" in run("ensure_admin")
