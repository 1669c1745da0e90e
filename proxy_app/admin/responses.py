"""Read-only admin for stored Responses API answers: who, which model, the input and the output."""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html

from proxy_app.admin.filters import ReadOnlyAdmin
from proxy_app.models import StoredResponse


def _pretty(value: object) -> str:
    return format_html('<pre style="white-space:pre-wrap">{}</pre>', json.dumps(value, indent=2, ensure_ascii=False))


@admin.register(StoredResponse)
class StoredResponseAdmin(ReadOnlyAdmin):
    list_display = ["response_id", "user", "api_key", "model", "status", "items", "created_at"]
    list_filter = ["model", "user"]
    search_fields = ["response_id", "user__username", "model"]
    list_select_related = ["user", "api_key"]
    show_full_result_count = False
    fields = ["response_id", "user", "api_key", "model", "created_at", "input", "output"]
    readonly_fields = fields

    @admin.display(description="status")
    def status(self, obj: StoredResponse) -> str:
        return (obj.response or {}).get("status", "")

    @admin.display(description="input items")
    def items(self, obj: StoredResponse) -> int:
        return len(obj.input_items or [])

    @admin.display(description="input items")
    def input(self, obj: StoredResponse) -> str:
        return _pretty(obj.input_items or [])

    @admin.display(description="response")
    def output(self, obj: StoredResponse) -> str:
        return _pretty(obj.response or {})
