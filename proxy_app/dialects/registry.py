"""The client dialects, in one list. A new dialect is one package with a surface module plus one line here.

Everything that depends on which dialects exist is derived from SURFACES:

- the URL patterns (proxy_app/urls.py): first every surface's own `urlpatterns`; then the routes
  that several dialects `share` (GET /v1/models is OpenAI's and Google's), each sent to the first
  surface whose `claims(request)` is true, else to the one surface that shares it without a
  `claims` (the default); last the `fallbacks` that answer unknown paths in the dialect's own
  error shape, the longest literal prefix first (so /v1/sessions/... is not taken by /v1/...);
- PROXY_PREFIXES: the paths the ASGI edge serves without Django's request cycle (every
  surface's `PREFIXES`, and /health).

A surface module has DIALECT, PREFIXES and urlpatterns, and may have shared, claims and fallbacks.
The order of SURFACES only decides which claim is asked first.
"""

from __future__ import annotations

import re

from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern

from proxy_app.dialects.anthropic import surface as anthropic
from proxy_app.dialects.gemini import surface as gemini
from proxy_app.dialects.ollama import surface as ollama
from proxy_app.dialects.openai import surface as openai
from proxy_app.dialects.responses import surface as responses
from proxy_app.dialects.sessions import surface as sessions

SURFACES = [sessions, gemini, openai, ollama, anthropic, responses]

PROXY_PREFIXES: tuple[str, ...] = tuple(dict.fromkeys(p for s in SURFACES for p in s.PREFIXES)) + ("/health",)


def urlpatterns() -> list[URLPattern]:
    own = [p for s in SURFACES for p in s.urlpatterns]
    fallbacks = sorted((p for s in SURFACES for p in getattr(s, "fallbacks", [])), key=_literal_length, reverse=True)
    return [*own, *_shared_routes(), *fallbacks]


def _shared_routes() -> list[URLPattern]:
    by_route: dict[str, list[tuple[object, URLPattern]]] = {}
    for surface in SURFACES:
        for pattern in getattr(surface, "shared", []):
            by_route.setdefault(str(pattern.pattern), []).append((surface, pattern))
    routes = []
    for route, members in by_route.items():
        defaults = [p for s, p in members if getattr(s, "claims", None) is None]
        if len(defaults) != 1:
            raise RuntimeError(f"shared route {route!r} needs exactly one surface without `claims`")
        claimed = [(s.claims, p.callback) for s, p in members if getattr(s, "claims", None) is not None]
        routes.append(URLPattern(members[0][1].pattern, _dispatch(claimed, defaults[0].callback)))
    return routes


def _dispatch(claimed, default):
    async def view(request: HttpRequest, **kwargs) -> HttpResponse:
        for claims, callback in claimed:
            if claims(request):
                return await callback(request, **kwargs)
        return await default(request, **kwargs)

    view.csrf_exempt = True
    return view


def _literal_length(pattern: URLPattern) -> int:
    """How much of the route is literal text before its first parameter or regex group."""
    route = str(pattern.pattern).lstrip("^")
    return len(re.split(r"[<(\\.*+?\[$]", route, maxsplit=1)[0])
