"""Every proxied route: each dialect's surface (proxy_app/api/*), and /health."""

from __future__ import annotations

from django.urls import path

from proxy_app.dialects import surface as views
from proxy_app.dialects.registry import SURFACES

urlpatterns = [path("health", views.Health.as_view())]
for surface in SURFACES:
    urlpatterns += surface.urlpatterns
