"""ASGI entry point: `gateway_site.asgi:application` (served by gateway_site.serve: uvicorn or daphne).

HTTP goes to Django (static files first, through ServeStatic); the proxy routes go to
proxy_app.edge, which runs their Django views without Django's per-request cycle.
WebSockets: ws/chat/ (the chat consumer, proxy_app.dialects.sessions.websocket), with Django's session cookie and
user in the scope for the chat page; no origin-validator wrapper on purpose (it refuses
non-browser clients; see the consumer).
ClientIPASGI (gateway_site/client_ip.py), outermost, puts the real client address in the scope.
GET /metrics is answered ahead of all that by proxy_app.observability.MetricsASGI, which also
counts HTTP requests in flight.
"""

from __future__ import annotations

import asyncio
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_site.settings")

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from servestatic import ServeStaticASGI  # noqa: E402

from gateway_site import logredact  # noqa: E402
from gateway_site.client_ip import ClientIPASGI  # noqa: E402
from gateway_site.middleware import RequestIdASGI, is_proxy_path  # noqa: E402
from proxy_app.call.edge import ProxyEdge  # noqa: E402
from proxy_app.ops.observability import MetricsASGI  # noqa: E402

django_app = get_asgi_application()
logredact.install()  # under any server that loads this app, keys in URLs are masked in its access log


# Proxy routes (API-key clients) skip Django's request cycle: proxy_app/call/edge.py says why and how.
proxy_edge = ProxyEdge(django_app)


async def django_http(scope, receive, send):
    handler = proxy_edge if is_proxy_path(scope["path"]) else django_app
    await handler(scope, receive, send)


async def lifespan(scope, receive, send):
    """ASGI lifespan (uvicorn, granian; daphne has none): at shutdown, after the server has let
    open requests finish (and cancelled those past its grace period), let the cancelled ones
    record their usage rows and give back their reservations, then write every queued row before the process exits."""
    from proxy_app.call import health
    from proxy_app.core.writer import writer
    from proxy_app.ledger import counters

    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await proxy_edge.drain(timeout=3)  # their cleanup runs at once; a stuck one must not hold the exit
            await counters.settled(timeout=2)  # give-backs of cancelled reservations reach Redis
            await health.settled(timeout=1)  # the last second's upstream attempt counts too
            await asyncio.to_thread(writer.flush)
            await send({"type": "lifespan.shutdown.complete"})
            return


from proxy_app.dialects.sessions.websocket import websocket_urlpatterns  # noqa: E402  (needs the apps loaded)

application = ProtocolTypeRouter(
    {
        "http": ClientIPASGI(  # outermost: everything after sees the real client (client_ip.py)
            RequestIdASGI(  # /metrics answers carry x-request-id too
                MetricsASGI(ServeStaticASGI(django_http, root=settings.STATIC_ROOT, prefix=settings.STATIC_URL))
            )
        ),
        "websocket": ClientIPASGI(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        "lifespan": lifespan,
    }
)
