"""The member page (/account/): a logged-in member's own keys, usage and remaining quota; and,
when GATEWAY_MEMBERS_MANAGE_KEYS is on (the default), creating and revoking their own keys.

Members log in with their Django account (/accounts/login/); they need not be staff. Every query
is scoped to request.user, so nobody sees or revokes another member's key (a foreign key id is a
404). Usage comes from proxy_app.dashboard, imported inside the view: the member page shows what
the proxy recorded, the one place accounts reads proxy_app.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_POST

from accounts.models import ApiKey
from accounts.services import KeyServiceError, issue_key, revoke_keys

log = logging.getLogger(__name__)
PER_MINUTE_KINDS = {"rpm": "requests this minute", "tpm": "tokens this minute", "max_parallel": "requests in flight"}


def _may_manage() -> bool:
    return settings.MEMBERS_MANAGE_KEYS


@require_GET
@login_required
def home(request):
    from proxy_app.ledger.reports import member_usage

    keys = list(ApiKey.objects.filter(user=request.user).select_related("limits").order_by("revoked_at", "-created_at"))
    now = timezone.now()
    for key in keys:
        key.usable = key.is_usable(now)
        key.limits_text = _key_limits(key)
    context = {
        "keys": keys,
        "usage": member_usage(request.user.pk),
        "live": _live_limits(request.user),
        "may_manage": _may_manage(),
        "max_keys": settings.MEMBERS_MAX_KEYS,
    }
    return render(request, "accounts/member_home.html", context)


def _key_limits(key: ApiKey) -> str:
    try:
        return key.limits.describe()
    except ApiKey.limits.RelatedObjectDoesNotExist:
        return ""


def _live_limits(user) -> list[dict]:
    """Per-minute and in-flight limits of the user's scope with their current counter values
    (the counters the gateway admits against; shared across processes when Redis is used)."""
    from proxy_app.ledger import quota

    identity = SimpleNamespace(user_id=user.pk, key_id=-1, username=user.get_username(), prefix="")
    try:
        statuses = async_to_sync(quota.status)(identity)
    except Exception:  # the counter store may be down: the page still shows usage from the database
        log.warning("could not read rate-limit counters for the member page", exc_info=True)
        return []
    return [
        {
            "label": PER_MINUTE_KINDS[s.kind],
            "limit": s.limit,
            "used": s.used or 0,
            "remaining": max(s.limit - (s.used or 0), 0),
        }
        for s in statuses
        if s.kind in PER_MINUTE_KINDS
    ]


# csrf_protect on each POST view: the gateway's wrapped CSRF middleware (gateway_site/middleware.py)
# runs only its request/response hooks, not the process_view check, so views must ask for it.
@require_POST
@csrf_protect
@login_required
def create_key(request):
    if not _may_manage():
        raise PermissionDenied("Members may not create keys here; ask an admin.")
    active = ApiKey.objects.filter(user=request.user, revoked_at__isnull=True).count()
    if active >= settings.MEMBERS_MAX_KEYS:
        messages.error(request, f"You already have {active} active keys (the most allowed); revoke one first.")
        return redirect("member_home")
    name = request.POST.get("name", "").strip()[:100]
    try:
        key, secret = issue_key(request.user, name=name)
    except KeyServiceError as exc:
        messages.error(request, str(exc))
        return redirect("member_home")
    base_url = request.build_absolute_uri("/").rstrip("/")
    response = render(request, "accounts/key_created.html", {"key": key, "secret": secret, "base_url": base_url})
    response["Cache-Control"] = "no-store"  # the secret must not linger in a cache or the back button
    return response


@require_POST
@csrf_protect
@login_required
def revoke_key(request, key_id: int):
    if not _may_manage():
        raise PermissionDenied("Members may not revoke keys here; ask an admin.")
    key = ApiKey.objects.filter(pk=key_id, user=request.user).first()
    if key is None:
        raise Http404("No such key.")
    if key.revoked_at is None:
        revoke_keys(ApiKey.objects.filter(pk=key.pk))
        messages.success(request, f"Key {key.name} ({key.prefix}…) is revoked; it stops working within seconds.")
    return redirect("member_home")


urlpatterns = [
    path("", home, name="member_home"),
    path("keys/new/", create_key, name="member_create_key"),
    path("keys/<int:key_id>/revoke/", revoke_key, name="member_revoke_key"),
]
