"""The one shared outbound httpx.AsyncClient (per event loop), with explicit timeouts and a cap.

All outbound HTTP goes through `get_client()`, so tests swap a single transport with
`set_transport()` (an httpx.MockTransport over the fake upstream) instead of patching code.
A client belongs to the loop that created it; keying by loop keeps test loops from sharing one.

The transport under httpx is chosen by GATEWAY_UPSTREAM_TRANSPORT (measured in bench/):
"aiohttp" (default; httpx-aiohttp: aiohttp's connection pool, O(1) per request) or "httpx"
(httpcore's pool, which scans every pooled connection on each request and release). Either way
`CappedTransport` bounds the calls open at once to GATEWAY_UPSTREAM_MAX_CONNECTIONS: past it a
call fails at once with a 503 (Retry-After: 1) instead of waiting silently for a pool slot.
"""

from __future__ import annotations

import asyncio
import weakref

import httpx
from django.conf import settings

from proxy_app.ops import detail_log, tracing

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()
_transport: httpx.AsyncBaseTransport | None = None


class PoolFull(httpx.PoolTimeout):
    """Every one of the GATEWAY_UPSTREAM_MAX_CONNECTIONS slots is in use (mapped to 503)."""


class FirstByteTimeout(httpx.ReadTimeout):
    """The upstream's answer did not start within GATEWAY_UPSTREAM_FIRST_BYTE_TIMEOUT (mapped to 504)."""


class CappedTransport(httpx.AsyncBaseTransport):
    """At most `cap` requests open (from send until their response body is closed), and each one's
    answer must start within `first_byte` seconds (the read timeout then applies between bytes)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, cap: int, first_byte: float | None = None) -> None:
        self.inner, self.cap, self.open, self.first_byte = inner, cap, 0, first_byte

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.open >= self.cap:
            raise PoolFull(f"{self.open} upstream calls are open (GATEWAY_UPSTREAM_MAX_CONNECTIONS={self.cap})")
        self.open += 1
        try:
            async with asyncio.timeout(self.first_byte):
                response = await self.inner.handle_async_request(request)
        except TimeoutError:
            self.open -= 1
            raise FirstByteTimeout(f"no answer within {self.first_byte:g} s", request=request) from None
        except httpx.TransportError as exc:
            self.open -= 1
            raise _remapped(exc) from exc.__cause__
        except BaseException:
            self.open -= 1
            raise
        response.stream = _Released(response.stream, self)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Released(httpx.AsyncByteStream):
    def __init__(self, stream, owner: CappedTransport) -> None:
        self.stream, self.owner, self.closed = stream, owner, False

    async def __aiter__(self):
        try:
            async for chunk in self.stream:
                yield chunk
        except httpx.TransportError as exc:
            raise _remapped(exc) from exc.__cause__

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self.owner.open -= 1
        await self.stream.aclose()


def _remapped(exc: httpx.TransportError) -> httpx.TransportError:
    """httpx-aiohttp 0.2 maps every aiohttp connection error to ConnectTimeout (a refused port and a
    dropped stream would both read as 504): map them by what happened instead."""
    cause = exc.__cause__
    try:
        import aiohttp
    except ImportError:  # the plain httpx transport: its errors are already precise
        return exc
    if not isinstance(cause, aiohttp.ClientError):
        return exc
    message = str(cause) or type(cause).__name__
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message)
    if isinstance(cause, aiohttp.SocketTimeoutError | aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(message)
    if isinstance(cause, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message)
    if isinstance(cause, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
        return httpx.ReadError(message)
    return exc


def _network_transport() -> httpx.AsyncBaseTransport:
    # The cap is CappedTransport's: neither pool below may be the tighter bound (aiohttp's
    # default limit is 100 connections; limit=0 lifts it).
    if settings.UPSTREAM_TRANSPORT == "aiohttp":
        import aiohttp
        from httpx_aiohttp import AiohttpTransport

        def session() -> aiohttp.ClientSession:
            return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30))

        return AiohttpTransport(client=session)
    limits = httpx.Limits(
        max_connections=None, max_keepalive_connections=settings.UPSTREAM_MAX_CONNECTIONS, keepalive_expiry=30
    )
    return httpx.AsyncHTTPTransport(limits=limits, trust_env=False)


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing. The client is shared by every user's requests: a cookie one
    upstream reply sets must never ride along on another user's call (and skipping the jar saves
    the urllib request wrapper httpx builds per response to parse Set-Cookie)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


def _new_client() -> httpx.AsyncClient:
    timeout = httpx.Timeout(
        connect=settings.UPSTREAM_CONNECT_TIMEOUT,
        read=settings.UPSTREAM_READ_TIMEOUT,
        write=settings.UPSTREAM_READ_TIMEOUT,
        pool=settings.UPSTREAM_CONNECT_TIMEOUT,
    )
    transport = CappedTransport(
        _transport or _network_transport(), settings.UPSTREAM_MAX_CONNECTIONS, settings.UPSTREAM_FIRST_BYTE_TIMEOUT
    )
    if tracing.on:  # one span per upstream call, traceparent on it (decided per client, not per call)
        transport = tracing.TracedTransport(transport)
    client = httpx.AsyncClient(
        timeout=timeout,
        transport=transport,
        follow_redirects=False,
        trust_env=False,
        event_hooks={"request": [_trace_request]},
    )
    client._cookies = _NoCookies()  # the `cookies` setter would wrap it in a plain Cookies (httpx 0.28)
    return client


async def _trace_request(request: httpx.Request) -> None:
    """Detailed logging's `upstream_request` stage (a context-variable lookup when it is off)."""
    if not detail_log.tracing():
        return
    content = request.content if isinstance(request.stream, httpx.ByteStream) else b""
    detail_log.upstream_request(request.method, str(request.url), dict(request.headers), content)


def get_client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = _clients[loop] = _new_client()
    return client


_media_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()


def get_media_client() -> httpx.AsyncClient:
    """The client that fetches image/file URLs (proxy_app.call.media), per loop. Always httpcore's
    transport: media.py pins each fetch to the address it validated (an IP-literal URL plus the
    `sni_hostname` extension and a Host header), which the aiohttp transport cannot do. No
    keep-alive: a pooled connection is keyed by IP, and must never serve a second host name whose
    certificate it never checked. TLS trust: certifi, or SSL_CERT_FILE / SSL_CERT_DIR when set."""
    loop = asyncio.get_running_loop()
    client = _media_clients.get(loop)
    if client is None or client.is_closed:
        network = httpx.AsyncHTTPTransport(
            verify=httpx.create_ssl_context(trust_env=True),
            limits=httpx.Limits(max_keepalive_connections=0),
            trust_env=False,  # no HTTP(S)_PROXY: a proxy would resolve the name again, unpinned
        )
        client = _media_clients[loop] = httpx.AsyncClient(
            transport=_transport or network, follow_redirects=False, trust_env=False, timeout=None
        )
        client._cookies = _NoCookies()
    return client


def set_transport(transport: httpx.AsyncBaseTransport | None) -> None:
    """Route every later outbound request through `transport` (tests); None restores the network."""
    global _transport
    _transport = transport
    reset_clients()


def reset_clients() -> None:
    """Drop the clients, so the next call builds one from the current settings (tests)."""
    _clients.clear()
    _media_clients.clear()
