"""Server-side memory of Gemini 3 thought signatures, keyed by tool call id (mapping.md §5.3).

Signatures travel to OpenAI clients in `tool_calls[].extra_content.google.thought_signature`;
many clients drop that field when they send the history back. Gemini 3 then rejects the request,
so the gateway remembers each signature (written in batches by the background writer, never on
the request path) and restores missing ones with a single query, only for Gemini 3 requests.
The process also keeps its most recent signatures in memory: agents send the tool result back
sooner than the writer's batch interval (Claude Code: ~150 ms), before the row exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cachetools import LRUCache

from proxy_app.core import hub
from proxy_app.core.writer import writer

# Tool call id -> signature of this process's latest calls (used by the event loop only).
_recent: LRUCache[str, str] = LRUCache(maxsize=4096)


@dataclass(frozen=True)
class Signature:
    """A writer job: one tool call's thought signature."""

    tool_call_id: str
    signature: str


def clear_cache() -> None:
    """Forget the in-memory signatures (tests: as another process would see it)."""
    _recent.clear()


def remember(calls: Iterable[hub.ToolCall]) -> None:
    for call in calls:
        if call.thought_signature and call.id:
            _recent[call.id[:128]] = call.thought_signature
            writer.submit(Signature(call.id[:128], call.thought_signature))


def write_signatures(jobs: list[Signature]) -> None:
    """On the writer thread: a batch of signatures (a tool call id already stored keeps its first)."""
    from proxy_app.models import ThoughtSignature

    rows = [ThoughtSignature(tool_call_id=job.tool_call_id, signature=job.signature) for job in jobs]
    ThoughtSignature.objects.bulk_create(rows, ignore_conflicts=True)


writer.register(Signature, write_signatures)


async def restore(messages: list[hub.Message]) -> None:
    from proxy_app.models import ThoughtSignature

    unsigned = {c.id: c for m in messages for c in m.tool_calls if c.id and not c.thought_signature}
    for call_id in list(unsigned):
        signature = _recent.get(call_id[:128])
        if signature:
            unsigned.pop(call_id).thought_signature = signature
    if not unsigned:
        return
    async for row in ThoughtSignature.objects.filter(tool_call_id__in=list(unsigned)):
        unsigned[row.tool_call_id].thought_signature = row.signature
