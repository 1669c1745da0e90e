"""Every proxied route: the OpenAI dialect under /v1/, and /health."""

from __future__ import annotations

from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from proxy_app import views

urlpatterns = [
    path("health", views.Health.as_view()),
    path("v1/chat/completions", csrf_exempt(require_POST(views.openai_chat))),
    path("v1/completions", csrf_exempt(require_POST(views.openai_completions))),
    path("v1/embeddings", csrf_exempt(require_POST(views.openai_embeddings))),
    path("v1/models", require_GET(views.openai_models)),
    # Model ids may contain "/" (sent URL-encoded by the SDK as %2F, decoded by the server).
    path("v1/models/<path:model_id>", require_GET(views.openai_model)),
    re_path(r"^v1/(?P<rest>.*)$", views.openai_not_found),
]
