"""WebSocket chat at ws://HOST:PORT/ws/chat/: one socket, one member, sessions answered token by token.

Protocol (JSON text frames; every server event has a "type"):

    authenticate, one of:
      header  `Authorization: Bearer <key>` on the handshake        (non-browser clients)
      first message {"type": "auth", "key": "<key>"}                 (browsers cannot set headers)
      the Django login session cookie, same-origin only              (the chat page, /chat/)
    -> {"type": "ready", "user": "alice", "auth": "header" | "message" | "session"}
    {"type": "start", "model", "system_instruction"?, "generation_config"?} -> {"type": "started", "chat_id", "model"}
    {"type": "resume", "chat_id"}  -> {"type": "resumed", "chat_id", "model", "system_instruction", "history"}
    {"type": "message", "text"}    -> {"type": "delta", "text"} ... then {"type": "done", "chat_id", "usage", "text"}
    {"type": "cancel"}             -> {"type": "cancelled", "chat_id"} (the upstream call ends)
    {"type": "end"}                -> {"type": "ended", "chat_id"}
    any failure                    -> {"type": "error", "code", "message"}

Keys never go in the URL (it reaches access logs). A bad key closes the socket with code 4401; so
does a key revoked while the socket is open (checked again on every message, like on HTTP) and a
socket that does not authenticate within AUTH_TIMEOUT_SECONDS.
A cancelled answer or a dropped socket cancels the answering task: the pipeline's tally ends the
upstream call and records usage (status 499, client_disconnected), and the partial answer stays in
the history marked "partial" (proxy_app.sessions).

Origins: the route is not wrapped in Channels' AllowedHostsOriginValidator, which refuses every
handshake without an Origin header, i.e. every non-browser client. A foreign Origin only matters
with cookie authentication (cross-site WebSocket hijacking), so the cookie is honoured only when
the Origin is absent or the page's own (or in CSRF_TRUSTED_ORIGINS); key authentication works
from anywhere, like the HTTP API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import urlparse

import orjson
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.urls import path

from accounts.authentication import AuthFailure, KeyIdentity, authenticate_secret, bearer_secret
from gateway_site.client_ip import scope_ip
from proxy_app.chat import sessions
from proxy_app.core.context import CallContext
from proxy_app.core.errors import GatewayError, InvalidRequest, Unauthorized
from proxy_app.dialects.sessions import codec
from proxy_app.dialects.surface import address_refused
from proxy_app.ledger import usage

log = logging.getLogger(__name__)
UNAUTHORIZED_CLOSE = 4401
AUTH_TIMEOUT_SECONDS = 30  # a socket that never authenticates is closed after this long


def _header(scope: dict, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == name), "")


def same_origin(scope: dict) -> bool:
    """No Origin (not a browser), the socket's own host, or a trusted origin."""
    origin = _header(scope, b"origin")
    if not origin:
        return True
    return urlparse(origin).netloc == _header(scope, b"host") or origin in settings.CSRF_TRUSTED_ORIGINS


class ChatConsumer(AsyncJsonWebsocketConsumer):
    identity: KeyIdentity | None = None
    reauthenticate: Callable[[], Awaitable[KeyIdentity]] | None = None  # re-checked per message
    auth_timer: asyncio.Task | None = None
    chat_id: str | None = None
    task: asyncio.Task | None = None  # the running answer
    stopping = False  # set with the task's cancel: a cancel landing in a thread hop can be swallowed

    async def connect(self) -> None:
        await self.accept()
        header = _header(self.scope, b"authorization")
        user = self.scope.get("user")
        if header:
            await self._authenticate_key(bearer_secret(header), "header")
        elif user is not None and user.is_authenticated and same_origin(self.scope):
            try:
                self.identity = await sessions.web_identity(user)
            except GatewayError as err:
                return await self._refuse(err)
            self.reauthenticate = lambda: sessions.web_identity(user)
            await self._ready("session")
        else:
            self.auth_timer = asyncio.create_task(self._auth_deadline())

    async def disconnect(self, code: int) -> None:
        """A dropped socket: stop the answer (ends the upstream call, records usage, saves history)."""
        if self.auth_timer is not None:
            self.auth_timer.cancel()
        if self.task is not None and not self.task.done():
            await self._stop_answer()

    # ---------------------------------------------------------------- incoming

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            content = orjson.loads(text_data or bytes_data or b"")
        except orjson.JSONDecodeError:
            return await self._error(InvalidRequest("Messages must be JSON objects.", code="invalid_json"))
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            err = InvalidRequest("Messages must be JSON objects with a 'type'.", code="invalid_message")
            return await self._error(err)
        await self.receive_json(content)

    async def receive_json(self, content: dict, **kwargs) -> None:
        kind = content["type"]
        if self.identity is None:
            if kind == "auth" and isinstance(content.get("key"), str):
                return await self._authenticate_key(content["key"], "message")
            return await self._refuse(Unauthorized('Authenticate first: send {"type": "auth", "key": "..."}.'))
        if kind != "cancel" and not await self._still_authorized():
            return
        handler = self.HANDLERS.get(kind)
        if handler is None:
            known = ", ".join(sorted(self.HANDLERS))
            err = InvalidRequest(f"Unknown message type '{kind}' (use: {known}).", code="unknown_type")
            return await self._error(err)
        ctx = self._ctx(f"ws.{kind}")
        try:
            await handler(self, content, ctx)
        except GatewayError as err:
            usage.record(ctx, status=err.status, error_code=err.code)
            await self._error(err)

    async def on_start(self, content: dict, ctx: CallContext) -> None:
        self._idle()
        state = await sessions.create(self.identity, codec.parse_create_session(content), ctx)
        self.chat_id = state.chat_id
        await self.send_json({"type": "started", "chat_id": state.chat_id, "model": state.model})

    async def on_resume(self, content: dict, ctx: CallContext) -> None:
        self._idle()
        chat_id = content.get("chat_id")
        if not isinstance(chat_id, str) or not chat_id:
            raise InvalidRequest("'chat_id' is required.", param="chat_id")
        state = await sessions.get(chat_id, self.identity.user_id)
        self.chat_id = state.chat_id
        await self.send_json(
            {
                "type": "resumed",
                "chat_id": state.chat_id,
                "model": state.model,
                "system_instruction": state.system_instruction,
                "history": state.history,
            }
        )

    async def on_message(self, content: dict, ctx: CallContext) -> None:
        text = content.get("text")
        if not isinstance(text, str) or not text.strip():
            raise InvalidRequest("'text' is required and must be a non-empty string.", param="text")
        chat_id = self._current()
        self._idle()
        self.stopping = False
        self.task = asyncio.create_task(self._answer(chat_id, text))

    async def on_cancel(self, content: dict, ctx: CallContext) -> None:
        if self.task is None or self.task.done():
            raise InvalidRequest("No answer is running.", code="nothing_to_cancel")
        await self._stop_answer()
        await self.send_json({"type": "cancelled", "chat_id": self.chat_id})

    async def on_end(self, content: dict, ctx: CallContext) -> None:
        self._idle()
        state = await sessions.end(self._current(), self.identity.user_id)
        self.chat_id = None
        await self.send_json({"type": "ended", "chat_id": state.chat_id})

    HANDLERS = {"start": on_start, "resume": on_resume, "message": on_message, "cancel": on_cancel, "end": on_end}

    # ---------------------------------------------------------------- the answer

    async def _answer(self, chat_id: str, text: str) -> None:
        ctx = self._ctx("ws.message")
        try:
            turn = await sessions.start_turn(chat_id, text, self.identity, ctx)
            async with contextlib.aclosing(sessions.turn_events(turn)) as events:
                async for event in events:
                    if self.stopping:
                        raise asyncio.CancelledError  # closing `events` ends the upstream call
                    await self.send_json(event)
        except GatewayError as err:
            usage.record(ctx, status=err.status, error_code=err.code)
            await self._error(err)
        except Exception:  # a bug of ours (or the socket is gone): the socket stays usable
            log.exception("websocket chat answer failed")
            usage.record(ctx, status=500, error_code="internal_error")
            with contextlib.suppress(Exception):
                await self._error(GatewayError("The gateway failed to answer this message."))

    async def _stop_answer(self) -> None:
        self.stopping = True
        self.task.cancel()
        await asyncio.wait([self.task])

    # ---------------------------------------------------------------- helpers

    def _ctx(self, endpoint: str) -> CallContext:
        ctx = CallContext(dialect="sessions", endpoint=endpoint, request_id=f"ws_{uuid.uuid4().hex}")
        ctx.client_ip = scope_ip(self.scope)
        if self.identity is not None:
            ctx.user_id, ctx.key_id, ctx.key_prefix = self.identity.user_id, self.identity.key_id, self.identity.prefix
        return ctx

    def _current(self) -> str:
        if self.chat_id is None:
            raise InvalidRequest("No chat session yet: send 'start' or 'resume' first.", code="no_chat")
        return self.chat_id

    def _idle(self) -> None:
        if self.task is not None and not self.task.done():
            raise InvalidRequest(
                "An answer is still running; wait for 'done' or send 'cancel'.", code="chat_busy", status=409
            )

    async def _authenticate_key(self, secret: str, how: str) -> None:
        try:
            self.identity = await self._key_identity(secret)
        except AuthFailure as exc:
            return await self._refuse(Unauthorized(str(exc)))
        except GatewayError as err:  # outside the key's IP allow-list
            return await self._refuse(err)
        self.reauthenticate = lambda: self._key_identity(secret)  # the secret stays in this process only
        if self.auth_timer is not None:
            self.auth_timer.cancel()
        await self._ready(how)

    async def _key_identity(self, secret: str) -> KeyIdentity:
        identity = await authenticate_secret(secret)
        if not identity.allows_address(scope_ip(self.scope)):
            raise address_refused(scope_ip(self.scope))
        return identity

    async def _still_authorized(self) -> bool:
        """A key revoked or expired (or a member deactivated) while the socket is open stops working
        here too, as on HTTP: within GATEWAY_KEY_CACHE_SECONDS."""
        try:
            self.identity = await self.reauthenticate()
        except AuthFailure as exc:
            await self._refuse(Unauthorized(str(exc)))
            return False
        except GatewayError as err:
            await self._refuse(err)
            return False
        return True

    async def _auth_deadline(self) -> None:
        await asyncio.sleep(AUTH_TIMEOUT_SECONDS)
        if self.identity is None:
            await self._refuse(Unauthorized(f"No authentication within {AUTH_TIMEOUT_SECONDS} seconds."))

    async def _ready(self, how: str) -> None:
        await self.send_json({"type": "ready", "user": self.identity.username, "auth": how})

    async def _error(self, err: GatewayError) -> None:
        await self.send_json(codec.error_event(err))

    async def _refuse(self, err: GatewayError) -> None:
        await self._error(err)
        await self.close(code=UNAUTHORIZED_CLOSE)


websocket_urlpatterns = [path("ws/chat/", ChatConsumer.as_asgi())]
