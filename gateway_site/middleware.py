"""Two small async middlewares: the request id on every response, and admin-only wrapping.

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

# Paths served by the proxy dialects: API-key authenticated, no browser state.
PROXY_PREFIXES = ("/v1/", "/v1beta/", "/api/", "/health")

current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def is_proxy_path(path: str) -> bool:
    return path.startswith(PROXY_PREFIXES)


@async_only_middleware
def request_id(get_response):
    """Use the client's `x-request-id` when it is sane, else a fresh one; echo it on the response."""

    async def middleware(request):
        given = request.headers.get("x-request-id", "")
        rid = given if _CLIENT_ID.match(given) else f"req_{uuid.uuid4().hex}"
        request.request_id = rid
        current_request_id.set(rid)
        response = await get_response(request)
        response["x-request-id"] = rid
        return response

    markcoroutinefunction(middleware)
    return middleware


def _admin_only(path: str):
    @async_only_middleware
    def factory(get_response):
        inner = import_string(path)(get_response)

        async def middleware(request):
            if is_proxy_path(request.path):
                return await get_response(request)
            return await inner(request)

        markcoroutinefunction(middleware)
        return middleware

    return factory


admin_only_security = _admin_only("django.middleware.security.SecurityMiddleware")
admin_only_sessions = _admin_only("django.contrib.sessions.middleware.SessionMiddleware")
admin_only_common = _admin_only("django.middleware.common.CommonMiddleware")
admin_only_csrf = _admin_only("django.middleware.csrf.CsrfViewMiddleware")
admin_only_auth = _admin_only("django.contrib.auth.middleware.AuthenticationMiddleware")
admin_only_messages = _admin_only("django.contrib.messages.middleware.MessageMiddleware")
admin_only_clickjacking = _admin_only("django.middleware.clickjacking.XFrameOptionsMiddleware")
