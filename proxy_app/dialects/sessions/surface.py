"""The sessions dialect's HTTP surface: the earlier session proxies' /start_chat, /send_message, /end_chat, and the
REST resource /v1/sessions. Key in `Authorization: Bearer`; state in proxy_app.sessions.

Its routes must precede the OpenAI surface's `v1/` catch-all (see SURFACES). The chat page's routes
(proxy_app.chat_page) ride along here.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path, re_path

from accounts.authentication import KeyIdentity
from proxy_app.chat import sessions
from proxy_app.core.context import CallContext
from proxy_app.core.errors import Forbidden, GatewayError, InvalidRequest
from proxy_app.dialects.http import json_response, read_json, stream_response
from proxy_app.dialects.sessions import codec
from proxy_app.dialects.surface import Dialect, bearer, endpoint, error_response, unknown_route

DIALECT = Dialect("sessions", bearer, codec.build_error, 'Bearer realm="gateway"')


def _check_user(claimed: str | None, identity: KeyIdentity) -> None:
    if not codec.user_matches(claimed, identity.username, identity.user_id):
        raise Forbidden("'user_id' does not match the owner of this API key.", code="user_mismatch")


# ------------------------------------------------------------------------------ the earlier session proxies' API


async def start_chat(request: HttpRequest, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    new = codec.parse_start_chat(read_json(request))
    _check_user(new.user_id, identity)
    state = await sessions.create(identity, new, ctx)
    return json_response({"chat_id": state.chat_id})


async def send_message(request: HttpRequest, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    chat_id, message, user_id = codec.parse_send_message(read_json(request))
    _check_user(user_id, identity)
    _, text, usage = await sessions.reply(chat_id, message, identity, ctx)
    return json_response(codec.build_send_message_response(text, usage, chat_id))


async def end_chat(request: HttpRequest, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    chat_id, user_id = codec.parse_end_chat(read_json(request))
    _check_user(user_id, identity)
    await sessions.end(chat_id, identity.user_id)
    return json_response(codec.build_end_chat_response(chat_id))


# ------------------------------------------------------------------------------ /v1/sessions


async def create(request: HttpRequest, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    state = await sessions.create(identity, codec.parse_create_session(read_json(request)), ctx)
    return json_response(codec.build_session(state), status=201)


async def list_own(request: HttpRequest, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    include_ended = request.GET.get("include_ended", "").lower() in {"1", "true", "yes"}
    limit = request.GET.get("limit", "100")
    if not limit.isdigit() or not 1 <= int(limit) <= 100:
        raise InvalidRequest("'limit' must be an integer from 1 to 100.", param="limit")
    states = await sessions.list_for(identity.user_id, include_ended=include_ended, limit=int(limit))
    return json_response(codec.build_session_list(states))


async def retrieve(request: HttpRequest, identity: KeyIdentity, ctx: CallContext, chat_id: str) -> HttpResponse:
    """Own sessions only; ended ones too (read-only, with `ended_at`)."""
    return json_response(codec.build_session(await sessions.get(chat_id, identity.user_id, active=False)))


async def delete(request: HttpRequest, identity: KeyIdentity, ctx: CallContext, chat_id: str) -> HttpResponse:
    return json_response(codec.build_session(await sessions.end(chat_id, identity.user_id), with_history=False))


async def post_message(request: HttpRequest, identity: KeyIdentity, ctx: CallContext, chat_id: str) -> HttpResponse:
    message, stream = codec.parse_post_message(read_json(request))
    if not stream:
        _, text, usage = await sessions.reply(chat_id, message, identity, ctx)
        return json_response(codec.build_send_message_response(text, usage, chat_id))
    turn = await sessions.start_turn(chat_id, message, identity, ctx)
    return stream_response(_sse(turn), "text/event-stream")


async def _sse(turn: sessions.Turn):
    """SSE frames; after the first byte an error arrives in-band as an `error` event, then the end."""
    try:
        async for event in sessions.turn_events(turn):
            yield codec.sse_frame(event)
    except GatewayError as err:
        yield codec.sse_frame(codec.error_event(err))


def by_method(**views):
    """One path, several methods (each view from `endpoint`); others get 405 in this dialect's shape."""
    allowed = ", ".join(sorted(m.upper() for m in views))

    async def view(request: HttpRequest, **kwargs) -> HttpResponse:
        chosen = views.get(request.method.lower())
        if chosen is not None:
            return await chosen(request, **kwargs)
        err = InvalidRequest(
            f"Method {request.method} is not allowed here; use {allowed}.", code="method_not_allowed", status=405
        )
        response = error_response(DIALECT, err)
        response["Allow"] = allowed
        return response

    view.csrf_exempt = True
    return view


PREFIXES = ("/start_chat", "/send_message", "/end_chat", "/v1/sessions")
urlpatterns = [
    path("start_chat", endpoint(DIALECT, "POST", "start_chat", start_chat)),
    path("send_message", endpoint(DIALECT, "POST", "send_message", send_message)),
    path("end_chat", endpoint(DIALECT, "POST", "end_chat", end_chat)),
    path(
        "v1/sessions",
        by_method(
            get=endpoint(DIALECT, "GET", "sessions.list", list_own),
            post=endpoint(DIALECT, "POST", "sessions.create", create),
        ),
    ),
    path(
        "v1/sessions/<str:chat_id>",
        by_method(
            get=endpoint(DIALECT, "GET", "sessions.retrieve", retrieve),
            delete=endpoint(DIALECT, "DELETE", "sessions.delete", delete),
        ),
    ),
    path("v1/sessions/<str:chat_id>/messages", endpoint(DIALECT, "POST", "sessions.message", post_message)),
]
fallbacks = [re_path(r"^v1/sessions/(?P<rest>[\s\S]*)$", unknown_route(DIALECT))]
