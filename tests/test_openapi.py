"""GET /openapi.json is valid OpenAPI 3.1 and matches the routes both ways: every route in the URL
conf (the proxy routes the ASGI edge serves included) is documented, every documented path resolves
to a real route (no stale entry), and every documented method is served there (others get 405)."""

from __future__ import annotations

import re

import orjson
import pytest
from django.test import Client
from django.urls import URLResolver, get_resolver
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from gateway_site.middleware import is_proxy_path
from proxy_app.dialects import registry
from proxy_app.dialects.sessions.websocket import websocket_urlpatterns
from proxy_app.ops import openapi
from proxy_app.ops.observability import MetricsASGI

# Served outside Django's URL conf (gateway_site/asgi.py): checked against their own routers below.
ASGI_PATHS = {"/metrics", "/ws/chat/"}
# Django's admin generates hundreds of routes of its own; the document lists /admin/ once.
ADMIN_PREFIX = "admin/"
# Connectivity probes that answer any method on purpose (editors and Claude Code probe them).
ANY_METHOD = {"/", "/api/version", "/api/hello"}
ANY_METHOD.add("/chat/")  # login_required answers first (302 to the login page) whatever the method
METHODS = ("get", "post", "delete")


def sample(path: str) -> str:
    """A concrete URL for a documented path template ({key_id} must be a number)."""
    return re.sub(r"\{(\w+)\}", lambda m: "7" if m.group(1) == "key_id" else "m-1", path)


def site_routes() -> dict[str, object]:
    """Every route of the project URL conf (full route text -> pattern), Django's admin left out."""
    routes: dict[str, object] = {}

    def walk(resolver: URLResolver, prefix: str) -> None:
        for pattern in resolver.url_patterns:
            route = prefix + str(pattern.pattern).lstrip("^")
            if isinstance(pattern, URLResolver):
                walk(pattern, route)
            elif not route.startswith(ADMIN_PREFIX):
                routes[route] = pattern

    walk(get_resolver(), "")
    return routes


FALLBACKS = {p.callback for s in registry.SURFACES for p in getattr(s, "fallbacks", [])}


def doc_paths() -> dict[str, dict]:
    return openapi.document()["paths"]


@pytest.mark.django_db
def test_served_without_a_key_and_valid_openapi_3_1():
    response = Client().get("/openapi.json")
    assert response.status_code == 200, response.content[:300]
    assert response["content-type"] == "application/json"
    spec = orjson.loads(response.content)
    assert spec["openapi"].startswith("3.1.")
    validate(spec, cls=OpenAPIV31SpecValidator)  # raises with the failing part named
    assert spec == openapi.document()
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values() if "operationId" in op]
    assert len(ids) == len(set(ids)), "operationIds must be unique"


def test_every_route_is_documented_and_every_documented_path_exists():
    routes = site_routes()
    fallbacks = {route for route, pattern in routes.items() if pattern.callback in FALLBACKS}
    assert len(fallbacks) == len(FALLBACKS), "every dialect's catch-all is in the URL conf"
    edge = get_resolver("proxy_app.urls")  # what the ASGI fast path resolves with (proxy_app/call/edge.py)
    documented, stale = set(), []
    for path in doc_paths():
        url = sample(path)
        if path in ASGI_PATHS:
            continue
        match = get_resolver().resolve(url)  # Resolver404 here: a stale entry
        route = match.route.lstrip("^")
        if match.func in FALLBACKS:
            stale.append(f"{path} only reaches the catch-all {route!r}")
        documented.add(route)
        if is_proxy_path(url):
            assert edge.resolve(url).func is match.func, f"{path}: the edge resolves another view"
    assert not stale, stale
    undocumented = sorted(set(routes) - fallbacks - documented)
    assert not undocumented, f"routes missing from proxy_app/ops/openapi.yaml: {undocumented}"
    assert any(p.startswith("/admin/") for p in doc_paths())


def test_the_asgi_level_paths_are_real():
    assert MetricsASGI.path in doc_paths()
    ws = [str(p.pattern) for p in websocket_urlpatterns]
    documented_ws = [p.lstrip("/") for p in ASGI_PATHS if p.startswith("/ws/")]
    assert sorted(ws) == sorted(documented_ws)
    assert all(p in doc_paths() for p in ASGI_PATHS)


def test_documented_methods_are_served_and_others_refused(drain_usage):  # 401s are recorded too
    client = Client(raise_request_exception=False)
    wrong = []
    for path, item in doc_paths().items():
        if path in ASGI_PATHS or path.startswith("/admin/"):
            continue
        url = sample(path)
        for method in METHODS:
            status = client.generic(method.upper(), url, b"{}", content_type="application/json").status_code
            if method in item and status in (404, 405):
                wrong.append(f"{method.upper()} {path}: documented, answered {status}")
            if method not in item and status != 405 and path not in ANY_METHOD:
                wrong.append(f"{method.upper()} {path}: not documented, answered {status}")
    assert not wrong, wrong
