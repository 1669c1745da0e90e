"""Usage totals: the one module that sums usage rows, for the admin dashboard and changelist, the
key admin, the member page, `manage.py usage_report` and the quota counters' seeds.

Everything is summed in SQL (TruncDate + Sum/Count, GROUP BY) over a bounded date range, never over
the whole table, and works the same on SQLite and PostgreSQL.

Two sources, one answer: days before `rolled_until()` (the day after the newest UsageDaily row)
come from the daily roll-up (`manage.py rollup_usage`), later days from the raw UsageRecord rows.
So the history stays complete after old raw rows are pruned, and long ranges read the small
table. Each day comes from exactly one source: no double counting. Only raw rows know the key, so
per-key figures (and the seeds of key-scope quota counters) cover the raw retention period only.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db.models import Count, F, Max, Min, Q, Sum
from django.db.models.functions import TruncDate

from accounts.limits import LimitSet, resolve
from accounts.models import Limits
from proxy_app.models import UsageDaily, UsageRecord

ERROR_STATUS = 400  # a request answered with this status or above counts as failed
CHART_MODELS = 8  # the chart shows this many models by name; the rest are summed as "other"
SUMS = ("requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd")


def utc_today(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(UTC).date()


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def month_start(day: date) -> date:
    return day.replace(day=1)


def rolled_until() -> date | None:
    """The first day not (fully) in the daily roll-up: raw rows are the source from there on."""
    newest = UsageDaily.objects.aggregate(newest=Max("day"))["newest"]
    return newest + timedelta(days=1) if newest else None


# --- the combined daily source ------------------------------------------------------------------


def daily_totals(start: date, end: date, *, by: tuple[str, ...] = (), user_id: int | None = None) -> list[dict]:
    """Totals per day (start <= day < end), grouped further by `by` (a subset of "user", "model").

    Each dict has "day", the `by` names ("user" is a user id or None) and SUMS.
    """
    boundary = rolled_until()
    rows: list[dict] = []
    if boundary and start < boundary:
        rows += _rolled(start, min(end, boundary), by, user_id)
    raw_start = max(start, boundary) if boundary else start
    if raw_start < end:
        rows += _raw(raw_start, end, by, user_id)
    return rows


def _rolled(start: date, end: date, by: tuple[str, ...], user_id: int | None) -> list[dict]:
    rows = UsageDaily.objects.filter(day__gte=start, day__lt=end)
    if user_id is not None:
        rows = rows.filter(user_id=user_id)
    names = {"user": F("user_id"), "model": F("model")}
    grouped = rows.order_by().values("day", **{f"g_{name}": names[name] for name in by})
    return _clean(grouped.annotate(**{f"s_{name}": Sum(name) for name in SUMS}), by)


def _raw(start: date, end: date, by: tuple[str, ...], user_id: int | None) -> list[dict]:
    rows = raw_between(start, end)
    if user_id is not None:
        rows = rows.filter(user_id=user_id)
    names = {"user": F("user_id"), "model": F("requested_model")}
    grouped = (
        rows.annotate(day=TruncDate("created_at", tzinfo=UTC))
        .order_by()
        .values("day", **{f"g_{name}": names[name] for name in by})
    )
    return _clean(grouped.annotate(**raw_sums("s_")), by)


def raw_between(start: date, end: date):
    """Raw rows of the UTC days start <= day < end (an index range on created_at)."""
    return UsageRecord.objects.filter(created_at__gte=day_start(start), created_at__lt=day_start(end))


def raw_sums(prefix: str = "") -> dict:
    """SUMS over raw rows, as annotations named prefix + name (a prefix avoids field-name clashes)."""
    sums = {
        "requests": Count("id"),
        "errors": Count("id", filter=Q(status__gte=ERROR_STATUS)),
        "prompt_tokens": Sum("prompt_tokens"),
        "completion_tokens": Sum("completion_tokens"),
        "total_tokens": Sum("total_tokens"),
        "cost_usd": Sum("cost_usd"),
    }
    return {prefix + name: value for name, value in sums.items()}


def _clean(rows, by: tuple[str, ...]) -> list[dict]:
    out = []
    for row in rows:
        clean = {"day": row["day"], **{name: row[f"g_{name}"] for name in by}}
        clean.update({name: row[f"s_{name}"] or 0 for name in SUMS})
        clean["cost_usd"] = Decimal(clean["cost_usd"])
        out.append(clean)
    return out


def fold(rows: list[dict], key) -> dict:
    """Sum SUMS of `rows` per key(row)."""
    out: dict = {}
    for row in rows:
        acc = out.setdefault(key(row), dict.fromkeys(SUMS, 0) | {"cost_usd": Decimal(0)})
        for name in SUMS:
            acc[name] += row[name]
    return out


def total(rows: list[dict]) -> dict:
    return fold(rows, lambda r: None).get(None, dict.fromkeys(SUMS, 0) | {"cost_usd": Decimal(0)})


def error_rate(totals: dict) -> float | None:
    return totals["errors"] / totals["requests"] if totals["requests"] else None


# --- quotas against usage ------------------------------------------------------------------------


@dataclass(frozen=True)
class QuotaLine:
    kind: str  # daily_tokens, monthly_tokens or budget_usd
    label: str
    limit: int | Decimal
    used: int | Decimal
    unit: str  # "tokens" or "USD"

    @property
    def remaining(self):
        return max(self.limit - self.used, 0)

    @property
    def percent(self) -> int:
        return min(int(self.used * 100 / self.limit), 100) if self.limit else 100


def quota_lines(limits: LimitSet | None, today: dict, month: dict) -> list[QuotaLine]:
    """Day/month token quotas and the monthly budget of one scope, against the usage so far."""
    if limits is None:
        return []
    wanted = [
        ("daily_tokens", "tokens today", limits.daily_tokens, today["total_tokens"], "tokens"),
        ("monthly_tokens", "tokens this month", limits.monthly_tokens, month["total_tokens"], "tokens"),
        ("budget_usd", "budget this month", limits.budget_usd, month["cost_usd"], "USD"),
    ]
    return [QuotaLine(*line) for line in wanted if line[2] is not None]


def user_limit_sets(user_ids) -> dict[int, LimitSet | None]:
    """Each user's effective user-scope limits (own row, else the default row), in one query."""
    rows = list(
        Limits.objects.filter(Q(user_id__in=list(user_ids)) | Q(is_default=True)).values(
            "user_id", "api_key_id", "is_default", *Limits.LIMIT_FIELDS
        )
    )
    out = {}
    for user_id in user_ids:
        scopes = resolve(rows, user_id=user_id, key_id=-1, username="", prefix="").scopes
        out[user_id] = scopes[0].limits if scopes else None
    return out


# --- the admin dashboard ------------------------------------------------------------------------


def dashboard(now: datetime | None = None, *, days: int = 30, users: int = 50) -> dict:
    """Everything the admin dashboard shows, in a handful of bounded queries."""
    today = utc_today(now)
    tomorrow = today + timedelta(days=1)
    first = min(today - timedelta(days=days - 1), month_start(today))
    rows = daily_totals(first, tomorrow, by=("user", "model"))
    window = [r for r in rows if r["day"] > today - timedelta(days=days)]
    month = [r for r in rows if r["day"] >= month_start(today)]
    today_rows = [r for r in rows if r["day"] == today]
    return {
        "today": today,
        "days": days,
        "totals": {"today": total(today_rows), "month": total(month), "window": total(window)},
        "error_rate": {"today": error_rate(total(today_rows)), "window": error_rate(total(window))},
        "quota_users": quota_table(today_rows, month, limit=users),
        "top_users": top_users(window),
        "chart": chart(window, today, days),
        "failures": recent_failures(now),
    }


def _usernames(user_ids) -> dict[int, str]:
    ids = [u for u in user_ids if u is not None]
    return dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))


def quota_table(today_rows: list[dict], month_rows: list[dict], *, limit: int) -> list[dict]:
    """Per user (most tokens this month first, plus users with limits of their own): tokens and
    cost today and this month against their daily/monthly/budget quotas."""
    by_today = fold(today_rows, lambda r: r["user"])
    by_month = fold(month_rows, lambda r: r["user"])
    ranked = sorted((u for u in by_month if u is not None), key=lambda u: -by_month[u]["total_tokens"])[:limit]
    with_limits = Limits.objects.filter(user__isnull=False).values_list("user_id", flat=True)[:limit]
    user_ids = list(dict.fromkeys([*ranked, *with_limits]))
    names, limits = _usernames(user_ids), user_limit_sets(user_ids)
    empty = dict.fromkeys(SUMS, 0) | {"cost_usd": Decimal(0)}
    table = []
    for user_id in user_ids:
        today, month = by_today.get(user_id, empty), by_month.get(user_id, empty)
        quotas = quota_lines(limits[user_id], today, month)
        table.append(
            {
                "user_id": user_id,
                "username": names.get(user_id, f"#{user_id}"),
                "today": today,
                "month": month,
                "limits": limits[user_id],
                "quotas": {q.kind: q for q in quotas},
            }
        )
    return table


def top_users(rows: list[dict], limit: int = 10) -> list[dict]:
    per_user = fold(rows, lambda r: r["user"])
    ranked = sorted(per_user.items(), key=lambda item: (-item[1]["cost_usd"], -item[1]["total_tokens"]))[:limit]
    names = _usernames(u for u, _ in ranked)
    return [{"username": names.get(u, "(no user)" if u is None else f"#{u}"), **sums} for u, sums in ranked]


def chart(rows: list[dict], today: date, days: int) -> dict:
    """Chart.js data: requests and tokens per day per model (top CHART_MODELS, the rest "other")."""
    labels = [today - timedelta(days=n) for n in range(days - 1, -1, -1)]
    per_model = fold(rows, lambda r: r["model"] or "(none)")
    named = sorted(per_model, key=lambda m: -per_model[m]["requests"])[:CHART_MODELS]
    cells = fold(rows, lambda r: (r["day"], (r["model"] or "(none)") if (r["model"] or "(none)") in named else "other"))
    models = [*named, *(["other"] if len(per_model) > len(named) else [])]

    def series(metric: str) -> list[dict]:
        return [{"label": m, "data": [_number(cells.get((d, m), {}).get(metric, 0)) for d in labels]} for m in models]

    errors = fold(rows, lambda r: r["day"])
    return {
        "labels": [d.isoformat() for d in labels],
        "requests": series("requests"),
        "tokens": series("total_tokens"),
        "errors": [errors.get(d, {}).get("errors", 0) for d in labels],
    }


def _number(value) -> int | float:
    return float(value) if isinstance(value, Decimal) else value


def recent_failures(now: datetime | None = None, *, days: int = 7, limit: int = 20):
    since = (now or datetime.now(UTC)) - timedelta(days=days)
    rows = UsageRecord.objects.filter(created_at__gte=since, status__gte=ERROR_STATUS).select_related("user")
    return list(rows.order_by("-created_at")[:limit])


# --- per key (admin) and per member ---------------------------------------------------------------


def key_usage(key_ids, *, days: int = 30, now: datetime | None = None) -> dict[int, dict]:
    """Requests, tokens and cost per key over the last `days` days (raw rows), one query."""
    today = utc_today(now)
    rows = _by_key(raw_between(today - timedelta(days=days - 1), today + timedelta(days=1)), list(key_ids))
    found = rows.order_by().values("api_key_id").annotate(**raw_sums("s_"))
    return {row["api_key_id"]: {name: row[f"s_{name}"] or 0 for name in SUMS} for row in found}


def _by_key(rows, key_ids: list[int]):
    """Filter on (api_key_id + 0): an expression, so the planner stays on the created_at range
    index; SQLite would otherwise pick the api_key_id index and read every row the keys ever made."""
    return rows.alias(key_id_expr=F("api_key_id") + 0).filter(key_id_expr__in=key_ids)


def key_detail(key_id: int, *, now: datetime | None = None) -> dict:
    """One key: today, this month and the last 30 days, and per model over 30 days (raw rows)."""
    today = utc_today(now)
    first = min(today - timedelta(days=29), month_start(today))
    rows = _by_key(raw_between(first, today + timedelta(days=1)), [key_id])
    grouped = rows.annotate(day=TruncDate("created_at", tzinfo=UTC)).order_by()
    daily = _clean(grouped.values("day", g_model=F("requested_model")).annotate(**raw_sums("s_")), ("model",))
    window = [r for r in daily if r["day"] > today - timedelta(days=30)]
    per_model = fold(window, lambda r: r["model"])
    return {
        "today": total([r for r in daily if r["day"] == today]),
        "month": total([r for r in daily if r["day"] >= month_start(today)]),
        "window": total(window),
        "models": sorted(per_model.items(), key=lambda item: -item[1]["requests"]),
    }


def member_usage(user_id: int, *, now: datetime | None = None) -> dict:
    """A member's usage: today, this month and per model this month (roll-up + raw rows)."""
    today = utc_today(now)
    rows = daily_totals(month_start(today), today + timedelta(days=1), by=("model",), user_id=user_id)
    per_model = fold(rows, lambda r: r["model"])
    today_totals, month_totals = total([r for r in rows if r["day"] == today]), total(rows)
    limits = user_limit_sets([user_id])[user_id]
    return {
        "today": today_totals,
        "month": month_totals,
        "models": sorted(per_model.items(), key=lambda item: -item[1]["total_tokens"]),
        "limits": limits,
        "quotas": quota_lines(limits, today_totals, month_totals),
    }


# --- usage_report, the usage changelist's totals, quota seeds -------------------------------------

REPORT_SUMS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd")


def report(*, username: str | None = None, since: date | None = None) -> list[dict]:
    """Totals per user and model from the UTC day `since` (None: all history) on: requests, prompt,
    completion and total tokens, cost (`usage_report`). From the combined source (daily_totals), so
    days whose raw rows were pruned count with their roll-up."""
    user_id = None
    if username:
        user_id = get_user_model().objects.filter(username=username).values_list("pk", flat=True).first()
        if user_id is None:
            return []
    span = history_span()
    if span is None:
        return []
    start = max(since, span[0]) if since else span[0]
    rows = daily_totals(start, span[1] + timedelta(days=1), by=("user", "model"), user_id=user_id)
    per_pair = fold(rows, lambda r: (r["user"], r["model"]))
    names = _usernames(user for user, _ in per_pair)
    ordered = sorted(per_pair, key=lambda pair: (pair[0] is not None, names.get(pair[0], ""), pair[1]))
    return [_report_row(user, names, model, per_pair[(user, model)]) for user, model in ordered]


def history_span() -> tuple[date, date] | None:
    """The first and last UTC day with usage, in the roll-up or the raw rows (None: no usage)."""
    days = UsageDaily.objects.aggregate(first=Min("day"), last=Max("day"))
    raw = UsageRecord.objects.order_by("created_at").values_list("created_at", flat=True)
    oldest, newest = raw.first(), raw.last()
    found = [d for d in (days["first"], days["last"]) if d] + [utc_today(t) for t in (oldest, newest) if t]
    return (min(found), max(found)) if found else None


def _report_row(user_id: int | None, names: dict[int, str], model: str, sums: dict) -> dict:
    return {
        "user": "(no user)" if user_id is None else names.get(user_id, f"#{user_id}"),
        "model": model,
        "requests": sums["requests"],
        "prompt_tokens": sums["prompt_tokens"],
        "completion_tokens": sums["completion_tokens"],
        "total_tokens": sums["total_tokens"],
        "cost_usd": float(sums["cost_usd"]),
    }


def totals(rows: Iterable[dict]) -> dict:
    """The TOTAL line of report() rows."""
    return {k: sum(r[k] for r in rows) for k in REPORT_SUMS}


def raw_totals(queryset) -> dict:
    """SUMS over a queryset of raw rows (the usage changelist's filtered selection)."""
    sums = queryset.aggregate(**raw_sums("s_"))
    return {name: sums[f"s_{name}"] or 0 for name in SUMS}


def quota_usage(kind: str, scope_id: int, day: datetime) -> dict:
    """Tokens of the UTC `day` (midnight) and tokens and cost of its month, for one quota scope
    (kind "user" or "key"): what quota seeds a cold day/month/budget counter with.

    A user's figures come from daily_totals, so days whose raw rows were pruned count with their
    roll-up. The roll-up has no key: a key's figures are its raw rows, so with a raw retention
    shorter than a month a key's monthly figures cover only the retained days."""
    if kind == "user":
        today, month = day.date(), month_start(day.date())
        rows = daily_totals(month, _next_month(month), user_id=scope_id)
        sums = total(rows)
        today_tokens = sum(r["total_tokens"] for r in rows if r["day"] == today)
        return {"daily_tokens": today_tokens, "monthly_tokens": sums["total_tokens"], "budget_usd": sums["cost_usd"]}
    month = day.replace(day=1)
    month_end = day_start(_next_month(month.date()))
    return UsageRecord.objects.filter(api_key_id=scope_id, created_at__gte=month, created_at__lt=month_end).aggregate(
        daily_tokens=Sum("total_tokens", filter=Q(created_at__gte=day, created_at__lt=day + timedelta(days=1))),
        monthly_tokens=Sum("total_tokens"),
        budget_usd=Sum("cost_usd"),
    )


def _next_month(first: date) -> date:
    return first + timedelta(days=calendar.monthrange(first.year, first.month)[1])
