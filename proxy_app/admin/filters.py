"""List filters and a paginator for the usage tables that never scan the whole table, and the
read-only base of the ledger admins.

Django's defaults would: `AllValuesFieldListFilter` (any plain field in list_filter) runs
SELECT DISTINCT over every row, and the changelist paginator runs COUNT(*) over the filtered set.
Here every filter's choices come from small tables or a bounded slice of the newest rows, and
the paginator counts at most CAP + 1 rows.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.db.models import Q
from django.utils.functional import cached_property

from proxy_app.ledger.reports import day_start, utc_today

RECENT_ROWS = 2000  # filter choices also look at the values used by this many newest rows
MAX_CHOICES = 200


class CappedPaginator(Paginator):
    """Counts at most CAP + 1 rows (SELECT COUNT(*) FROM (... LIMIT CAP + 1)), never the table.

    Past CAP rows the changelist says "more than CAP" and pages through the first CAP; filter by
    date to reach older rows.
    """

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.CAP + 1].count()

    @property
    def capped(self) -> bool:
        return self.count > self.CAP


class DateRangeFilter(admin.ListFilter):
    """From/to dates (UTC, both inclusive) on `field`, plus quick ranges: ?{field}_from=&{field}_to=."""

    title = "date range (UTC)"
    template = "admin/gateway/date_range_filter.html"
    field = "created_at"
    is_date = False  # True when `field` is a DateField (the daily roll-up) rather than a DateTimeField

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        self.start_name, self.end_name = f"{self.field}_from", f"{self.field}_to"
        self.raw = {}
        for name in (self.start_name, self.end_name):
            if name in params:
                value = params.pop(name)
                self.raw[name] = (value[-1] if isinstance(value, list) else value).strip()
        self.start, self.end = self._parse(self.start_name), self._parse(self.end_name)
        if self.start or self.end:
            self.used_parameters = dict(self.raw)
        keep = {self.start_name, self.end_name, "p"}
        self.hidden = [(k, v) for k, values in request.GET.lists() if k not in keep for v in values]

    def _parse(self, name: str) -> date | None:
        raw = self.raw.get(name)
        if not raw:
            return None
        try:
            return datetime.strptime(raw, "%Y-%m-%d").date()
        except ValueError:
            raise IncorrectLookupParameters(f"{name}={raw!r} is not a date like 2026-01-31") from None

    def has_output(self) -> bool:
        return True

    def expected_parameters(self) -> list[str]:
        return [self.start_name, self.end_name]

    def queryset(self, request, queryset):
        if self.start:
            queryset = queryset.filter(**{f"{self.field}__gte": self._bound(self.start)})
        if self.end:
            queryset = queryset.filter(**{f"{self.field}__lt": self._bound(self.end + timedelta(days=1))})
        return queryset

    def _bound(self, day: date):
        return day if self.is_date else day_start(day)

    def choices(self, changelist):
        today = utc_today()
        quick = [
            ("Any date", None, None),
            ("Today", today, today),
            ("Last 7 days", today - timedelta(days=6), today),
            ("Last 30 days", today - timedelta(days=29), today),
            ("This month", today.replace(day=1), today),
        ]
        for label, start, end in quick:
            params = {self.start_name: start.isoformat(), self.end_name: end.isoformat()} if start else {}
            yield {
                "selected": (self.start, self.end) == (start, end),
                "query_string": changelist.get_query_string(params, [self.start_name, self.end_name]),
                "display": label,
            }


class ChoicesFilter(admin.SimpleListFilter):
    """A SimpleListFilter whose lookups are bounded; subclasses give `options()` and `condition()`."""

    def lookups(self, request, model_admin):
        return self.options()[:MAX_CHOICES]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(self.condition(value)) if value not in (None, "") else queryset

    def options(self) -> list[tuple[str, str]]:
        raise NotImplementedError

    def condition(self, value: str) -> Q:
        raise NotImplementedError


class UserFilter(ChoicesFilter):
    title = "user"
    parameter_name = "user"

    def options(self):
        users = get_user_model().objects.order_by("username").values_list("pk", "username")[:MAX_CHOICES]
        return [(str(pk), name) for pk, name in users]

    def condition(self, value):
        return Q(user_id=_int(value))


class KeyFilter(ChoicesFilter):
    title = "API key"
    parameter_name = "key"

    def options(self):
        from accounts.models import ApiKey

        keys = ApiKey.objects.order_by("-created_at").values_list("pk", "name", "prefix", "user__username")
        return [(str(pk), f"{name} ({prefix}…, {user})") for pk, name, prefix, user in keys[:MAX_CHOICES]]

    def condition(self, value):
        return Q(api_key_id=_int(value))


def recent_values(model, field: str, *, order: str) -> set[str]:
    """Distinct values of `field` among the newest RECENT_ROWS rows (a bounded subquery)."""
    newest = model.objects.order_by(order).values("pk")[:RECENT_ROWS]
    return set(model.objects.filter(pk__in=newest).values_list(field, flat=True).distinct())


class ModelFilter(ChoicesFilter):
    """Choices: every mapped alias and priced model, plus models seen in the newest rows."""

    title = "model"
    parameter_name = "model"
    field = "requested_model"
    recent_order = "-created_at"

    def options(self):
        from proxy_app.models import ModelMapping, UsageDaily

        names = set(ModelMapping.objects.values_list("alias", flat=True)[:MAX_CHOICES])
        names |= recent_values(self.model, self.field, order=self.recent_order)
        names |= recent_values(UsageDaily, "model", order="-day")
        return [(name, name) for name in sorted(n for n in names if n)]

    def __init__(self, request, params, model, model_admin):
        self.model = model
        super().__init__(request, params, model, model_admin)

    def condition(self, value):
        return Q(**{self.field: value})


class StatusFilter(ChoicesFilter):
    title = "status"
    parameter_name = "status"
    CLASSES = {
        "ok": ("Success (< 400)", Q(status__lt=400)),
        "errors": ("Any failure (≥ 400)", Q(status__gte=400)),
        "4xx": ("Client errors (4xx, not 429)", Q(status__gte=400, status__lt=500) & ~Q(status=429)),
        "429": ("Refused by a limit (429)", Q(status=429)),
        "5xx": ("Upstream/server errors (5xx)", Q(status__gte=500)),
    }

    def options(self):
        return [(value, label) for value, (label, _) in self.CLASSES.items()]

    def condition(self, value):
        if value in self.CLASSES:
            return self.CLASSES[value][1]
        return Q(status=_int(value))  # ?status=503 also works


class DialectFilter(ChoicesFilter):
    title = "dialect"
    parameter_name = "dialect"
    KNOWN = ("openai", "ollama", "gemini")

    def __init__(self, request, params, model, model_admin):
        self.model = model
        super().__init__(request, params, model, model_admin)

    def options(self):
        names = set(self.KNOWN) | recent_values(self.model, "dialect", order="-created_at")
        return [(name, name) for name in sorted(n for n in names if n)]

    def condition(self, value):
        return Q(dialect=value)


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise IncorrectLookupParameters(f"{value!r} is not a number") from None


class ReadOnlyAdmin(admin.ModelAdmin):
    """Ledgers and logs: viewable, never added, edited or deleted from the admin."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
