"""The ASGI edge of the proxy routes: proxy_app.urls' views served without Django's request cycle.

Admin, pages and static files keep Django's full stack (gateway_site/asgi.py sends them there).
The proxy paths (API-key clients) need none of it, and its fixed costs dominated a request:
the request_started / request_finished signals run `close_old_connections` through a thread hop
each, `response.close()` is another hop, the body goes through a SpooledTemporaryFile, and every
middleware is walked (libraries.md finding 2). Here the same URL patterns and the same views
run with only what they use:

    body (capped) -> ASGIRequest -> resolve in proxy_app.urls -> view, raced against the client's
    http.disconnect -> Django's own send_response (plain and streamed bodies)

A client that disconnects cancels the view, exactly as Django's handler does, so the pipeline's
`finally`/cancellation paths record usage and settle the quota reservation. Paths that match no
proxy route go to Django (its 404 handling and middleware).

The one thing the skipped signals did that still matters: recycling the DB connection of the
shared ORM thread (CONN_MAX_AGE=0, broken connections). That runs here at most once per
DB_RECYCLE_SECONDS, after a response, off the request's own time.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler, ASGIRequest
from django.db import close_old_connections
from django.http import HttpResponse
from django.urls import URLResolver, get_resolver
from django.urls.exceptions import Resolver404

from proxy_app.core import context

log = logging.getLogger(__name__)
BODY_STALLED = "gateway.body_stalled"  # request.META flag: the body stopped arriving (dialects/http.py: 408)
DB_RECYCLE_SECONDS = 1.0


class ProxyEdge(ASGIHandler):
    """Serves proxy_app.urls; `fallback` (Django's full handler) gets every path they don't match."""

    def __init__(self, fallback, urlconf: str = "proxy_app.urls") -> None:
        # Not ASGIHandler.__init__: no middleware chain is loaded or walked here.
        self.fallback = fallback
        self.resolver: URLResolver = get_resolver(urlconf)
        self._recycled_at = 0.0
        self._recycling: asyncio.Task | None = None
        self._in_flight: set[asyncio.Task] = set()

    async def drain(self, timeout: float) -> None:
        """Wait (up to `timeout`) for the requests in flight to end. At shutdown the server cancels
        those past its grace period and then moves on at once; their cleanup (the usage row, the
        in-band end of a stream) still has to run before the rows are flushed."""
        pending = [task for task in self._in_flight if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    async def __call__(self, scope, receive, send) -> None:
        try:
            match = self.resolver.resolve(scope["path"])
        except Resolver404:
            return await self.fallback(scope, receive, send)
        stalled = False
        try:
            async with asyncio.timeout(settings.BODY_READ_TIMEOUT):
                body = b"" if _declared_too_large(scope) else await _read_body(receive)
        except TimeoutError:  # the view answers 408 in its dialect's shape
            body, stalled = b"", True
        if body is None:  # the client left before its body arrived: nothing was started
            return
        request = ASGIRequest(scope, io.BytesIO(body))
        if stalled:
            request.META[BODY_STALLED] = True
        current = asyncio.current_task()
        self._in_flight.add(current)
        leaving = context.Departure()
        reset = context.departure.set(leaving)  # the view task copies this context, so it sees the same object
        view = asyncio.create_task(self._respond(request, match, send))
        context.departure.reset(reset)
        watch = asyncio.create_task(_disconnected(receive))
        try:
            await asyncio.wait((view, watch), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # Only the server cancels this task (a client leaving is seen by `watch`): its shutdown
            # grace period is over. The view is ended below, which ends a stream in-band and records
            # its usage; then this request is over, so the cancellation has done its job and goes no
            # further (re-raised, the server would log a traceback per open request and cut it).
            pass
        finally:  # never leave either task behind
            leaving.client_left = watch.done()  # the client hung up; any other cancellation is the server's
            for task in (watch, view):  # the watcher first: it never raises unexpectedly
                if not task.done():
                    task.cancel()
                try:
                    await task
                except asyncio.CancelledError:  # the client left: the view saw it as cancellation
                    pass
            self._in_flight.discard(current)
        self._recycle_db_soon()

    async def _respond(self, request: ASGIRequest, match, send) -> None:
        try:
            response = await match.func(request, *match.args, **match.kwargs)
            if getattr(response, "is_rendered", True) is False:  # DRF's Response (/health)
                response.render()
        except Exception:  # views answer their own errors; this is a bug of ours
            log.exception("unhandled error serving %s", request.path)
            response = HttpResponse(
                b'{"error": {"message": "The gateway failed to process this request."}}',
                status=500,
                content_type="application/json",
            )
        try:
            await self.send_response(response, send)
        except OSError:  # the socket went away mid-send (servers differ on how they say so)
            pass

    def _recycle_db_soon(self) -> None:
        now = time.monotonic()
        if now - self._recycled_at < DB_RECYCLE_SECONDS or self._recycling is not None:
            return
        self._recycled_at = now
        self._recycling = asyncio.get_running_loop().create_task(self._recycle_db())

    async def _recycle_db(self) -> None:
        try:
            await sync_to_async(close_old_connections)()  # on the shared thread the ORM calls use
        finally:
            self._recycling = None


def _declared_too_large(scope) -> bool:
    """A Content-Length over MAX_BODY_BYTES is answered 413 at once (the view checks the header),
    without reading a byte of the body: no waiting for gigabytes that may never come."""
    declared = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
    return declared.isdigit() and int(declared) > settings.MAX_BODY_BYTES


async def _read_body(receive) -> bytes | None:
    """The body, read until it ends or passes MAX_BODY_BYTES: then reading stops with one byte more
    than allowed kept (the view answers 413), and the rest is never read."""
    cap = settings.MAX_BODY_BYTES + 1
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        if chunk:
            chunks.append(chunk[: cap - size])
            size += len(chunks[-1])
        if size >= cap or not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _disconnected(receive) -> None:
    """Returns when the client disconnects (the only message left after the body)."""
    while (await receive())["type"] != "http.disconnect":
        pass
