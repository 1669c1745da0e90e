"""The one shared outbound httpx.AsyncClient (per event loop), with explicit timeouts and limits.

All outbound HTTP goes through `get_client()`, so tests swap a single transport with
`set_transport()` (an httpx.MockTransport over the fake upstream) instead of patching code.
A client belongs to the loop that created it; keying by loop keeps test loops from sharing one.
"""

from __future__ import annotations

import asyncio
import weakref

import httpx
from django.conf import settings

from proxy_app import detail_log

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()
_transport: httpx.AsyncBaseTransport | None = None


def _new_client() -> httpx.AsyncClient:
    timeout = httpx.Timeout(
        connect=settings.UPSTREAM_CONNECT_TIMEOUT,
        read=settings.UPSTREAM_READ_TIMEOUT,
        write=settings.UPSTREAM_READ_TIMEOUT,
        pool=settings.UPSTREAM_CONNECT_TIMEOUT,
    )
    limits = httpx.Limits(
        max_connections=settings.UPSTREAM_MAX_CONNECTIONS,
        max_keepalive_connections=settings.UPSTREAM_MAX_CONNECTIONS,
        keepalive_expiry=30,
    )
    return httpx.AsyncClient(
        timeout=timeout, limits=limits, transport=_transport, follow_redirects=False,
        event_hooks={"request": [_trace_request]},
    )


async def _trace_request(request: httpx.Request) -> None:
    """Detailed logging's `upstream_request` stage (a context-variable lookup when it is off)."""
    content = request.content if isinstance(request.stream, httpx.ByteStream) else b""
    detail_log.upstream_request(request.method, str(request.url), dict(request.headers), content)


def get_client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = _clients[loop] = _new_client()
    return client


def set_transport(transport: httpx.AsyncBaseTransport | None) -> None:
    """Route every later outbound request through `transport` (tests); None restores the network."""
    global _transport
    _transport = transport
    _clients.clear()
