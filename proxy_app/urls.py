"""Every proxied route: the OpenAI dialect under /v1/, and /health."""

from __future__ import annotations

from django.urls import path, re_path

from proxy_app import views
from proxy_app.views import OPENAI, only

urlpatterns = [
    path("health", views.Health.as_view()),
    path("v1/chat/completions", only("POST", OPENAI, views.openai_chat)),
    path("v1/completions", only("POST", OPENAI, views.openai_completions)),
    path("v1/embeddings", only("POST", OPENAI, views.openai_embeddings)),
    path("v1/models", only("GET", OPENAI, views.openai_models)),
    # Model ids may contain "/" (sent URL-encoded by the SDK as %2F, decoded by the server).
    path("v1/models/<path:model_id>", only("GET", OPENAI, views.openai_model)),
    re_path(r"^v1/(?P<rest>.*)$", views.openai_not_found),
]
