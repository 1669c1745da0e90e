"""Roll complete past days of raw usage rows into daily per user × model totals, then prune.

    result = rollup.run(retention_days=None)   # None: the admin's UsagePolicy, else the setting

Safe to run twice, or from two crons at once:
- a day is rolled up only once it is over (UTC), and rolling it replaces that day's UsageDaily
  rows (delete + insert in one transaction), so a second run writes the same rows again;
- each day's replacement holds a lock (PostgreSQL: an advisory transaction lock; SQLite: the
  write lock that its IMMEDIATE transactions take at BEGIN), so concurrent runs serialize per
  day; the unique constraint (day, user, model) backs this up;
- a day is only replaced while its raw rows exist, and raw rows are pruned a whole UTC day at a
  time and never for the newest rolled-up day (which every run re-rolls, to pick up rows written
  late by a lagging usage writer), so pruned history is never overwritten by an empty day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max

from proxy_app.ledger import reports as dashboard
from proxy_app.models import UsageDaily, UsagePolicy, UsageRecord

_LOCK_ID = 0x67775F726F6C6C  # "gw_roll": PostgreSQL advisory lock key


@dataclass
class Result:
    days: list[date] = field(default_factory=list)  # days rolled up
    daily_rows: int = 0
    retention_days: int = 0  # 0: keep raw rows forever
    pruned_before: date | None = None  # raw rows of days before this were deleted
    pruned_rows: int = 0


def retention_days() -> int:
    """The admin's value (Usage retention) when set, else GATEWAY_USAGE_RETENTION_DAYS."""
    admin_value = UsagePolicy.objects.filter(pk=1).values_list("retention_days", flat=True).first()
    return admin_value if admin_value is not None else settings.USAGE_RETENTION_DAYS


def run(*, retention: int | None = None, since: date | None = None, today: date | None = None) -> Result:
    today = today or dashboard.utc_today()
    result = Result(retention_days=retention_days() if retention is None else retention)
    for day in days_to_roll(today, since):
        written = roll_day(day)
        if written is not None:
            result.days.append(day)
            result.daily_rows += written
    if result.retention_days:
        result.pruned_before, result.pruned_rows = prune(today - timedelta(days=result.retention_days))
    return result


def days_to_roll(today: date, since: date | None = None) -> list[date]:
    """From `since`, else the newest rolled-up day (re-rolled), else the oldest raw row's day, to yesterday."""
    if since is None:
        since = UsageDaily.objects.aggregate(newest=Max("day"))["newest"]
    if since is None:
        oldest = UsageRecord.objects.order_by("created_at").values_list("created_at", flat=True).first()
        since = dashboard.utc_today(oldest) if oldest else today
    return [since + timedelta(days=n) for n in range((today - since).days)]


def roll_day(day: date) -> int | None:
    """Replace `day`'s daily rows by the totals of its raw rows; None when it has no raw rows."""
    with transaction.atomic():
        _lock()
        raw = dashboard.raw_between(day, day + timedelta(days=1))
        groups = raw.order_by().values("user_id", "requested_model").annotate(**dashboard.raw_sums("s_"))
        rows = [_daily(day, group) for group in groups]
        if not rows:
            return None
        UsageDaily.objects.filter(day=day).delete()
        UsageDaily.objects.bulk_create(rows)
    return len(rows)


def _daily(day: date, group: dict) -> UsageDaily:
    sums = {name: group[f"s_{name}"] or 0 for name in dashboard.SUMS}
    return UsageDaily(day=day, user_id=group["user_id"], model=group["requested_model"], **sums)


def prune(cutoff: date) -> tuple[date | None, int]:
    """Delete raw rows of the days before `cutoff` that are rolled up, one day per statement
    (a day with raw rows but no daily rows was never rolled up: it is kept)."""
    newest = UsageDaily.objects.aggregate(newest=Max("day"))["newest"]
    if newest is None:
        return None, 0
    cutoff = min(cutoff, newest)  # the newest rolled day keeps its raw rows (it is re-rolled)
    oldest = UsageRecord.objects.order_by("created_at").values_list("created_at", flat=True).first()
    if oldest is None or dashboard.utc_today(oldest) >= cutoff:
        return cutoff, 0
    deleted = 0
    day = dashboard.utc_today(oldest)
    while day < cutoff:
        with transaction.atomic():
            _lock()
            if UsageDaily.objects.filter(day=day).exists():
                deleted += dashboard.raw_between(day, day + timedelta(days=1)).delete()[0]
        day += timedelta(days=1)
    return cutoff, deleted


def _lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_ID])
