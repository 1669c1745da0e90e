"""The admin-only middleware wrappers keep Django's protections for browser pages and skip them
(and their thread hops) on the proxy's key-authenticated paths."""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.test import Client, RequestFactory

from gateway_site.middleware import admin_only_csrf, is_proxy_path


async def ok(request):
    return HttpResponse("ok")


def view(request):
    return HttpResponse("ok")


@pytest.mark.parametrize("path, refused", [("/account/keys/new/", True), ("/v1/chat/completions", False)])
async def test_csrf_check_runs_on_pages_not_on_proxy_paths(path, refused):
    middleware = admin_only_csrf(ok)
    request = RequestFactory().post(path, data={})
    request._dont_enforce_csrf_checks = False
    result = await middleware.process_view(request, view, (), {})
    assert (result is not None and result.status_code == 403) == refused
    assert is_proxy_path(path) is not refused


@pytest.mark.django_db
def test_a_plain_post_page_without_token_is_refused(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post("/account/keys/new/", {"name": "x"}).status_code == 403
