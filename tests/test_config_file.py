"""Config as code: apply_config / export_config (TOML and YAML) round trip, dry run, idempotence,
errors naming the file line, one transaction, keys' metadata, --prune and the shipped example."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import ApiKey, Limits
from accounts.services import issue_key, set_limits
from proxy_app.models import LogSettings, ModelMapping, ModelPrice, PoolMember, Upstream, UsagePolicy

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent
STORED_KEY = "sk-stored-upstream-secret-123"


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def write(tmp_path: Path, text: str, name: str = "gw.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def build_state() -> None:
    User = get_user_model()
    alice = User.objects.create_user("alice", email="alice@example.com", is_staff=True, password="pw-alice-123")
    User.objects.create_user("bob", is_active=False)
    gem = Upstream.objects.create(
        name="gem", kind="gemini", base_url="https://gemini.test", api_key_env="GEM_KEY", rpm=100, max_concurrent=8
    )
    stored = Upstream(name="deepseek", kind="openai", base_url="https://api.deepseek.test/v1", detailed_logging=True)
    stored.set_api_key(STORED_KEY)
    stored.save()
    gpt = ModelMapping.objects.create(alias="gpt-4o")
    PoolMember.objects.create(mapping=gpt, upstream_model="gemini-2.5-flash")
    ds = ModelMapping.objects.create(alias="ds", hidden=True)  # a pool: two members, a failover
    PoolMember.objects.create(mapping=ds, upstream=stored, upstream_model="deepseek-chat", weight=3)
    PoolMember.objects.create(mapping=ds, upstream=gem, upstream_model="gemini-2.5-pro", priority=1)
    ModelPrice.objects.filter(model="gemini-2.5-pro").update(input_per_million=Decimal("1.5"))
    ModelPrice.objects.create(model="deepseek-chat", input_per_million="0.27", output_per_million="1.1")
    set_limits({"is_default": True}, {"rpm": 100, "budget_usd": Decimal("12.5")}, [])
    set_limits({"user": alice}, {"daily_tokens": 2_000_000, "max_parallel": 4}, [])
    LogSettings.objects.create(detailed_logging=True)
    UsagePolicy(retention_days=30).save()


def wipe() -> None:
    """The configuration tables emptied: the database a fresh install without the seeded prices has."""
    for model in (Limits, ApiKey, PoolMember, ModelMapping, Upstream, ModelPrice, LogSettings, UsagePolicy):
        model.objects.all().delete()
    get_user_model().objects.all().delete()


@pytest.mark.parametrize("fmt", ["toml", "yaml"])
def test_export_apply_on_an_empty_database_export_is_identical_and_has_no_secret(tmp_path, fmt):
    build_state()
    first = run("export_config", "--format", fmt)
    assert STORED_KEY not in first and Upstream.objects.get(name="deepseek").api_key_encrypted not in first
    assert "password" not in first and "pbkdf2" not in first
    assert "GEM_KEY" in first and "gpt-4o" in first and "alice@example.com" in first
    path = write(tmp_path, first, f"state.{fmt}")
    wipe()
    applied = run("apply_config", path)
    assert "+ upstream gem" in applied and "+ limits user alice" in applied
    assert run("export_config", "--format", fmt) == first
    alice = get_user_model().objects.get(username="alice")
    assert alice.is_staff and not alice.has_usable_password()  # never a password from the file
    assert run("apply_config", path).strip() == "No changes: the database already matches the file."


def test_dry_run_prints_the_diff_and_writes_nothing(tmp_path):
    build_state()
    before, entries = run("export_config"), LogEntry.objects.count()
    path = write(
        tmp_path,
        """
[[models]]
alias = "gpt-4o"
model = "gemini-2.5-pro"

[[prices]]
model = "new-model"
input_per_million = 1
output_per_million = 2

[[limits]]
user = "alice"
daily_tokens = 5000
""",
    )
    out = run("apply_config", path, "--dry-run")
    assert out.splitlines() == [
        "~ model gpt-4o member (default Gemini upstream): model gemini-2.5-flash → gemini-2.5-pro",
        "+ price new-model: input_per_million=1; output_per_million=2; cached_input_per_million=0",
        "~ limits user alice: max_parallel 4 → (none); daily_tokens 2000000 → 5000",
        "Dry run: 3 change(s) shown, nothing written.",
    ]
    assert run("export_config") == before and LogEntry.objects.count() == entries
    assert run("apply_config", path).splitlines()[-1] == "Applied 3 change(s)."
    assert PoolMember.objects.get(mapping__alias="gpt-4o").upstream_model == "gemini-2.5-pro"


def test_the_example_file_applies_on_a_fresh_database_and_again_changes_nothing():
    example = str(ROOT / "config" / "example.toml")
    out = run("apply_config", example)
    assert "+ model gpt-4o" in out and "+ upstream deepseek" in out
    assert Upstream.objects.get(name="deepseek").api_key_env == "DEEPSEEK_API_KEY"
    assert run("apply_config", example).strip() == "No changes: the database already matches the file."


BAD = [
    (
        '[[upstreams]]\nname = "x"\nkind = "openai"\nbase_url = "https://x.test/v1"\napi_key = "sk-live-123"\n',
        "gw.toml:5: upstreams[1] (name 'x'): 'api_key': secrets never go in the config file; put the key in an "
        'environment variable and name it with api_key_env = "VARIABLE"',
    ),
    (
        '[[models]]\nalias = "a"\nmodel = "m"\n\n[[models]]\nalias = "b"\nupstream = "nowhere"\nmodel = "m"\n',
        "gw.toml:7: models[2] (alias 'b'): no upstream named 'nowhere' (list it in [[upstreams]])",
    ),
    (
        '[[models]]\nalias = "a"\nmodel = "m"\n\n[[models]]\nalias = "a"\nmodel = "n"\n',
        "gw.toml:5: models[2] (alias 'a'): listed twice (also at gw.toml:1)",  # same alias, same upstream
    ),
    (
        '[[prices]]\nmodel = "m"\ninput_per_million = -1\noutput_per_million = 1\n',
        "gw.toml:3: prices[1] (model 'm'): 'input_per_million' must be 0 or more with at most 4 decimals (got -1)",
    ),
    (
        '[[upstreams]]\nname = "x"\nkind = "openai"\nbase_url = "not a url"\n',
        "gw.toml:4: upstreams[1] (name 'x'): base_url: Enter a valid URL.",
    ),
    ('[[limits]]\nuser = "nobody"\nrpm = 5\n', "gw.toml:2: limits[1]: no user named 'nobody' (list it in [[users]])"),
    (
        "[[limits]]\ndefault = true\nrpm = 0\n",
        "gw.toml:3: limits[1]: 'rpm' must be a whole number of at least 1 (got 0)",
    ),
    ('[[models]]\nalias = "a"\nmodle = "m"\n', "gw.toml:3: models[1] (alias 'a'): unknown field 'modle' (expected"),
    ("[modelz]\nx = 1\n", "gw.toml:1: unknown section 'modelz'"),
    ('[[models]]\nalias = "a"\nmodel = \n', "gw.toml: not valid TOML: Invalid value (at line 3, column 9)"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_input_is_an_error_naming_the_line_and_changes_nothing(tmp_path, text, message):
    path = write(tmp_path, text)
    before = run("export_config")
    with pytest.raises(CommandError) as caught:
        run("apply_config", path)
    assert str(caught.value).replace(str(tmp_path) + "/", "").startswith(message)
    assert str(caught.value).endswith("Nothing was changed.")
    assert "sk-live-123" not in str(caught.value)
    assert run("export_config") == before


def test_yaml_errors_name_the_line_too(tmp_path):
    path = write(
        tmp_path, "models:\n  - alias: a\n    model: m\n  - alias: b\n    hidden: maybe\n    model: m\n", "gw.yaml"
    )
    with pytest.raises(CommandError, match=r"gw\.yaml:5: models\[2\] \(alias 'b'\): 'hidden' must be true or false"):
        run("apply_config", path)


def test_a_bad_entry_late_in_the_file_leaves_the_database_untouched(tmp_path):
    before, entries = run("export_config"), LogEntry.objects.count()
    path = write(
        tmp_path,
        """
[settings]
detailed_logging = true

[[upstreams]]
name = "fine"
kind = "openai"
base_url = "https://fine.test/v1"
api_key_env = "FINE_KEY"

[[models]]
alias = "fine-model"
upstream = "fine"
model = "m"

[[users]]
username = "carol"

[[limits]]
user = "carol"
budget_usd = 0
""",
    )
    with pytest.raises(CommandError, match=r"gw\.toml:21: limits\[1\]: 'budget_usd' must be more than 0"):
        run("apply_config", path)
    assert not Upstream.objects.exists() and not ModelMapping.objects.exists()
    assert not get_user_model().objects.filter(username="carol").exists() and not LogSettings.objects.exists()
    assert run("export_config") == before and LogEntry.objects.count() == entries


def test_keys_metadata_is_exported_with_keys_and_applied_to_existing_keys_only(tmp_path):
    alice = get_user_model().objects.create_user("alice")
    key, secret = issue_key(alice, name="laptop", models=["gpt-4o"], expires_days=30)
    set_limits({"api_key": key}, {"rpm": 7}, [])
    text = run("export_config", "--keys")
    assert secret not in text and key.secret_hash not in text and key.prefix not in text
    assert 'key = "alice/laptop"' in text and "rpm = 7" in text
    assert run("apply_config", write(tmp_path, text)).startswith("No changes")  # whole seconds match
    edited = text.replace('models = [\n    "gpt-4o",\n]', 'models = [\n    "gpt-4o",\n    "ds",\n]')
    edited = edited.replace("revoked = false", "revoked = true").replace("rpm = 7", "rpm = 9")
    assert edited.count("ds") == 1
    out = run("apply_config", write(tmp_path, edited))
    assert "~ key alice/laptop: allowed_models ['gpt-4o'] → ['gpt-4o', 'ds']" in out
    assert "~ key alice/laptop: revoked" in out and "~ limits key alice/laptop: rpm 7 → 9" in out
    key.refresh_from_db()
    assert key.revoked_at is not None and key.allowed_models == ["gpt-4o", "ds"]
    missing = write(tmp_path, '[[users]]\nusername = "alice"\n\n[[keys]]\nuser = "alice"\nname = "desk"\n')
    with pytest.raises(CommandError, match=r"gw\.toml:6: keys\[1\] \(name 'desk'\): alice has no key named 'desk'"):
        run("apply_config", missing)


def test_prune_deletes_what_the_files_sections_do_not_list(tmp_path):
    build_state()
    path = write(
        tmp_path,
        '[[upstreams]]\nname = "gem"\nkind = "gemini"\nbase_url = "https://gemini.test"\n\n'
        '[[models]]\nalias = "gpt-4o"\nmodel = "gemini-2.5-flash"\n\n[[limits]]\ndefault = true\nrpm = 100\n'
        "budget_usd = 12.5\n",
    )
    out = run("apply_config", path, "--prune")
    assert "- model ds" in out and "- upstream deepseek" in out and "- limits user alice" in out, out
    assert "price" not in out  # no [[prices]] section in the file: prices are left alone
    assert list(Upstream.objects.values_list("name", flat=True)) == ["gem"]
    assert get_user_model().objects.filter(username="bob").exists()  # users are never pruned


def test_repeated_aliases_are_pool_members_and_the_file_lists_the_whole_pool(tmp_path):
    Upstream.objects.create(name="ds", kind="openai", base_url="https://ds.test/v1")
    pool = (
        '[[models]]\nalias = "chat"\nupstream = "ds"\nmodel = "deepseek-chat"\nweight = 3\n\n'
        '[[models]]\nalias = "chat"\nmodel = "gemini-2.5-flash"\npriority = 1\n'
    )
    out = run("apply_config", write(tmp_path, pool))
    assert "+ model chat member ds: model=deepseek-chat; priority=0; weight=3" in out
    members = PoolMember.objects.filter(mapping__alias="chat").order_by("priority")
    assert [(m.upstream_id is None, m.upstream_model, m.priority, m.weight) for m in members] == [
        (False, "deepseek-chat", 0, 3),
        (True, "gemini-2.5-flash", 1, 1),
    ]
    assert run("apply_config", write(tmp_path, pool)).startswith("No changes")
    only_ds = pool.split("\n\n")[0] + "\n"
    assert "- model chat member (default Gemini upstream)" in run("apply_config", write(tmp_path, only_ds))
    assert PoolMember.objects.filter(mapping__alias="chat").count() == 1
    clash = only_ds + '\n[[models]]\nalias = "chat"\nmodel = "m"\nhidden = true\n'
    with pytest.raises(CommandError, match=r"gw\.toml:10: models\[2\] \(alias 'chat'\): 'hidden' differs"):
        run("apply_config", write(tmp_path, clash))
