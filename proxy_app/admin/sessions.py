"""Read-only admin for chat sessions: who, which model, the whole stored history."""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from proxy_app.admin.filters import ReadOnlyAdmin
from proxy_app.models import ChatSession


@admin.register(ChatSession)
class ChatSessionAdmin(ReadOnlyAdmin):
    list_display = [
        "public_id",
        "user",
        "api_key",
        "model",
        "turns",
        "turns_dropped",
        "created_at",
        "updated_at",
        "ended_at",
    ]
    list_filter = ["ended_at", "model", "user"]
    search_fields = ["public_id", "user__username", "model"]
    list_select_related = ["user", "api_key"]
    show_full_result_count = False
    fields = [
        "public_id",
        "user",
        "api_key",
        "model",
        "system_instruction",
        "settings",
        "conversation",
        "turns_dropped",
        "created_at",
        "updated_at",
        "ended_at",
    ]
    readonly_fields = fields

    @admin.display(description="entries")
    def turns(self, obj: ChatSession) -> int:
        return len(obj.history or [])

    @admin.display(description="generation config")
    def settings(self, obj: ChatSession) -> str:
        return json.dumps(obj.generation_config or {}, sort_keys=True)

    @admin.display(description="history")
    def conversation(self, obj: ChatSession) -> str:
        if not obj.history:
            return "(empty)"
        rows = format_html_join(
            "",
            '<tr><th style="vertical-align:top">{}{}</th><td style="white-space:pre-wrap">{}</td></tr>',
            ((e.get("role", "?"), " (partial)" if e.get("partial") else "", e.get("text", "")) for e in obj.history),
        )
        return format_html('<table class="chat-history">{}</table>', rows)
