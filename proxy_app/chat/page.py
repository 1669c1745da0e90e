"""The minimal chat page at /chat/, and /chat/quota/ (its remaining-quota panel, as JSON).

Members log in with their Django account (the member login at /accounts/login/, in
gateway_site/urls.py); the page then talks to ws/chat/ with the session cookie
(proxy_app.dialects.sessions.websocket). Usage is recorded under the member's "web-chat" key,
issued on first visit through accounts.services and never shown (proxy_app.chat.sessions.web_identity).
No CDN: the page's CSS and JS are inlined from templates; the Markdown renderer (markdown-it) and
its sanitiser (DOMPurify) are vendored in proxy_app/static/gateway/vendor/ with their licences.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_GET

from proxy_app.call import pipeline
from proxy_app.chat import sessions
from proxy_app.core import hub
from proxy_app.core.errors import GatewayError
from proxy_app.ledger import reports
from proxy_app.templatetags.gateway_format import num, usd


def chat_models(models: list[hub.ModelInfo]) -> list[str]:
    """Models that can chat: not embedding models (aliases without known methods are kept)."""

    def chats(m: hub.ModelInfo) -> bool:
        return "embed" not in m.id.lower() and (not m.methods or "generateContent" in m.methods)

    return [m.id for m in models if chats(m)]


def quota_lines(user_id: int) -> list[dict]:
    """The member's day / month token quotas and monthly budget with what remains (as /account/
    shows them), formatted for the page: [{kind, label, remaining_text, limit_text, percent}]."""
    lines = reports.member_usage(user_id)["quotas"]

    def text(line, value) -> str:
        return f"${usd(value)}" if line.unit == "USD" else f"{num(value)} tokens"

    return [
        {
            "kind": q.kind,
            "label": q.label,
            "remaining_text": text(q, q.remaining),
            "limit_text": text(q, q.limit),
            "percent": q.percent,
        }
        for q in lines
    ]


@login_required
async def chat(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    context = {"username": user.get_username(), "models": [], "recent": [], "problem": "", "quotas": []}
    # The open chats and the quota come from the database whatever the upstream says.
    context["recent"] = await sessions.list_for(user.pk, limit=15)
    context["quotas"] = await sync_to_async(quota_lines)(user.pk)
    try:
        identity = await sessions.web_identity(user)
        context["models"] = chat_models(await pipeline.list_models(identity))
    except GatewayError as err:
        context["problem"] = err.message
    return render(request, "proxy_app/chat.html", context)


@require_GET
@login_required
async def quota(request: HttpRequest) -> JsonResponse:
    user = await request.auser()
    response = JsonResponse({"quotas": await sync_to_async(quota_lines)(user.pk)})
    response["Cache-Control"] = "no-store"
    return response


urlpatterns = [path("chat/", chat, name="chat"), path("chat/quota/", quota, name="chat_quota")]
