"""Recording one UsageRecord per proxied request without a DB write on the request path.

`record()` only appends to an in-memory queue. A dedicated writer thread (with its own DB
connection, so it never queues on Django's thread-sensitive worker) flushes every
USAGE_FLUSH_SECONDS or USAGE_BATCH_SIZE rows with one bulk insert, and also bumps
`ApiKey.last_used_at`. On a failed write the rows are kept and retried; at interpreter exit the
queue is flushed (daphne has no lifespan hooks, libraries.md finding 6).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connections
from django.utils import timezone

from proxy_app.core import hub
from proxy_app.ledger import pricing
from proxy_app.ops import detail_log, observability

log = logging.getLogger(__name__)
MAX_WRITE_ATTEMPTS = 20
_FLUSH_NOW: dict = {}  # sentinel queued by flush()


@dataclass
class CallContext:
    """Everything known about one proxied request; filled in as the request proceeds."""

    dialect: str
    endpoint: str
    request_id: str
    started: float = field(default_factory=time.monotonic)
    user_id: int | None = None
    key_id: int | None = None
    key_prefix: str = ""
    requested_model: str = ""
    upstream_name: str = ""
    upstream_model: str = ""
    streamed: bool = False
    disconnected: bool = False
    first_token_at: float | None = None
    recorded: bool = False
    admission: Any = None  # proxy_app.quota.Admission once the request was admitted

    def mark_first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()


def record(ctx: CallContext, *, status: int, usage: hub.Usage | None = None, error_code: str | None = "") -> None:
    """Queue the usage row for this request (once; later calls for the same request are ignored)."""
    if ctx.recorded:
        return
    ctx.recorded = True
    usage = usage or hub.Usage(source="estimated")
    now = time.monotonic()
    row = {
        "created_at": timezone.now(),
        "request_id": ctx.request_id,
        "user_id": ctx.user_id,
        "api_key_id": ctx.key_id,
        "key_prefix": ctx.key_prefix,
        "dialect": ctx.dialect,
        "endpoint": ctx.endpoint,
        "requested_model": ctx.requested_model[:200],
        "upstream_name": ctx.upstream_name,
        "upstream_model": ctx.upstream_model[:200],
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "cached_tokens": usage.cached_tokens,
        "total_tokens": usage.total_tokens,
        "token_source": usage.source,
        "status": status,
        "error_code": error_code or "",
        "streamed": ctx.streamed,
        "client_disconnected": ctx.disconnected,
        "latency_ms": int((now - ctx.started) * 1000),
        "ttft_ms": int((ctx.first_token_at - ctx.started) * 1000) if ctx.first_token_at else None,
        "cost_usd": pricing.cost(ctx.upstream_model or ctx.requested_model, usage),
        "detailed": detail_log.keep_current(ctx.upstream_name),
    }
    if ctx.admission is not None:
        _settle_soon(ctx.admission, usage, ctx.upstream_model)
    writer.submit(row)
    observability.request_finished(row)  # access-log line and metrics


_settling: set[asyncio.Task] = set()


def _settle_soon(admission, usage: hub.Usage, model: str) -> None:
    """Settle the request's quota reservation (release its in-flight slot, correct the counters
    to the real usage) in a task: `record` runs in `finally` blocks, even under cancellation."""
    from proxy_app.ledger import quota

    task = asyncio.get_running_loop().create_task(quota.settle(admission, usage, model))
    _settling.add(task)
    task.add_done_callback(_settling.discard)


class UsageWriter:
    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[dict] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._submitted = 0
        self._done = 0
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, row: dict) -> None:
        """Queue a row: a UsageRecord's fields, or {"signature": (tool_call_id, signature)}."""
        self._ensure_started()
        with self._cond:
            self._submitted += 1
        self._queue.put(row)

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything submitted so far is written (or dropped after retries)."""
        deadline = time.monotonic() + timeout
        self._queue.put(_FLUSH_NOW)  # wakes the writer out of its batching wait
        with self._cond:
            target = self._submitted
            while self._done < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def _ensure_started(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="usage-writer", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            batch = self._collect()
            if batch:
                self._write_with_retry(batch)

    def _collect(self) -> list[dict]:
        """Wait for a first row, then gather more for up to one flush interval (or a flush call)."""
        batch: list[dict] = []
        deadline = None
        while len(batch) < settings.USAGE_BATCH_SIZE:
            timeout = settings.USAGE_FLUSH_SECONDS if deadline is None else deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=max(timeout, 0))
            except queue.Empty:
                break
            if item is _FLUSH_NOW:
                break
            batch.append(item)
            deadline = deadline or time.monotonic() + settings.USAGE_FLUSH_SECONDS
        return batch

    def _write_with_retry(self, batch: list[dict]) -> None:
        for attempt in range(MAX_WRITE_ATTEMPTS):
            try:
                write_rows(batch)
                break
            except Exception:  # the DB may be locked or restarting: keep the rows and retry
                log.exception("usage write failed (attempt %d, %d rows)", attempt + 1, len(batch))
                connections.close_all()
                time.sleep(min(0.1 * 2**attempt, 5.0))
        else:
            log.error("usage rows lost after %d attempts: %d rows", MAX_WRITE_ATTEMPTS, len(batch))
        connections.close_all()  # this thread's connection goes back to the pool between batches
        with self._cond:
            self._done += len(batch)
            self._cond.notify_all()


def write_rows(items: list[dict]) -> None:
    from accounts.models import ApiKey
    from proxy_app.models import ThoughtSignature, UsageRecord

    for item in items:
        if "detail_log" in item:
            detail_log.write_file(*item["detail_log"])
    items = [i for i in items if "detail_log" not in i]
    signatures = [
        ThoughtSignature(tool_call_id=i["signature"][0], signature=i["signature"][1]) for i in items if "signature" in i
    ]
    if signatures:
        ThoughtSignature.objects.bulk_create(signatures, ignore_conflicts=True)
    rows = [i for i in items if "signature" not in i]
    UsageRecord.objects.bulk_create([UsageRecord(**row) for row in rows])
    last_used: dict[int, datetime] = {}
    for row in rows:
        if row["api_key_id"] and row["status"] != 401:
            last_used[row["api_key_id"]] = max(row["created_at"], last_used.get(row["api_key_id"], row["created_at"]))
    for key_id, when in last_used.items():
        ApiKey.objects.filter(pk=key_id).update(last_used_at=when)


writer = UsageWriter()
atexit.register(writer.flush)
