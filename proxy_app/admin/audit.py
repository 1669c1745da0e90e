"""The audit log in the admin (django-auditlog's LogEntry): who changed which key, limit, upstream,
mapping, price or log setting, when, and each field's before → after; filters by what, action, who
(a user, the admin, the member page or a command) and date; *Export CSV* of the filtered selection.

Read-only, as django-auditlog's own admin (which this one replaces) is. Secrets never got here:
settings.AUDITLOG_INCLUDE_TRACKING_MODELS records secret-bearing fields only as "(set)" / "(none)".
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

from auditlog.admin import LogEntryAdmin as AuditlogEntryAdmin
from auditlog.filters import CIDFilter, ResourceTypeFilter
from auditlog.models import LogEntry
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import path, reverse

CSV_COLUMNS = ["timestamp", "action", "resource", "object", "object_id", "who", "remote_addr", "changes", "cid"]
SUMMARY_MAX = 300


def who(entry: LogEntry) -> str:
    """The actor's username, else where the change came from ("command:set_limits"), else "system"."""
    if entry.actor_id:
        return str(entry.actor)
    return (entry.additional_data or {}).get("source") or "system"


def changes_text(entry: LogEntry) -> str:
    """'rpm: None → 60; budget_usd: None → 25.0000' (a deletion: the fields it had)."""
    if entry.action == LogEntry.Action.DELETE:
        return "deleted"
    parts = []
    for field, (old, new) in (entry.changes_dict or {}).items():
        parts.append(f"{field}: {_value(old)} → {_value(new)}")
    return "; ".join(parts)


def _value(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class SourceFilter(admin.SimpleListFilter):
    title = "made through"
    parameter_name = "source"

    def lookups(self, request, model_admin):
        found = LogEntry.objects.values_list("additional_data__source", flat=True).distinct()
        return [(s, s) for s in sorted({s for s in found if isinstance(s, str)})]

    def queryset(self, request, queryset):
        return queryset.filter(additional_data__source=self.value()) if self.value() else queryset


class ActorFilter(admin.SimpleListFilter):
    title = "user"
    parameter_name = "actor"

    def lookups(self, request, model_admin):
        found = LogEntry.objects.filter(actor__isnull=False).values_list("actor_id", "actor__username").distinct()
        return sorted(((str(pk), name) for pk, name in found), key=lambda pair: pair[1])

    def queryset(self, request, queryset):
        return queryset.filter(actor_id=self.value()) if self.value() else queryset


admin.site.unregister(LogEntry)


@admin.register(LogEntry)
class AuditLogAdmin(AuditlogEntryAdmin):
    list_display = ["created", "resource_url", "action", "changes_summary", "made_by", "cid_url"]
    list_filter = ["action", ResourceTypeFilter, SourceFilter, ActorFilter, "timestamp", CIDFilter]
    search_fields = ["object_repr", "actor__username", "=cid"]
    search_help_text = "Object name, username, or an exact correlation id."
    readonly_fields = [*AuditlogEntryAdmin.readonly_fields, "made_by", "remote_addr"]
    fieldsets = [
        (None, {"fields": ["created", "made_by", "remote_addr", "resource_url", "cid"]}),
        ("Changes", {"fields": ["action", "msg"]}),
    ]
    change_list_template = "admin/auditlog/logentry/change_list.html"

    @admin.display(description="who")
    def made_by(self, obj: LogEntry) -> str:
        return who(obj)

    @admin.display(description="changes (before → after)")
    def changes_summary(self, obj: LogEntry) -> str:
        text = changes_text(obj)
        return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1] + "…"

    def get_urls(self):
        export = path("export.csv", self.admin_site.admin_view(self.export_csv), name="auditlog_logentry_export")
        return [export, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        params = request.GET.copy()
        for name in ("p", "all", "e"):
            params.pop(name, None)
        extra = {"export_url": f"{reverse('admin:auditlog_logentry_export')}?{params.urlencode()}"}
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    def export_csv(self, request):
        """The filtered selection as CSV, newest first (the audit log is small next to usage: one query)."""
        if not self.has_view_permission(request):
            return redirect("admin:index")
        try:
            queryset = self.get_changelist_instance(request).get_queryset(request)
        except IncorrectLookupParameters:
            return redirect(reverse("admin:auditlog_logentry_changelist") + "?e=1")
        rows = queryset.select_related("content_type", "actor").order_by("-timestamp", "-pk")
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        response = HttpResponse(_csv_text(rows), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
        return response


def _csv_text(entries) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        writer.writerow(
            [
                entry.timestamp.astimezone(UTC).isoformat(),
                entry.get_action_display(),
                f"{entry.content_type.app_label}.{entry.content_type.model}",
                entry.object_repr,
                entry.object_pk,
                who(entry),
                entry.remote_addr or "",
                changes_text(entry),
                entry.cid or "",
            ]
        )
    return buffer.getvalue()
