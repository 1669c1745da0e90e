"""Server-side memory of Gemini 3 thought signatures, keyed by tool call id (mapping.md §5.3).

Signatures travel to OpenAI clients in `tool_calls[].extra_content.google.thought_signature`;
many clients drop that field when they send the history back. Gemini 3 then rejects the request,
so the gateway remembers each signature (written in batches with the usage rows, never on the
request path) and restores missing ones with a single query, only for Gemini 3 requests.
"""

from __future__ import annotations

from collections.abc import Iterable

from proxy_app.core import hub
from proxy_app.ledger.usage import writer


def remember(calls: Iterable[hub.ToolCall]) -> None:
    for call in calls:
        if call.thought_signature and call.id:
            writer.submit({"signature": (call.id[:128], call.thought_signature)})


async def restore(messages: list[hub.Message]) -> None:
    from proxy_app.models import ThoughtSignature

    unsigned = {c.id: c for m in messages for c in m.tool_calls if c.id and not c.thought_signature}
    if not unsigned:
        return
    async for row in ThoughtSignature.objects.filter(tool_call_id__in=list(unsigned)):
        unsigned[row.tool_call_id].thought_signature = row.signature
