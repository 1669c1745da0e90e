"""The dialect registry derives the routes and the edge's path prefixes: a dialect is one surface
module plus one line in SURFACES, with no route order, prefix list or key sniffing written by hand."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import path, re_path

from gateway_site.middleware import is_proxy_path
from proxy_app.dialects import registry


def answer(text):
    async def view(request, **kwargs):
        return HttpResponse(f"{text} {sorted(kwargs.items())}")

    return view


def resolve(patterns, url):
    for pattern in patterns:
        match = pattern.resolve(url.lstrip("/"))
        if match:
            return match
    return None


async def test_a_new_dialect_is_one_surface_and_one_registry_line(monkeypatch):
    incumbent = SimpleNamespace(  # shaped like the OpenAI surface: the default owner of /v1/models
        PREFIXES=("/v1/",),
        urlpatterns=[path("v1/chat/completions", answer("chat"))],
        shared=[path("v1/models/<path:model_id>", answer("default model"))],
        fallbacks=[re_path(r"^v1/(?P<rest>.*)$", answer("incumbent unknown"))],
    )
    newcomer = SimpleNamespace(
        PREFIXES=("/v1/messages",),
        urlpatterns=[path("v1/messages", answer("messages"))],
        shared=[path("v1/models/<path:model_id>", answer("newcomer model"))],
        claims=lambda request: "anthropic-version" in request.headers,
        fallbacks=[re_path(r"^v1/messages/(?P<rest>.*)$", answer("newcomer unknown"))],
    )
    monkeypatch.setattr(registry, "SURFACES", [incumbent, newcomer])  # the one line a dialect adds
    patterns = registry.urlpatterns()
    factory = RequestFactory()

    match = resolve(patterns, "/v1/models/m-1")
    claimed = await match.func(factory.get("/", headers={"anthropic-version": "2023-06-01"}), **match.kwargs)
    assert claimed.content == b"newcomer model [('model_id', 'm-1')]"
    default = await match.func(factory.get("/"), **match.kwargs)
    assert default.content == b"default model [('model_id', 'm-1')]"
    messages = resolve(patterns, "/v1/messages")
    assert (await messages.func(factory.post("/"))).content == b"messages []"
    unknown = resolve(patterns, "/v1/messages/nope")  # its own catch-all, ahead of the incumbent's /v1/
    assert (await unknown.func(factory.get("/"), **unknown.kwargs)).content.startswith(b"newcomer unknown")
    other = resolve(patterns, "/v1/other")
    assert (await other.func(factory.get("/"), **other.kwargs)).content.startswith(b"incumbent unknown")


def test_a_shared_route_needs_exactly_one_default(monkeypatch):
    claimer = SimpleNamespace(PREFIXES=(), urlpatterns=[], shared=[path("x", answer("x"))], claims=lambda r: True)
    monkeypatch.setattr(registry, "SURFACES", [claimer])
    with pytest.raises(RuntimeError, match="exactly one surface without `claims`"):
        registry.urlpatterns()


def test_catch_alls_run_longest_prefix_first_whatever_the_registry_order(monkeypatch):
    monkeypatch.setattr(registry, "SURFACES", list(reversed(registry.SURFACES)))
    patterns = registry.urlpatterns()
    fallback = resolve(patterns, "/v1/sessions/x/y/z")
    assert fallback.func.__module__ == "proxy_app.dialects.surface"  # an unknown_route view...
    sessions_first = [str(p.pattern) for p in patterns].index(r"^v1/sessions/(?P<rest>[\s\S]*)$")
    assert sessions_first < [str(p.pattern) for p in patterns].index(r"^v1/(?P<rest>[\s\S]*)$")


def test_the_edge_serves_exactly_the_prefixes_the_surfaces_declare():
    declared = {p for s in registry.SURFACES for p in s.PREFIXES}
    assert set(registry.PROXY_PREFIXES) == declared | {"/health"}
    assert is_proxy_path("/v1beta/models") and is_proxy_path("/start_chat") and is_proxy_path("/api/chat")
    assert not is_proxy_path("/admin/") and not is_proxy_path("/chat/") and not is_proxy_path("/account/")
