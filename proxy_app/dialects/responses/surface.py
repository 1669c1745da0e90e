"""The Responses dialect's HTTP surface: POST /v1/responses (+ input_tokens), GET and DELETE
/v1/responses/{id}, GET /v1/responses/{id}/input_items. Errors use the OpenAI body.

The key comes as `Authorization: Bearer` (the SDK, the Agents SDK, Codex's `env_key`). Every model,
on any upstream kind, is translated through the hub. Unless the request says `store: false`, a
finished response is saved (store.py) before its last byte is sent, so a client can continue
it with `previous_response_id` as soon as it has read it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from django.http import HttpRequest, HttpResponse
from django.urls import path, re_path

from accounts.authentication import KeyIdentity
from proxy_app.call import pipeline
from proxy_app.core import hub
from proxy_app.core.context import CallContext
from proxy_app.dialects.http import json_response, read_json, stream_response
from proxy_app.dialects.responses import request as rs
from proxy_app.dialects.responses import store
from proxy_app.dialects.surface import Dialect, bearer, endpoint, keep_alive, stream_frames, unknown_route
from proxy_app.dialects.validate import as_int, fail, one_of
from proxy_app.ledger import usage

DIALECT = Dialect("responses", bearer, rs.build_error, 'Bearer realm="gateway"')
# During long silences (thinking), so Codex's idle timeout and proxies keep the stream (§4).
KEEPALIVE = b": keepalive\n\n"
KEEPALIVE_SECONDS = 15.0


async def _parse(request: HttpRequest, identity: KeyIdentity) -> tuple[rs.ResponsesRequest, list[dict]]:
    body = read_json(request)
    previous = rs.previous_id(body)
    history = await store.history(previous, identity) if previous else []
    await store.resolve_references(body, history, identity)
    return rs.parse_responses_request(body, history), history


async def create(request: HttpRequest, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    parsed, history = await _parse(request, identity)
    req = parsed.chat
    ctx.requested_model = req.model
    response_id, created = rs.new_id("resp"), int(time.time())
    items = history + parsed.input_items
    if req.stream:
        events = await pipeline.run_stream(req, identity, ctx)
        encoder = rs.ResponseStreamEncoder(req.model, response_id, created, parsed.echo, parsed.calls)
        frames = _store_at_end(stream_frames(events, encoder), encoder, items if parsed.store else None, identity)
        return stream_response(keep_alive(frames, KEEPALIVE, KEEPALIVE_SECONDS), "text/event-stream")
    resp = await pipeline.run_chat(req, identity, ctx)
    obj = rs.build_response(resp, req.model, response_id, created, parsed.echo, parsed.calls)
    if parsed.store:
        await store.save(obj, items, identity)
    return json_response(obj)


async def _store_at_end(
    frames: AsyncIterator[bytes], encoder: rs.ResponseStreamEncoder, items: list[dict] | None, identity: KeyIdentity
) -> AsyncIterator[bytes]:
    """The frames; once the encoder has its final response (set before the terminal event's frames
    are yielded), a completed or incomplete one is saved before those frames go out."""
    saved = False
    async for frame in frames:
        if not saved and encoder.response is not None:
            saved = True
            if items is not None and encoder.response["status"] != "failed":
                await store.save(encoder.response, items, identity)
        yield frame


async def input_tokens(request: HttpRequest, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    """An estimate, as the other dialects' count paths (mapping.md §8): nothing is sent upstream."""
    parsed, _ = await _parse(request, identity)
    await pipeline.check_model(parsed.chat.model, identity, ctx)
    usage.record(ctx, status=200, usage=hub.Usage(source="estimated"))
    tools = sum(hub.estimate_tokens(f"{t.name}{t.description}{t.parameters}") for t in parsed.chat.tools)
    count = hub.estimate_prompt_tokens(parsed.chat.messages) + tools
    return json_response({"object": "response.input_tokens", "input_tokens": count})


async def retrieve(request: HttpRequest, identity: KeyIdentity, ctx: CallContext, response_id: str) -> HttpResponse:
    return json_response((await store.load(response_id, identity)).response)


async def delete(request: HttpRequest, identity: KeyIdentity, ctx: CallContext, response_id: str) -> HttpResponse:
    await store.delete(response_id, identity)
    return json_response({"id": response_id, "object": "response", "deleted": True})


def _query_int(request: HttpRequest, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.GET.get(name)
    if raw is None:
        return default
    if not raw.lstrip("-").isdigit():
        fail(name, f"'{name}' must be an integer")
    return as_int(int(raw), name, lo, hi)


async def input_items(request: HttpRequest, identity: KeyIdentity, ctx: CallContext, response_id: str) -> HttpResponse:
    """The stored input items, newest first unless `order=asc`; `after` = an item id (cursor)."""
    stored = await store.load(response_id, identity)
    limit = _query_int(request, "limit", 20, 1, 100)
    order = one_of(request.GET.get("order", "desc"), "order", ("asc", "desc"))
    items = list(stored.input_items)
    if order == "desc":
        items.reverse()
    after = request.GET.get("after")
    if after:
        ids = [i.get("id") for i in items]
        if after not in ids:
            fail("after", f"no input item with id {after!r} in this response")
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return json_response(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }
    )


_retrieve = endpoint(DIALECT, "GET", "responses.retrieve", retrieve)
_delete = endpoint(DIALECT, "DELETE", "responses.delete", delete)


async def one_response(request: HttpRequest, **kwargs) -> HttpResponse:
    """GET or DELETE /v1/responses/{id} (other methods: 405 naming GET)."""
    return await (_delete if request.method == "DELETE" else _retrieve)(request, **kwargs)


one_response.csrf_exempt = True

PREFIXES = ("/v1/responses",)
urlpatterns = [
    path("v1/responses", endpoint(DIALECT, "POST", "responses", create)),
    path("v1/responses/input_tokens", endpoint(DIALECT, "POST", "responses.input_tokens", input_tokens)),
    path("v1/responses/<str:response_id>", one_response),
    path(
        "v1/responses/<str:response_id>/input_items",
        endpoint(DIALECT, "GET", "responses.input_items", input_items),
    ),
]
fallbacks = [re_path(r"^v1/responses/(?P<rest>[\s\S]*)$", unknown_route(DIALECT))]
