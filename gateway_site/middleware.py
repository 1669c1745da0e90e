"""The request id on every response (an ASGI wrapper), admin-only Django middlewares, and the audit
log's actor (the logged-in user) for admin and member-page requests.

Django's built-in middlewares are sync-style `MiddlewareMixin` classes: each costs thread hops per
request (libraries.md finding 2). The proxy routes need none of them (no sessions, cookies or
CSRF: clients authenticate with API keys), so each is wrapped to run only for other paths.
"""

from __future__ import annotations

import contextvars
import re
import uuid

from asgiref.sync import markcoroutinefunction
from django.utils.decorators import async_only_middleware
from django.utils.module_loading import import_string

current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


_proxy_prefixes: tuple[str, ...] | None = None


def is_proxy_path(path: str) -> bool:
    """Paths served by the proxy dialects (API-key authenticated, no browser state); the dialect
    registry says which (read once, after the apps are loaded)."""
    global _proxy_prefixes
    if _proxy_prefixes is None:
        from proxy_app.dialects.registry import PROXY_PREFIXES

        _proxy_prefixes = PROXY_PREFIXES
    return path.startswith(_proxy_prefixes)


class RequestIdASGI:
    """ASGI wrapper: every HTTP response (static files included) carries `x-request-id`.

    The client's own id is kept when it is sane, else a fresh one is made; either way it is put
    back into the request headers, so views read it as `request.headers["x-request-id"]`.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        rid = given if _CLIENT_ID.match(given) else f"req_{uuid.uuid4().hex}"
        current_request_id.set(rid)
        headers = [(k, v) for k, v in scope["headers"] if k != b"x-request-id"]
        scope = {**scope, "headers": [*headers, (b"x-request-id", rid.encode())]}

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_id)


def _admin_only(path: str):
    @async_only_middleware
    def factory(get_response):
        inner = import_string(path)(get_response)

        async def middleware(request):
            if is_proxy_path(request.path):
                return await get_response(request)
            return await inner(request)

        markcoroutinefunction(middleware)
        if hasattr(inner, "process_view"):  # CSRF checks live in process_view: keep them
            middleware.process_view = _view_hook(inner)
        return middleware

    return factory


def _view_hook(inner):
    """The inner middleware's `process_view`, skipped on proxy paths. Async, so Django calls it
    without a thread hop; the CSRF check it runs touches no database."""

    async def process_view(request, view_func, view_args, view_kwargs):
        if is_proxy_path(request.path):
            return None
        return inner.process_view(request, view_func, view_args, view_kwargs)

    return process_view


admin_only_security = _admin_only("django.middleware.security.SecurityMiddleware")
admin_only_sessions = _admin_only("django.contrib.sessions.middleware.SessionMiddleware")
admin_only_common = _admin_only("django.middleware.common.CommonMiddleware")
admin_only_csrf = _admin_only("django.middleware.csrf.CsrfViewMiddleware")
admin_only_auth = _admin_only("django.contrib.auth.middleware.AuthenticationMiddleware")
admin_only_messages = _admin_only("django.contrib.messages.middleware.MessageMiddleware")
admin_only_clickjacking = _admin_only("django.middleware.clickjacking.XFrameOptionsMiddleware")
admin_only_axes = _admin_only("axes.middleware.AxesMiddleware")


@async_only_middleware
def audit_actor(get_response):
    """The audit log (django-auditlog) records the logged-in user, the client address (REMOTE_ADDR:
    gateway_site.client_ip trusts X-Forwarded-For only from GATEWAY_TRUSTED_PROXIES; auditlog's own
    middleware would take the header from anyone) and "admin" or "web" as the actor of every change
    an admin or member page makes. django-auditlog's own middleware is sync and would close its
    context before an async view ran; this one keeps it open until the response is made."""
    from accounts.audit import request_actor

    async def middleware(request):
        if is_proxy_path(request.path):
            return await get_response(request)
        user = await request.auser()
        actor = user if user.is_authenticated else None
        source = "admin" if request.path.startswith("/admin/") else "web"
        with request_actor(actor, request.META.get("REMOTE_ADDR"), source):
            return await get_response(request)

    markcoroutinefunction(middleware)
    return middleware
