"""Admin for upstreams (key write-only, never rendered), model mappings, prices, the usage ledger
(filters, totals, CSV export, no full-table counts), its daily roll-up and retention, and the
dashboard view (/admin/dashboard/, aggregations in proxy_app/ledger/reports.py)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from asgiref.sync import sync_to_async
from django import forms
from django.contrib import admin
from django.contrib.admin import ShowFacets
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import StreamingHttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from proxy_app.admin.filters import (
    CappedPaginator,
    DateRangeFilter,
    DialectFilter,
    KeyFilter,
    ModelFilter,
    ReadOnlyAdmin,
    StatusFilter,
    UserFilter,
)
from proxy_app.ledger import reports as dashboard
from proxy_app.models import (
    LogSettings,
    ModelMapping,
    ModelPrice,
    PoolMember,
    Upstream,
    UsageDaily,
    UsagePolicy,
    UsageRecord,
)

admin.site.site_header = "LLM gateway"
admin.site.site_title = "LLM gateway admin"
admin.site.index_title = "Control room"
admin.site.enable_nav_sidebar = False  # the top navigation (templates/admin/base_site.html) replaces it


class UpstreamForm(forms.ModelForm):
    api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted and never shown again. Leave empty to keep the current key.",
    )

    class Meta:
        model = Upstream
        fields = [
            "name",
            "kind",
            "base_url",
            "api_key",
            "api_key_env",
            "enabled",
            "detailed_logging",
            "max_concurrent",
            "rpm",
            "tpm",
        ]

    def save(self, commit=True):
        upstream = super().save(commit=False)
        if self.cleaned_data.get("api_key"):
            upstream.set_api_key(self.cleaned_data["api_key"])
        if commit:
            upstream.save()
        return upstream


@admin.register(Upstream)
class UpstreamAdmin(admin.ModelAdmin):
    form = UpstreamForm
    list_display = ["name", "kind", "base_url", "key_source", "enabled", "limits", "detailed_logging"]
    list_filter = ["kind", "enabled"]

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}), **self._health()})

    def _health(self) -> dict:
        """Per upstream (the default Gemini one too): last error, cool-down, calls and error rate
        over the last hour, from the health store every gateway process writes (proxy_app.call.health)."""
        from asgiref.sync import async_to_sync
        from django.conf import settings

        from proxy_app.call import health

        names = list(Upstream.objects.order_by("name").values_list("name", flat=True))
        if settings.GEMINI_API_KEY and "gemini" not in names:
            names.insert(0, "gemini")
        try:
            report = async_to_sync(health.report)(names)
        except Exception as exc:  # the page still lists the upstreams
            return {"upstream_health": [], "health_unavailable": f"{type(exc).__name__}: {exc}"}
        rows = []
        for h in report:
            rate = None if h.error_rate is None else round(100 * h.error_rate, 1)
            rows.append(
                {
                    **vars(h),
                    "error_rate": rate,
                    "cool_until": _utc(h.cool_until),
                    "last_error_at": _utc((h.last_error or {}).get("at")),
                }
            )
        return {"upstream_health": rows}

    @admin.display(description="API key")
    def key_source(self, obj: Upstream) -> str:
        if obj.api_key_env:
            return f"from ${obj.api_key_env}"
        return "stored (encrypted)" if obj.api_key_encrypted else "none"

    @admin.display(description="limits per key")
    def limits(self, obj: Upstream) -> str:
        found = [(obj.max_concurrent, "open"), (obj.rpm, "rpm"), (obj.tpm, "tpm")]
        return ", ".join(f"{value} {unit}" for value, unit in found if value is not None) or "–"


def _utc(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


class PoolMemberInline(admin.TabularInline):
    """The alias's pool: lower priority first, equal priorities share by weight (README: Upstream pools)."""

    model = PoolMember
    extra = 0
    min_num = 1
    fields = ["upstream", "upstream_model", "priority", "weight"]


@admin.register(ModelMapping)
class ModelMappingAdmin(admin.ModelAdmin):
    list_display = ["alias", "pool", "hidden"]
    list_filter = ["members__upstream", "hidden"]
    search_fields = ["alias", "members__upstream_model"]
    inlines = [PoolMemberInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("members__upstream")

    @admin.display(description="pool (priority: upstream model on upstream ×weight)")
    def pool(self, obj: ModelMapping) -> str:
        members = obj.members.all()
        return ", ".join(f"{m.priority}: {m.upstream_model} on {m.upstream or 'default'} ×{m.weight}" for m in members)


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    """Prices are edited right in the list; every gateway process picks them up within
    GATEWAY_PRICE_CACHE_SECONDS. Costs already recorded do not change."""

    list_display = ["model", "input_per_million", "output_per_million", "cached_input_per_million", "updated_at"]
    list_editable = ["input_per_million", "output_per_million", "cached_input_per_million"]
    search_fields = ["model"]


# --- the usage ledger ---------------------------------------------------------------------------

CSV_COLUMNS = [
    ("created_at", "created_at"),
    ("request_id", "request_id"),
    ("user", "user__username"),
    ("key_prefix", "key_prefix"),
    ("dialect", "dialect"),
    ("endpoint", "endpoint"),
    ("requested_model", "requested_model"),
    ("upstream", "upstream_name"),
    ("upstream_model", "upstream_model"),
    ("status", "status"),
    ("error_code", "error_code"),
    ("prompt_tokens", "prompt_tokens"),
    ("completion_tokens", "completion_tokens"),
    ("reasoning_tokens", "reasoning_tokens"),
    ("cached_tokens", "cached_tokens"),
    ("total_tokens", "total_tokens"),
    ("token_source", "token_source"),
    ("cost_usd", "cost_usd"),
    ("streamed", "streamed"),
    ("client_disconnected", "client_disconnected"),
    ("latency_ms", "latency_ms"),
    ("ttft_ms", "ttft_ms"),
    ("attempts", "attempts"),
]
CSV_BATCH = 2000
TOTALS_MAX_DAYS = timedelta(days=31)  # totals of a larger selection than CAP rows: at most this range


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    # The rest (endpoint, upstream model, token source, disconnects, TTFT...) is on each row's page.
    list_display = [
        "created_at",
        "user",
        "key_prefix",
        "dialect",
        "requested_model",
        "status",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cost_usd",
        "latency_ms",
    ]
    list_filter = [
        DateRangeFilter,
        UserFilter,
        KeyFilter,
        ModelFilter,
        StatusFilter,
        DialectFilter,
        "streamed",
        "token_source",
    ]
    search_fields = ["=request_id", "=key_prefix", "=user__username"]
    search_help_text = "Exact request id, key prefix or username."
    list_select_related = ["user"]
    sortable_by = ["created_at"]  # sorting on other columns would sort the whole table
    show_full_result_count = False  # no COUNT(*) over the whole table on every page
    show_facets = ShowFacets.NEVER  # facet counts are COUNT queries per filter choice
    paginator = CappedPaginator
    change_list_template = "admin/proxy_app/usagerecord/change_list.html"
    readonly_fields = ["detail_log"]

    @admin.display(description="detail log")
    def detail_log(self, obj: UsageRecord) -> str:
        if not getattr(obj, "detailed", False):
            return "—"
        return format_html('<a href="{}">open</a>', reverse("detail_log_file", args=[obj.request_id]))

    def get_urls(self):
        export = path("export.csv", self.admin_site.admin_view(self.export_csv), name="proxy_app_usagerecord_export")
        return [export, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            response.context_data.update(self._totals(request, changelist))
            params = request.GET.copy()
            for name in ("p", "all", "e"):
                params.pop(name, None)
            response.context_data["export_url"] = (
                f"{reverse('admin:proxy_app_usagerecord_export')}?{params.urlencode()}"
            )
        return response

    def _totals(self, request, changelist) -> dict:
        """Totals of the filtered set when that is bounded: at most CAP rows (summed over a LIMITed
        subquery), or a date range of at most TOTALS_MAX_DAYS days (an index range). Otherwise the
        totals of today's part of it, said so on the page: never a sum over the whole table."""
        queryset = changelist.queryset.order_by()
        if not changelist.paginator.capped:
            bounded = UsageRecord.objects.filter(pk__in=queryset.values("pk")[: CappedPaginator.CAP + 1])
            return {"usage_totals": dashboard.raw_totals(bounded), "totals_scope": ""}
        dates = next((f for f in changelist.filter_specs if isinstance(f, DateRangeFilter)), None)
        if dates and dates.start and (dates.end or dashboard.utc_today()) - dates.start < TOTALS_MAX_DAYS:
            return {"usage_totals": dashboard.raw_totals(queryset), "totals_scope": ""}
        today = dashboard.utc_today()
        queryset = queryset.filter(created_at__gte=dashboard.day_start(today))
        return {"usage_totals": dashboard.raw_totals(queryset), "totals_scope": f"today ({today}, UTC)"}

    def export_csv(self, request):
        """Stream the current filtered selection as CSV (newest first), in keyset-paged batches."""
        if not self.has_view_permission(request):
            return redirect("admin:index")
        try:
            queryset = self.get_changelist_instance(request).get_queryset(request).order_by()
        except IncorrectLookupParameters:
            return redirect(reverse("admin:proxy_app_usagerecord_changelist") + "?e=1")
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        response = StreamingHttpResponse(_csv_stream(queryset), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="usage-{stamp}.csv"'
        return response


async def _csv_stream(queryset):
    """CSV lines of `queryset`, newest first. Each batch is its own short query (keyset on
    (created_at, id)), fetched in a worker thread: no cursor stays open between batches, and
    Django's ASGI handler streams an async iterator without buffering it (a sync one it would
    read whole into memory first)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([name for name, _ in CSV_COLUMNS])
    after = None
    while True:
        rows = await sync_to_async(_csv_batch)(queryset, after)
        for row in rows:
            writer.writerow(_csv_cell(v) for v in row[:-1])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < CSV_BATCH:
            return
        after = (rows[-1][0], rows[-1][-1])


def _csv_batch(queryset, after) -> list[tuple]:
    if after is not None:
        created, pk = after
        queryset = queryset.filter(Q(created_at__lt=created) | Q(created_at=created, pk__lt=pk))
    fields = [field for _, field in CSV_COLUMNS] + ["pk"]
    return list(queryset.order_by("-created_at", "-pk").values_list(*fields)[:CSV_BATCH].iterator())


def _csv_cell(value):
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return "" if value is None else value


# --- the daily roll-up and its retention ----------------------------------------------------------


class DayRangeFilter(DateRangeFilter):
    field = "day"
    is_date = True


class DailyModelFilter(ModelFilter):
    field = "model"
    recent_order = "-day"


@admin.register(UsageDaily)
class UsageDailyAdmin(ReadOnlyAdmin):
    """Read-only: written by `manage.py rollup_usage`."""

    list_display = [
        "day",
        "user",
        "model",
        "requests",
        "errors",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cost_usd",
        "rolled_at",
    ]
    list_filter = [DayRangeFilter, UserFilter, DailyModelFilter]
    list_select_related = ["user"]
    sortable_by = ["day"]
    show_full_result_count = False
    show_facets = ShowFacets.NEVER
    paginator = CappedPaginator


@admin.register(UsagePolicy)
class UsagePolicyAdmin(admin.ModelAdmin):
    """One row: the list page goes straight to it."""

    fields = ["retention_days", "effective"]
    readonly_fields = ["effective"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        policy, _ = UsagePolicy.objects.get_or_create(pk=1)
        return redirect("admin:proxy_app_usagepolicy_change", policy.pk)

    @admin.display(description="in force")
    def effective(self, obj: UsagePolicy) -> str:
        from proxy_app.ledger.rollup import retention_days

        days = retention_days()
        kept = "forever" if not days else f"{days} days"
        return f"Raw usage rows are kept {kept}; daily totals are kept forever. Run `manage.py rollup_usage` daily."


# --- the dashboard ----------------------------------------------------------------------------------


def dashboard_view(request):
    """/admin/dashboard/ (wrapped by admin_site.admin_view in gateway_site/urls.py): staff who may
    view usage records."""
    if not request.user.has_perm("proxy_app.view_usagerecord"):
        raise PermissionDenied
    context = {
        **admin.site.each_context(request),
        "title": "Usage dashboard",
        "data": dashboard.dashboard(),
    }
    context["chart_data"] = context["data"]["chart"]
    return TemplateResponse(request, "admin/gateway/dashboard.html", context)


@admin.register(LogSettings)
class LogSettingsAdmin(admin.ModelAdmin):
    """One row: the global detailed-logging switch (per-upstream switches are on each upstream)."""

    list_display = ["__str__", "detailed_logging"]

    def has_add_permission(self, request):
        return not LogSettings.objects.exists()


from proxy_app.admin import sessions as sessions_admin  # noqa: F401,E402  (chat sessions, read-only)
