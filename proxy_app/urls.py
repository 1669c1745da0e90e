"""Every proxied route: each dialect's surface (proxy_app/api/*), and /health."""

from __future__ import annotations

from django.urls import path

from proxy_app import views
from proxy_app.api import SURFACES

urlpatterns = [path("health", views.Health.as_view())]
for surface in SURFACES:
    urlpatterns += surface.urlpatterns
