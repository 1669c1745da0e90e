"""The client dialects' HTTP surfaces. A new dialect is one module here, listed in SURFACES."""

from __future__ import annotations

from proxy_app.dialects.gemini import surface as gemini
from proxy_app.dialects.ollama import surface as ollama
from proxy_app.dialects.openai import surface as openai
from proxy_app.dialects.sessions import surface as sessions

# sessions and gemini come before openai, whose `v1/` catch-all would swallow /v1/sessions and
# some /v1/models routes (see gemini).
SURFACES = [sessions, gemini, openai, ollama]
