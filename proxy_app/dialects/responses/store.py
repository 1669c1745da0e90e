"""Stored responses (responses.md §6): save a finished response with its expanded input, load it
back for `previous_response_id`, GET, DELETE and input_items, always scoped to the key's user.

The only writer of proxy_app.models.StoredResponse; the codecs never touch the database. Items
get ids when stored (`msg_…` for messages without one, `fc_…`/`fco_…` for calls and outputs), so
input_items can list them and `item_reference` input items can name them. Rows older than
GATEWAY_RESPONSES_RETENTION_DAYS read as unknown and are deleted by `prune` (the
`prune_responses` command).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from accounts.authentication import KeyIdentity
from proxy_app.core.errors import NotFound
from proxy_app.dialects.responses.response import new_id
from proxy_app.dialects.validate import fail
from proxy_app.models import StoredResponse

REFERENCE_SCAN = 100  # how many of the user's latest stored responses an item_reference is looked up in
ID_PREFIXES = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "custom_tool_call": "ctc",
    "custom_tool_call_output": "ctco",
    "reasoning": "rs",
    "tool_search_call": "tsc",
    "tool_search_output": "tso",
}


def not_found(response_id: str, param: str | None = None) -> NotFound:
    code = "previous_response_not_found" if param else "not_found"
    return NotFound(f"Response with id '{response_id}' not found.", code=code, param=param)


def with_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        kind = item.get("type", "message")
        item = {"type": kind, **item}
        if not item.get("id"):
            item["id"] = new_id(ID_PREFIXES.get(kind, "item"))
        out.append(item)
    return out


async def load(response_id: str, identity: KeyIdentity, param: str | None = None) -> StoredResponse:
    """The user's stored response, else 404 (unknown, deleted, store: false, or someone else's)."""
    rows = StoredResponse.objects.filter(response_id=response_id, user_id=identity.user_id)
    cutoff = retention_cutoff()
    if cutoff is not None:
        rows = rows.filter(created_at__gte=cutoff)
    stored = await rows.afirst()
    if stored is None:
        raise not_found(response_id, param)
    return stored


async def history(response_id: str, identity: KeyIdentity) -> list[dict[str, Any]]:
    """What `previous_response_id` continues: that response's expanded input, then its output."""
    stored = await load(response_id, identity, param="previous_response_id")
    return list(stored.input_items) + list(stored.response.get("output") or [])


async def resolve_references(body: Any, history: list[dict[str, Any]], identity: KeyIdentity) -> None:
    """Replace the `item_reference` items of `body["input"]` by the stored items they name: first
    among `history` (what previous_response_id continues), then among the input and output items of
    the user's REFERENCE_SCAN latest stored responses. An unknown id is a 400 naming the item."""
    items = body.get("input") if isinstance(body, dict) else None
    if not isinstance(items, list):
        return
    wanted = {
        i: item.get("id")
        for i, item in enumerate(items)
        if isinstance(item, dict) and item.get("type") == "item_reference"
    }
    if not wanted:
        return
    found = {item.get("id"): item for item in history if isinstance(item, dict) and item.get("id")}
    if any(ref not in found for ref in wanted.values()):
        rows = StoredResponse.objects.filter(user_id=identity.user_id)
        cutoff = retention_cutoff()
        if cutoff is not None:
            rows = rows.filter(created_at__gte=cutoff)
        async for row in rows.order_by("-created_at")[:REFERENCE_SCAN]:
            for item in list(row.input_items) + list(row.response.get("output") or []):
                if isinstance(item, dict) and item.get("id"):
                    found.setdefault(item["id"], item)
            if all(ref in found for ref in wanted.values()):
                break
    for i, ref in wanted.items():
        if not isinstance(ref, str) or ref not in found:
            fail(f"input[{i}].id", f"no stored item with id {ref!r} (item_reference)")
        items[i] = found[ref]


async def save(response: dict[str, Any], items: list[dict[str, Any]], identity: KeyIdentity) -> None:
    await StoredResponse.objects.acreate(
        response_id=response["id"],
        user_id=identity.user_id,
        api_key_id=identity.key_id,
        model=response.get("model", ""),
        response=response,
        input_items=with_ids(items),
    )


async def delete(response_id: str, identity: KeyIdentity) -> None:
    deleted, _ = await StoredResponse.objects.filter(response_id=response_id, user_id=identity.user_id).adelete()
    if not deleted:
        raise not_found(response_id)


def retention_cutoff():
    """The oldest creation time still kept, or None when responses are kept forever."""
    days = settings.RESPONSES_RETENTION_DAYS
    return timezone.now() - timedelta(days=days) if days else None


def prune(days: int | None = None) -> int:
    """Delete stored responses older than `days` (default: the setting; 0 keeps all); the count."""
    days = settings.RESPONSES_RETENTION_DAYS if days is None else days
    if not days:
        return 0
    deleted, _ = StoredResponse.objects.filter(created_at__lt=timezone.now() - timedelta(days=days)).delete()
    return deleted
