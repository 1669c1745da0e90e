"""`manage.py set_limits`: set, show, clear limits of users, keys and the default row; mistakes."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction

from accounts.models import Limits
from accounts.services import issue_key

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> str:
    out = StringIO()
    call_command("set_limits", *args, stdout=out)
    return out.getvalue().strip()


@pytest.fixture
def laptop(user):
    return issue_key(user, name="laptop")[0]


def test_set_and_show_user_limits(user):
    out = run("--user", "alice", "--rpm", "60", "--tpm", "100000", "--daily-tokens", "200000", "--budget-usd", "25.5")
    assert out == "Limits of user alice: rpm=60, tpm=100000, daily_tokens=200000, budget_usd=25.50."
    run("--user", "alice", "--max-parallel", "2", "--monthly-tokens", "5000000", "--rpm", "30")
    row = Limits.objects.get(user=user)
    assert (row.rpm, row.tpm, row.max_parallel, row.daily_tokens, row.monthly_tokens, row.budget_usd) == (
        30,
        100000,
        2,
        200000,
        5000000,
        Decimal("25.5"),
    )
    assert run("--user", "alice") == (
        "Limits of user alice: rpm=30, tpm=100000, max_parallel=2, daily_tokens=200000, "
        "monthly_tokens=5000000, budget_usd=25.50."
    )


def test_key_limits_by_name_or_prefix(laptop):
    assert run("--token", "laptop", "--rpm", "5") == f"Limits of key 'laptop' ({laptop.prefix}) of alice: rpm=5."
    run("--token", laptop.prefix, "--tpm", "900")
    row = Limits.objects.get(api_key=laptop)
    assert (row.rpm, row.tpm, row.user_id) == (5, 900, None)


def test_default_row(user):
    assert run("--default") == "Limits of the default (users without limits of their own): none set."
    run("--default", "--rpm", "10")
    run("--default", "--tpm", "1000")
    row = Limits.objects.get(is_default=True)
    assert (row.rpm, row.tpm, row.user_id, row.api_key_id) == (10, 1000, None, None)


def test_clear_some_limits_or_the_whole_row(user):
    run("--user", "alice", "--rpm", "60", "--tpm", "1000", "--budget-usd", "3")
    assert run("--user", "alice", "--clear", "rpm", "budget-usd") == "Limits of user alice: tpm=1000."
    assert run("--user", "alice", "--clear", "tpm").splitlines() == [
        "Limits of user alice: no limits.",
        "This empty row exempts the user from the default limits; --clear alone removes it.",
    ]
    assert Limits.objects.filter(user=user).exists()
    assert run("--user", "alice", "--clear") == "Removed the limits of user alice."
    assert not Limits.objects.filter(user=user).exists()
    assert run("--user", "alice", "--clear") == "Removed the limits of user alice."  # idempotent


def test_set_and_clear_different_limits_at_once(user):
    run("--user", "alice", "--rpm", "60")
    assert run("--user", "alice", "--clear", "rpm", "--tpm", "50") == "Limits of user alice: tpm=50."


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "nobody", "--rpm", "1"], "no user named 'nobody'"),
        (["--token", "nope", "--rpm", "1"], "no key with prefix or name 'nope'"),
        (["--user", "alice", "--rpm", "0"], "limits must be at least 1 .got 0.; use --clear NAME to remove a limit"),
        (["--user", "alice", "--tpm", "-5"], "limits must be at least 1"),
        (["--user", "alice", "--rpm", "ten"], "'ten' is not a whole number"),
        (["--user", "alice", "--budget-usd", "0"], "--budget-usd must be a positive amount"),
        (["--user", "alice", "--budget-usd", "1.23456"], "at most 4 decimals"),
        (["--user", "alice", "--budget-usd", "lots"], "'lots' is not an amount in USD"),
        (["--user", "alice", "--rpm", "5", "--clear", "rpm"], "cannot both set and clear rpm"),
        (["--user", "alice", "--rpm", "5", "--clear"], "--clear without limit names removes every limit"),
        (["--user", "alice", "--clear", "speed"], "invalid choice: 'speed'"),
        (["--user", "alice", "--default", "--rpm", "5"], "not allowed with argument"),
        (["--rpm", "5"], "one of the arguments --user --token --default is required"),
    ],
)
def test_mistakes_are_command_errors(user, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert not Limits.objects.exists()


def test_ambiguous_key_name(user, django_user_model):
    bob = django_user_model.objects.create_user(username="bob")
    issue_key(user, name="ci")
    issue_key(bob, name="ci")
    with pytest.raises(CommandError, match="several keys are named 'ci'; give the key's prefix instead"):
        run("--token", "ci", "--rpm", "1")


def test_the_database_keeps_one_owner_and_one_default(user, laptop):
    for owners in ({"user": user, "api_key": laptop}, {}, {"user": user, "is_default": True}):
        with pytest.raises(IntegrityError), transaction.atomic():
            Limits.objects.create(rpm=1, **owners)
    Limits.objects.create(is_default=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        Limits.objects.create(is_default=True)
