"""Key admin: the prefix is shown, the secret appears exactly once, on the page after creation."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import KeyServiceError, save_new_key


class ApiKeyForm(forms.ModelForm):
    allowed_models = forms.CharField(
        required=False, help_text="Comma-separated model aliases; empty allows every model."
    )

    class Meta:
        model = ApiKey
        fields = ["user", "name", "allowed_models", "expires_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["allowed_models"] = ", ".join(self.instance.allowed_models or [])

    def clean(self):
        data = super().clean()
        user, name = data.get("user") or getattr(self.instance, "user", None), data.get("name")
        duplicate = ApiKey.objects.filter(user=user, name=name).exclude(pk=self.instance.pk)
        if user and name and duplicate.exists():
            self.add_error("name", f"{user} already has a key named {name!r}.")
        return data

    def clean_allowed_models(self) -> list[str]:
        return [m.strip() for m in self.cleaned_data["allowed_models"].split(",") if m.strip()]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]
    list_filter = ["revoked_at", "created_at"]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields + (["user"] if obj else [])

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        try:
            request._new_api_key_secret = save_new_key(obj)
        except KeyServiceError as exc:
            messages.error(request, str(exc))

    def response_add(self, request, obj, post_url_continue=None):
        secret = getattr(request, "_new_api_key_secret", None)
        if not secret:
            return super().response_add(request, obj, post_url_continue)
        context = {**self.admin_site.each_context(request), "key": obj, "secret": secret,
                   "base_url": request.build_absolute_uri("/").rstrip("/"), "title": "API key created"}
        return TemplateResponse(request, "admin/accounts/apikey/secret_once.html", context)

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        messages.success(request, f"Revoked {count} key(s). They stop working within seconds.")
