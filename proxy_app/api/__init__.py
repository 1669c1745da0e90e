"""The client dialects' HTTP surfaces. A new dialect is one module here, listed in SURFACES."""

from __future__ import annotations

from proxy_app.api import gemini, ollama, openai

SURFACES = [gemini, openai, ollama]  # gemini first: it claims some /v1/models routes (see there)
