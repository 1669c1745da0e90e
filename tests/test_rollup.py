"""`rollup_usage`: complete past days into UsageDaily (idempotent, concurrent-safe), then prune
raw rows past the retention, with the history still in the dashboard's figures."""

from __future__ import annotations

import io
import json
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from proxy_app.ledger import reports as dashboard
from proxy_app.ledger import rollup
from proxy_app.models import UsageDaily, UsagePolicy, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

TODAY = datetime.now(UTC).date()


def at(days_ago: int, hour: int = 12) -> datetime:
    day = TODAY - timedelta(days=days_ago)
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def add(user, when: datetime, model: str = "gpt-4o", *, tokens: int = 10, status: int = 200, cost: str = "0.001"):
    return UsageRecord.objects.create(
        created_at=when,
        request_id="r",
        user=user,
        dialect="openai",
        endpoint="chat.completions",
        requested_model=model,
        prompt_tokens=tokens,
        completion_tokens=tokens * 2,
        total_tokens=tokens * 3,
        status=status,
        cost_usd=Decimal(cost),
    )


@pytest.fixture
def history(user, django_user_model):
    """Raw rows over the last 5 days and today, for two users and two models."""
    bob = django_user_model.objects.create_user("bob")
    for days_ago in range(0, 6):
        add(user, at(days_ago, 1), "gpt-4o", tokens=10)
        add(user, at(days_ago, 23), "gpt-4o", tokens=5, status=500)
        add(user, at(days_ago, 12), "gemini-2.5-flash", tokens=7)
        add(bob, at(days_ago, 12), "gpt-4o", tokens=100, cost="0.5")
    add(None, at(2), "gpt-4o", tokens=1, status=401)  # unauthenticated requests have no user
    return {"alice": user, "bob": bob}


def daily(day, user, model):
    return UsageDaily.objects.get(day=day, user=user, model=model)


def test_rolls_complete_days_only_with_exact_totals(history):
    result = rollup.run(retention=0)
    assert result.days == [TODAY - timedelta(days=n) for n in range(5, 0, -1)]
    assert not UsageDaily.objects.filter(day=TODAY).exists()  # today is not over
    row = daily(TODAY - timedelta(days=3), history["alice"], "gpt-4o")
    assert (row.requests, row.errors, row.prompt_tokens, row.completion_tokens, row.total_tokens) == (2, 1, 15, 30, 45)
    assert row.cost_usd == Decimal("0.002")
    assert daily(TODAY - timedelta(days=3), history["bob"], "gpt-4o").cost_usd == Decimal("0.5")
    assert UsageDaily.objects.get(day=TODAY - timedelta(days=2), user=None).errors == 1
    assert UsageDaily.objects.count() == 5 * 3 + 1
    assert UsageRecord.objects.count() == 6 * 4 + 1  # retention 0: nothing pruned


def test_running_twice_changes_nothing(history):
    rollup.run(retention=0)
    fields = ("day", "user_id", "model", "requests", "total_tokens", "cost_usd")
    first = list(UsageDaily.objects.order_by("day", "user_id", "model").values_list(*fields))
    result = rollup.run(retention=0)
    assert result.days == [TODAY - timedelta(days=1)]  # only the newest rolled day is re-rolled
    again = list(UsageDaily.objects.order_by("day", "user_id", "model").values_list(*fields))
    assert again == first


def test_a_late_row_is_picked_up_by_the_next_run(history):
    rollup.run(retention=0)
    add(history["alice"], at(1, 23), "gpt-4o", tokens=1)  # the usage writer lagged past midnight
    rollup.run(retention=0)
    assert daily(TODAY - timedelta(days=1), history["alice"], "gpt-4o").requests == 3


def test_prune_deletes_only_rolled_up_days_past_retention_and_history_stays(history):
    before = dashboard.total(dashboard.daily_totals(TODAY - timedelta(days=10), TODAY + timedelta(days=1)))
    result = rollup.run(retention=2)
    assert result.pruned_before == TODAY - timedelta(days=2)
    assert result.pruned_rows == 3 * 4  # days 5, 4 and 3 ago
    oldest = UsageRecord.objects.order_by("created_at").first().created_at
    assert oldest >= dashboard.day_start(TODAY - timedelta(days=2))
    after = dashboard.total(dashboard.daily_totals(TODAY - timedelta(days=10), TODAY + timedelta(days=1)))
    assert after == before  # the figures come from the roll-up where raw rows are gone
    assert before["requests"] == 25 and before["errors"] == 7


def test_newest_rolled_day_keeps_its_raw_rows_even_with_retention_one(history):
    rollup.run(retention=1)
    assert UsageRecord.objects.filter(created_at__gte=dashboard.day_start(TODAY - timedelta(days=1))).count() == 8
    rollup.run(retention=1)  # re-rolling the newest day must not lose anything
    assert daily(TODAY - timedelta(days=1), history["alice"], "gpt-4o").requests == 2


def test_a_day_never_rolled_up_is_not_pruned(user):
    add(user, at(40))
    add(user, at(3))
    rollup.run(retention=0, since=TODAY - timedelta(days=3))  # skips day 40 on purpose
    result = rollup.run(retention=10)
    assert UsageRecord.objects.filter(created_at__lt=dashboard.day_start(TODAY - timedelta(days=30))).count() == 1
    assert result.pruned_rows == 0


def test_retention_from_the_admin_wins_over_the_setting(history, settings):
    settings.USAGE_RETENTION_DAYS = 90
    assert rollup.retention_days() == 90
    UsagePolicy(retention_days=3).save()
    assert rollup.retention_days() == 3
    assert rollup.run().pruned_before == TODAY - timedelta(days=3)
    UsagePolicy(retention_days=None).save()
    assert rollup.retention_days() == 90


def test_command_output_and_mistakes(history, capsys):
    call_command("rollup_usage", "--retention-days", "4")
    out = capsys.readouterr().out
    assert "rolled up 5 day(s)" in out and "into 16 daily rows" in out
    assert f"pruned 4 raw usage rows of days before {TODAY - timedelta(days=4)} (retention 4 days)" in out
    with pytest.raises(CommandError, match="not a date"):
        call_command("rollup_usage", "--since", "yesterday")
    with pytest.raises(CommandError, match="must be 0"):
        call_command("rollup_usage", "--retention-days", "-1")
    call_command("rollup_usage", "--retention-days", "0")
    assert "kept forever" in capsys.readouterr().out


def test_empty_table(transactional_db, capsys):
    call_command("rollup_usage")
    out = capsys.readouterr().out
    assert "nothing to roll up" in out and "nothing pruned" in out


def test_two_concurrent_runs_write_each_row_once(history):
    errors = []

    def run():
        try:
            rollup.run(retention=2)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert UsageDaily.objects.count() == 16
    assert daily(TODAY - timedelta(days=5), history["bob"], "gpt-4o").requests == 1


def usage_report(*args: str) -> dict:
    out = io.StringIO()
    call_command("usage_report", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def test_usage_report_keeps_the_history_of_pruned_days(history):
    """usage_report reads the roll-up for rolled-up days: pruning raw rows changes none of its figures."""
    since = (TODAY - timedelta(days=4)).isoformat()
    before = [usage_report(), usage_report("--since", since), usage_report("--user", "bob")]
    result = rollup.run(retention=2)
    assert result.pruned_rows == 3 * 4  # days 5, 4 and 3 ago
    after = [usage_report(), usage_report("--since", since), usage_report("--user", "bob")]
    assert after == before
    assert before[0]["totals"] == {
        "requests": 25,
        "prompt_tokens": 733,
        "completion_tokens": 1466,
        "total_tokens": 2199,
        "cost_usd": pytest.approx(3.019),
    }
    assert before[1]["totals"]["requests"] == 5 * 4 + 1  # days 4 ago to today
    assert before[2]["rows"] == [
        {
            "user": "bob",
            "model": "gpt-4o",
            "requests": 6,
            "prompt_tokens": 600,
            "completion_tokens": 1200,
            "total_tokens": 1800,
            "cost_usd": 3.0,
        }
    ]
    assert [(r["user"], r["model"]) for r in before[0]["rows"]] == [
        ("(no user)", "gpt-4o"),
        ("alice", "gemini-2.5-flash"),
        ("alice", "gpt-4o"),
        ("bob", "gpt-4o"),
    ]
