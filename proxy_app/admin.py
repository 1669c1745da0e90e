"""Admin for upstreams (key write-only, never rendered), model mappings and the usage ledger."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import Count, Sum

from proxy_app.models import ModelMapping, Upstream, UsageRecord


class UpstreamForm(forms.ModelForm):
    api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted and never shown again. Leave empty to keep the current key.",
    )

    class Meta:
        model = Upstream
        fields = ["name", "kind", "base_url", "api_key", "api_key_env", "enabled"]

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
    list_display = ["name", "kind", "base_url", "key_source", "enabled"]
    list_filter = ["kind", "enabled"]

    @admin.display(description="API key")
    def key_source(self, obj: Upstream) -> str:
        if obj.api_key_env:
            return f"from ${obj.api_key_env}"
        return "stored (encrypted)" if obj.api_key_encrypted else "none"


@admin.register(ModelMapping)
class ModelMappingAdmin(admin.ModelAdmin):
    list_display = ["alias", "upstream_model", "upstream", "hidden"]
    list_filter = ["upstream", "hidden"]
    search_fields = ["alias", "upstream_model"]


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = [
        "created_at", "user", "key_prefix", "dialect", "endpoint", "requested_model", "upstream_model",
        "status", "prompt_tokens", "completion_tokens", "total_tokens", "token_source", "streamed",
        "client_disconnected", "latency_ms", "ttft_ms",
    ]
    list_filter = ["created_at", "status", "dialect", "streamed", "token_source", "requested_model", "user"]
    search_fields = ["request_id", "key_prefix", "requested_model", "user__username"]
    list_select_related = ["user"]
    show_full_result_count = False  # no COUNT(*) over the whole table on every page
    change_list_template = "admin/proxy_app/usagerecord/change_list.html"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            response.context_data["usage_totals"] = changelist.queryset.aggregate(
                requests=Count("id"),
                prompt=Sum("prompt_tokens"),
                completion=Sum("completion_tokens"),
                total=Sum("total_tokens"),
            )
        return response
