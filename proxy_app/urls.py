"""Every proxied route, as the dialect registry derives them, then /health, /openapi.json and the chat page."""

from __future__ import annotations

from django.urls import path

from proxy_app.chat import page as chat_page
from proxy_app.dialects import registry
from proxy_app.dialects import surface as views
from proxy_app.ops import openapi

urlpatterns = [
    path("health", views.Health.as_view()),
    path("openapi.json", openapi.openapi_json),
    *registry.urlpatterns(),
    *chat_page.urlpatterns,
]
