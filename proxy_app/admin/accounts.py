"""Key admin (prefix shown, secret shown once on the page after creation, revoke as a bulk action,
last use and usage per key), limits (per user and per key inline, the default row, all rows), and
the User admin with the user's limits and keys inline.

Usage figures come from proxy_app.dashboard, imported inside functions: the one place accounts
reads proxy_app (the admin shows what the proxy recorded); the model layers stay one-way.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Q
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from accounts import services
from accounts.models import ApiKey, Limits, normalize_networks
from accounts.services import KeyServiceError, save_new_key

LIST_USAGE_DAYS = 7  # the key list's usage columns
LIMITS_HELP = (
    "Empty fields mean no limit of that kind. A user's row replaces the default limits as a whole "
    "(an all-empty row exempts the user from them; delete the row to apply the defaults again). "
    "A key's row narrows its user's: both apply. Changes apply within seconds."
)


# --- limits ---------------------------------------------------------------------------------------


class UserLimitsInline(admin.StackedInline):
    model = Limits
    fk_name = "user"
    fieldsets = [(None, {"fields": list(Limits.LIMIT_FIELDS), "description": LIMITS_HELP})]
    max_num = 1
    extra = 1
    verbose_name = verbose_name_plural = "limits"


class KeyLimitsInline(UserLimitsInline):
    fk_name = "api_key"


class LimitsInlineWrites:
    """For admins with a limits inline: its rows are saved and deleted through accounts.services."""

    def save_formset(self, request, form, formset, change):
        if formset.model is not Limits:
            return super().save_formset(request, form, formset, change)
        rows = formset.save(commit=False)
        for row in formset.deleted_objects:
            services.delete_limits(row)
        for row in rows:
            services.save_limits(row)
        formset.save_m2m()


@admin.register(Limits)
class LimitsAdmin(admin.ModelAdmin):
    list_display = ["__str__", "describe", "updated_at"]
    list_filter = ["is_default"]
    search_fields = ["user__username", "api_key__name", "api_key__prefix"]
    autocomplete_fields = ["user", "api_key"]
    fieldsets = [
        ("Whose limits (exactly one)", {"fields": ["user", "api_key", "is_default"]}),
        ("Limits", {"fields": list(Limits.LIMIT_FIELDS), "description": LIMITS_HELP}),
    ]
    change_list_template = "admin/accounts/limits/change_list.html"

    def get_urls(self):
        default = path("default/", self.admin_site.admin_view(self.default_view), name="accounts_limits_default")
        return [default, *super().get_urls()]

    def default_view(self, request):
        """The default limits row (created empty, i.e. limiting nothing, on first visit)."""
        if not self.has_change_permission(request):
            return redirect("admin:index")
        row = services.default_limits()
        return redirect("admin:accounts_limits_change", row.pk)

    def save_model(self, request, obj, form, change):
        services.save_limits(obj)

    def delete_model(self, request, obj):
        services.delete_limits(obj)

    def delete_queryset(self, request, queryset):
        services.delete_limits(queryset)


# --- keys -----------------------------------------------------------------------------------------


class ApiKeyForm(forms.ModelForm):
    allowed_models = forms.CharField(
        required=False, help_text="Comma-separated model aliases; empty allows every model."
    )
    allowed_ips = forms.CharField(
        label="Allowed client addresses",
        required=False,
        help_text="Comma-separated IPs or CIDRs the key may be used from (e.g. 203.0.113.7, 10.0.0.0/8); "
        "empty allows any address. Behind a reverse proxy, set GATEWAY_TRUSTED_PROXIES so the real client counts.",
    )

    class Meta:
        model = ApiKey
        fields = ["user", "name", "allowed_models", "allowed_ips", "expires_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["allowed_models"] = ", ".join(self.instance.allowed_models or [])
            self.initial["allowed_ips"] = ", ".join(self.instance.allowed_ips or [])

    def clean(self):
        data = super().clean()
        user, name = data.get("user") or getattr(self.instance, "user", None), data.get("name")
        duplicate = ApiKey.objects.filter(user=user, name=name).exclude(pk=self.instance.pk)
        if user and name and duplicate.exists():
            self.add_error("name", f"{user} already has a key named {name!r}.")
        return data

    def clean_allowed_models(self) -> list[str]:
        return [m.strip() for m in self.cleaned_data["allowed_models"].split(",") if m.strip()]

    def clean_allowed_ips(self) -> list[str]:
        return normalize_networks(
            [i for i in self.cleaned_data["allowed_ips"].replace("\n", ",").split(",") if i.strip()]
        )


class KeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked"), ("expired", "Expired")]

    def queryset(self, request, queryset):
        now = timezone.now()
        not_expired = Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        conditions = {
            "active": Q(revoked_at__isnull=True) & not_expired,
            "revoked": Q(revoked_at__isnull=False),
            "expired": Q(revoked_at__isnull=True) & ~not_expired,
        }
        return queryset.filter(conditions[self.value()]) if self.value() in conditions else queryset


class KeyChangeList(ChangeList):
    """Adds each listed key's usage of the last LIST_USAGE_DAYS days: one grouped query for the
    page's keys (raw rows: a week keeps it quick on a big table; a key's page shows 30 days)."""

    def get_results(self, request):
        from proxy_app.ledger.reports import key_usage

        super().get_results(request)
        self.result_list = list(self.result_list)
        usage = key_usage([key.pk for key in self.result_list], days=LIST_USAGE_DAYS)
        for key in self.result_list:
            key.usage_recent = usage.get(key.pk, {})


@admin.register(ApiKey)
class ApiKeyAdmin(LimitsInlineWrites, admin.ModelAdmin):
    form = ApiKeyForm
    list_display = [
        "name",
        "user",
        "prefix",
        "status",
        "usable_from",
        "expires_at",
        "created_at",
        "last_used_at",
        "recent_requests",
        "recent_tokens",
        "recent_cost",
    ]
    list_filter = [KeyStatusFilter, "created_at", "last_used_at"]
    list_select_related = ["user"]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_changelist(self, request, **kwargs):
        return KeyChangeList

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields + (["user", "usage"] if obj else [])

    def get_inlines(self, request, obj):
        return [KeyLimitsInline] if obj else []  # limits are set once the key exists

    def save_model(self, request, obj, form, change):
        if change:
            return services.update_key(obj)
        try:
            request._new_api_key_secret = save_new_key(obj)
        except KeyServiceError as exc:
            messages.error(request, str(exc))

    def delete_model(self, request, obj):
        services.delete_keys(obj)

    def delete_queryset(self, request, queryset):
        services.delete_keys(queryset)

    def response_add(self, request, obj, post_url_continue=None):
        secret = getattr(request, "_new_api_key_secret", None)
        if not secret:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "key": obj,
            "secret": secret,
            "base_url": request.build_absolute_uri("/").rstrip("/"),
            "title": "API key created",
        }
        return TemplateResponse(request, "admin/accounts/apikey/secret_once.html", context)

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        count = services.revoke_keys(queryset)
        messages.success(request, f"Revoked {count} key(s). They stop working within seconds.")

    @admin.display(description="status")
    def status(self, obj: ApiKey) -> str:
        if obj.revoked_at:
            return "revoked"
        return "active" if obj.is_usable(timezone.now()) else "expired"

    @admin.display(description="usable from")
    def usable_from(self, obj: ApiKey) -> str:
        return ", ".join(obj.allowed_ips or []) or "any address"

    @admin.display(description=f"requests ({LIST_USAGE_DAYS} d)")
    def recent_requests(self, obj: ApiKey) -> str:
        return f"{getattr(obj, 'usage_recent', {}).get('requests', 0):,}"

    @admin.display(description=f"tokens ({LIST_USAGE_DAYS} d)")
    def recent_tokens(self, obj: ApiKey) -> str:
        return f"{getattr(obj, 'usage_recent', {}).get('total_tokens', 0):,}"

    @admin.display(description=f"cost ({LIST_USAGE_DAYS} d, USD)")
    def recent_cost(self, obj: ApiKey) -> str:
        return f"{getattr(obj, 'usage_recent', {}).get('cost_usd', 0):.4f}"

    @admin.display(description="usage")
    def usage(self, obj: ApiKey) -> str:
        from proxy_app.ledger.reports import key_detail

        records = reverse("admin:proxy_app_usagerecord_changelist") + f"?key={obj.pk}"
        return render_to_string("admin/accounts/apikey/usage.html", {"usage": key_detail(obj.pk), "records": records})


# --- users ----------------------------------------------------------------------------------------


class UserKeysInline(admin.TabularInline):
    """The user's keys, read-only (create keys from API keys → Add, or the member page)."""

    model = ApiKey
    fields = ["name", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = "API keys"

    def has_add_permission(self, request, obj=None):
        return False


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class UserAdmin(LimitsInlineWrites, DjangoUserAdmin):
    """Django's user admin plus the user's limits and keys."""

    def get_inlines(self, request, obj):
        return [UserLimitsInline, UserKeysInline] if obj else []
