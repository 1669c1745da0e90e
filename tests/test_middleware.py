"""The admin-only middleware wrappers keep Django's protections for browser pages and skip them
(and their thread hops) on the proxy's key-authenticated paths."""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.test import Client, RequestFactory, override_settings
from django.urls import path

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


def plain_post(request):
    return HttpResponse("accepted")


urlpatterns = [path("plain-form/", plain_post), path("v1/plain/", plain_post)]


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=__name__)
def test_the_whole_chain_refuses_a_page_post_without_token_but_not_a_proxy_post():
    """An undecorated POST view: only the middleware chain can refuse it."""
    client = Client(enforce_csrf_checks=True)
    assert client.post("/plain-form/", {"a": "1"}).status_code == 403
    assert client.post("/v1/plain/", {"a": "1"}).status_code == 200
