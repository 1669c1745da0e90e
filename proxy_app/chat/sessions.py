"""Chat sessions: the only writer of ChatSession, and one message's trip through the pipeline.

Every surface (the earlier session proxies' endpoints, /v1/sessions, the WebSocket) calls these:

    state = await create(identity, new_chat)
    state, text, usage = await reply(chat_id, message, identity, ctx)        # not streamed
    turn = await start_turn(chat_id, message, identity, ctx)                 # streamed: errors
    async for event in turn_events(turn): ...                                #   before the first
                                                                             #   event raise here
The database is the source of truth (no session state in process memory), so any process can
answer any session and a restart loses nothing. One message at a time per session: `_claim` takes
a lease with a single conditional UPDATE (atomic on SQLite and PostgreSQL alike), the answer is
produced with no transaction open, and `_commit` appends both entries and frees the lease with
another conditional UPDATE. A second message while one is being answered gets 409 `chat_busy`.

An answer cut short (cancel, dropped client, upstream failure mid-stream) keeps the text the user
already saw, marked "partial": true, so the next message has the same context the user had; if
nothing arrived, the message is not kept either.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from accounts.authentication import KeyIdentity
from accounts.models import ApiKey
from accounts.services import KeyServiceError, issue_key
from proxy_app.call import pipeline
from proxy_app.chat.state import (
    ChatState,
    NewChat,
    answer_text,
    build_chat_request,
    delta_event,
    done_event,
    event_text,
    new_entries,
    trim_history,
)
from proxy_app.core import hub
from proxy_app.core.context import CallContext
from proxy_app.core.errors import InvalidRequest, NotFound, Unauthorized
from proxy_app.ledger import usage
from proxy_app.models import ChatSession

log = logging.getLogger(__name__)
WEB_KEY_NAME = "web-chat"  # the key the chat page's usage is recorded under (secret never shown)


def not_found(chat_id: str) -> NotFound:
    return NotFound(f"No active chat session '{chat_id}' for this user.", code="chat_not_found")


def _state(row: ChatSession) -> ChatState:
    return ChatState(
        chat_id=row.public_id,
        model=row.model,
        system_instruction=row.system_instruction,
        generation_config=dict(row.generation_config or {}),
        history=list(row.history or []),
        created_at=row.created_at,
        updated_at=row.updated_at,
        ended_at=row.ended_at,
        turns_dropped=row.turns_dropped,
    )


def _mine(chat_id: str, user_id: int, *, active: bool = True):
    rows = ChatSession.objects.filter(public_id=chat_id, user_id=user_id)
    return rows.filter(ended_at__isnull=True) if active else rows


# ------------------------------------------------------------------------------ reads and writes


async def create(identity: KeyIdentity, new: NewChat, ctx: CallContext) -> ChatState:
    """A new session; its model must resolve for this key now (unknown 404, not allowed 403)."""
    await pipeline.check_model(new.model, identity, ctx)
    return await database_sync_to_async(_create)(identity, new)


def _create(identity: KeyIdentity, new: NewChat) -> ChatState:
    row = ChatSession.objects.create(
        user_id=identity.user_id,
        api_key_id=identity.key_id,
        model=new.model,
        generation_config=new.generation_config,
        system_instruction=new.system_instruction,
    )
    return _state(row)


@database_sync_to_async
def get(chat_id: str, user_id: int, *, active: bool = True) -> ChatState:
    row = _mine(chat_id, user_id, active=active).first()
    if row is None:
        raise not_found(chat_id)
    return _state(row)


@database_sync_to_async
def list_for(user_id: int, *, include_ended: bool = False, limit: int = 100) -> list[ChatState]:
    rows = ChatSession.objects.filter(user_id=user_id)
    if not include_ended:
        rows = rows.filter(ended_at__isnull=True)
    return [_state(row) for row in rows.order_by("-created_at", "-id")[:limit]]


@database_sync_to_async
def end(chat_id: str, user_id: int) -> ChatState:
    """End an active session (unknown, ended or someone else's: 404). Its history stays for the admin."""
    now = timezone.now()
    if not _mine(chat_id, user_id).update(ended_at=now, updated_at=now):
        raise not_found(chat_id)
    return _state(ChatSession.objects.get(public_id=chat_id))


async def _claim(chat_id: str, user_id: int) -> tuple[ChatState, str]:
    """Take the session's lease. Cancelled meanwhile (a dropped client), a lease taken anyway is
    given back at once rather than left to expire."""
    job = asyncio.ensure_future(_take_lease(chat_id, user_id))
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        await asyncio.wait([job])
        if not job.cancelled() and job.exception() is None:
            await _commit(chat_id, job.result()[1], [])
        raise


@database_sync_to_async
def _take_lease(chat_id: str, user_id: int) -> tuple[ChatState, str]:
    now, token = timezone.now(), secrets.token_hex(16)
    free = Q(locked_until__isnull=True) | Q(locked_until__lt=now)
    lease = now + timedelta(seconds=settings.SESSION_LOCK_SECONDS)
    if _mine(chat_id, user_id).filter(free).update(locked_until=lease, lock_token=token):
        return _state(ChatSession.objects.get(public_id=chat_id)), token
    if _mine(chat_id, user_id).exists():
        raise InvalidRequest(
            "This chat session is still answering its previous message; wait for it (or cancel it) first.",
            code="chat_busy",
            status=409,
        )
    raise not_found(chat_id)


@database_sync_to_async
def _commit(chat_id: str, token: str, entries: list[dict]) -> None:
    """Append this message's entries (capped) and free the lease; only the lease holder writes history."""
    row = ChatSession.objects.filter(public_id=chat_id, lock_token=token).only("pk", "history").first()
    done = 0
    if row is not None:
        history, dropped = trim_history([*row.history, *entries], settings.SESSION_MAX_TURNS)
        done = ChatSession.objects.filter(pk=row.pk, lock_token=token).update(
            history=history,
            turns_dropped=F("turns_dropped") + dropped,
            locked_until=None,
            lock_token="",
            updated_at=timezone.now(),
        )
    if not done and entries:  # the lease expired and another message took the session over
        log.warning("chat session %s: lease lost, %d history entries not saved", chat_id, len(entries))


# ------------------------------------------------------------------------------ one message


async def reply(
    chat_id: str, message: str, identity: KeyIdentity, ctx: CallContext
) -> tuple[ChatState, str, hub.Usage]:
    """Answer one message, not streamed: (session before this message, answer text, usage)."""
    state, token = await _claim(chat_id, identity.user_id)
    entries: list[dict] = []
    req = build_chat_request(state, message)
    try:
        resp = await pipeline.run_chat(req, identity, ctx)
        text = answer_text(resp)
        entries = new_entries(message, text)
    except asyncio.CancelledError:
        record_cancelled(ctx, req)
        raise
    finally:
        await _commit(chat_id, token, entries)
    return state, text, resp.usage


@dataclass
class Turn:
    """One streamed message in flight: its session, lease, upstream events, and what arrived."""

    state: ChatState
    message: str
    token: str
    source: AsyncIterator[hub.StreamEvent]
    text: str = ""
    usage: hub.Usage | None = None


async def start_turn(chat_id: str, message: str, identity: KeyIdentity, ctx: CallContext) -> Turn:
    """Claim the session and open the upstream stream (up to its first event); errors raise here."""
    state, token = await _claim(chat_id, identity.user_id)
    req = build_chat_request(state, message, stream=True)
    try:
        source = await pipeline.run_stream(req, identity, ctx)
    except BaseException as exc:
        if isinstance(exc, asyncio.CancelledError):
            record_cancelled(ctx, req)
        await _commit(chat_id, token, [])
        raise
    return Turn(state, message, token, source)


async def turn_events(turn: Turn) -> AsyncIterator[dict]:
    """`delta` events as text arrives, then one `done` event. GatewayErrors after the first event
    propagate (the caller sends them in-band). However it ends, the history is saved."""
    complete = False
    try:
        async for event in turn.source:
            turn.usage = event.usage or turn.usage
            piece = event_text(event)
            if piece:
                turn.text += piece
                yield delta_event(piece)
        complete = True
    finally:
        await turn.source.aclose()  # ends the upstream call (and records usage) if we stop early
        await _commit(turn.state.chat_id, turn.token, new_entries(turn.message, turn.text, partial=not complete))
    yield done_event(turn.state.chat_id, turn.usage or hub.Usage(source="estimated"), turn.text)


def record_cancelled(ctx: CallContext, req: hub.ChatRequest) -> None:
    """A message cancelled before the stream tally took over (it records later cancellations)."""
    ctx.disconnected = True
    estimate = hub.Usage(prompt_tokens=hub.estimate_prompt_tokens(req.messages), source="estimated")
    usage.record(ctx, status=499, usage=estimate, error_code="client_disconnected")


# ------------------------------------------------------------------------------ the chat page's key


@database_sync_to_async
def web_identity(user) -> KeyIdentity:
    """The identity a logged-in member chats under on the page: their key named "web-chat", issued
    on first use through accounts.services (its secret is discarded, never shown). Quotas, limits
    and usage apply to it like to any key; revoking it in the admin shuts the page out."""
    key = ApiKey.objects.filter(user=user, name=WEB_KEY_NAME).first()
    if key is None:
        try:
            key, _secret = issue_key(user, name=WEB_KEY_NAME)
        except KeyServiceError:  # issued meanwhile by a concurrent request
            key = ApiKey.objects.get(user=user, name=WEB_KEY_NAME)
    identity = KeyIdentity(
        key_id=key.pk,
        user_id=user.pk,
        username=user.get_username(),
        prefix=key.prefix,
        allowed_models=tuple(key.allowed_models or ()),
        expires_at=key.expires_at,
        revoked=key.revoked_at is not None or not user.is_active,
    )
    if not identity.is_usable(timezone.now()):
        raise Unauthorized(f"Your '{WEB_KEY_NAME}' key is revoked or expired; ask an administrator.")
    return identity
