"""ASGI entry point: `gateway_site.asgi:application`, served by daphne.

HTTP goes to Django (static files first, through ServeStatic). WebSockets: ws/chat/ (the chat
consumer, proxy_app.consumers), with Django's session cookie and user in the scope for the chat
page; no origin-validator wrapper on purpose (it refuses non-browser clients; see the consumer).
GET /metrics is answered ahead of all that by proxy_app.observability.MetricsASGI, which also
counts HTTP requests in flight.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_site.settings")

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from servestatic import ServeStaticASGI  # noqa: E402

from gateway_site.middleware import RequestIdASGI, is_proxy_path  # noqa: E402
from proxy_app.observability import MetricsASGI  # noqa: E402

django_app = get_asgi_application()


class ProxyASGIHandler(ASGIHandler):
    """Django's handler without a per-request ThreadSensitiveContext, for the proxy routes only.

    Django gives every request its own thread-sensitive context, which starts a fresh worker
    thread (two per request, measured) for the few sync calls the handler makes: the
    request_started/finished signal receivers and `response.close()`. Proxy views are async
    and touch the ORM only on cache misses, so their sync calls can share the process's one
    long-lived thread-sensitive worker instead. Admin and pages keep Django's default.
    """

    async def __call__(self, scope, receive, send):
        await self.handle(scope, receive, send)


proxy_handler = ProxyASGIHandler()


async def django_http(scope, receive, send):
    handler = proxy_handler if is_proxy_path(scope["path"]) else django_app
    await handler(scope, receive, send)

from proxy_app.consumers import websocket_urlpatterns  # noqa: E402  (needs the apps loaded)

application = ProtocolTypeRouter(
    {
        "http": RequestIdASGI(  # outermost: /metrics answers carry x-request-id too
            MetricsASGI(ServeStaticASGI(django_http, root=settings.STATIC_ROOT, prefix=settings.STATIC_URL))
        ),
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
