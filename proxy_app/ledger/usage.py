"""Recording one UsageRecord per proxied request without a DB write on the request path.

`record()` builds the request's UsageRow, starts the settlement of its quota reservation, hands
the row to the background writer (proxy_app/core/writer.py) and to the access log and metrics.
The writer stores rows in batches (one bulk insert) and bumps `ApiKey.last_used_at`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from django.utils import timezone

from proxy_app.core import hub
from proxy_app.core.context import CallContext, UsageRow
from proxy_app.core.writer import writer
from proxy_app.ledger import pricing
from proxy_app.ops import detail_log, observability, tracing


def record(ctx: CallContext, *, status: int, usage: hub.Usage | None = None, error_code: str | None = "") -> None:
    """Queue the usage row for this request (once; later calls for the same request are ignored)."""
    if ctx.recorded:
        return
    ctx.recorded = True
    usage = usage or hub.Usage(source="estimated")
    now = time.monotonic()
    row = UsageRow(
        created_at=timezone.now(),
        request_id=ctx.request_id,
        user_id=ctx.user_id,
        api_key_id=ctx.key_id,
        key_prefix=ctx.key_prefix,
        dialect=ctx.dialect,
        endpoint=ctx.endpoint,
        requested_model=ctx.requested_model[:200],
        upstream_name=ctx.upstream_name,
        upstream_model=ctx.upstream_model[:200],
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cached_tokens=usage.cached_tokens,
        total_tokens=usage.total_tokens,
        token_source=usage.source,
        status=status,
        error_code=error_code or "",
        streamed=ctx.streamed,
        client_disconnected=ctx.disconnected,
        latency_ms=int((now - ctx.started) * 1000),
        ttft_ms=int((ctx.first_token_at - ctx.started) * 1000) if ctx.first_token_at else None,
        cost_usd=pricing.cost(ctx.upstream_model or ctx.requested_model, usage),
        detailed=detail_log.keep_current(ctx.upstream_name),
        attempts=ctx.attempts,
    )
    if ctx.admission is not None:
        _settle_soon(ctx.admission, usage, ctx.upstream_model)
    if ctx.upstream_hold is not None:
        _release_soon(ctx.upstream_hold, usage.total_tokens)
    writer.submit(row)
    observability.request_finished(row, client_ip=ctx.client_ip)  # access-log line and metrics
    if ctx.otel is not None:
        tracing.finish(ctx, row)


_settling: set[asyncio.Task] = set()


def _settle_soon(admission, usage: hub.Usage, model: str) -> None:
    """Settle the request's quota reservation (release its in-flight slot, correct the counters
    to the real usage) in a task: `record` runs in `finally` blocks, even under cancellation."""
    from proxy_app.ledger import quota

    task = asyncio.get_running_loop().create_task(quota.settle(admission, usage, model))
    _settling.add(task)
    task.add_done_callback(_settling.discard)


def _release_soon(hold, tokens: int) -> None:
    """Free the answering upstream's in-flight slot and count its real tokens (per-upstream limits)."""
    from proxy_app.ledger import upstream_limits

    task = asyncio.get_running_loop().create_task(upstream_limits.release(hold, tokens))
    _settling.add(task)
    task.add_done_callback(_settling.discard)


def write_usage_rows(rows: list[UsageRow]) -> None:
    """The writer thread's job for usage rows: one bulk insert, then each key's last use."""
    from accounts.models import ApiKey
    from proxy_app.models import UsageRecord

    UsageRecord.objects.bulk_create([UsageRecord(**vars(row)) for row in rows])
    last_used: dict[int, datetime] = {}
    for row in rows:
        if row.api_key_id and row.status != 401:
            last_used[row.api_key_id] = max(row.created_at, last_used.get(row.api_key_id, row.created_at))
    for key_id, when in last_used.items():
        ApiKey.objects.filter(pk=key_id).update(last_used_at=when)


writer.register(UsageRow, write_usage_rows)
