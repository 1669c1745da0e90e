"""The minimal chat page at /chat/.

Members log in with their Django account (the member login at /accounts/login/, in
gateway_site/urls.py); the page then talks to ws/chat/ with the session cookie
(proxy_app.consumers). Usage is recorded under the member's "web-chat" key, issued on first visit
through accounts.services and never shown (proxy_app.sessions.web_identity). No CDN: the page's
CSS and JS are inlined from templates.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from proxy_app.call import pipeline
from proxy_app.chat import sessions
from proxy_app.core import hub
from proxy_app.core.errors import GatewayError


def chat_models(models: list[hub.ModelInfo]) -> list[str]:
    """Models that can chat: not embedding models (aliases without known methods are kept)."""

    def chats(m: hub.ModelInfo) -> bool:
        return "embed" not in m.id.lower() and (not m.methods or "generateContent" in m.methods)

    return [m.id for m in models if chats(m)]


@login_required
async def chat(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    context = {"username": user.get_username(), "models": [], "recent": [], "problem": ""}
    try:
        identity = await sessions.web_identity(user)
        context["models"] = chat_models(await pipeline.list_models(identity))
        context["recent"] = await sessions.list_for(user.pk, limit=15)
    except GatewayError as err:
        context["problem"] = err.message
    return render(request, "proxy_app/chat.html", context)


urlpatterns = [path("chat/", chat, name="chat")]
