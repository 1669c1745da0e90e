"""One proxied request as the gateway knows it: its CallContext while it runs, its UsageRow at the end.

Both are plain dataclasses and import nothing else of the gateway: the surfaces fill the context in
as the request proceeds, the ledger turns it into one UsageRow, and the access log, the metrics and
the background writer each read that row.
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any


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
    client_ip: str = ""  # the real client (gateway_site/client_ip.py): access log, key IP allow-lists
    requested_model: str = ""
    upstream_name: str = ""
    upstream_model: str = ""
    streamed: bool = False
    disconnected: bool = False
    first_token_at: float | None = None
    recorded: bool = False
    admission: Any = None  # proxy_app.ledger.quota.Admission once the request was admitted
    attempts: int = 0  # upstream calls made (proxy_app.call.failover)
    upstream_hold: Any = None  # proxy_app.ledger.upstream_limits.Hold of the member that answered
    signed_by: str = ""  # pooled Gemini calls: the member whose thought signatures the answer carries
    otel: Any = None  # proxy_app.ops.tracing.OpenSpan while the request's span is open (tracing on)

    def mark_first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()


@dataclass
class Departure:
    """Why a request was cancelled. The ASGI edge sets `client_left` when it cancels a request
    because its client hung up; any other cancellation is the server's (it stops after its grace
    period), and the request's usage row and stream end say so."""

    client_left: bool = False


departure: contextvars.ContextVar[Departure | None] = contextvars.ContextVar("departure", default=None)


def client_left() -> bool:
    """For a cancelled request: did its client go away? (Outside the edge, assume it did.)"""
    found = departure.get()
    return found is None or found.client_left


@dataclass
class UsageRow:
    """The fields of one UsageRecord (proxy_app.models), exactly: `UsageRecord(**vars(row))`.
    (Not frozen: a frozen dataclass sets each of its 25 fields through object.__setattr__, on
    every request.)"""

    created_at: datetime
    request_id: str
    user_id: int | None
    api_key_id: int | None
    key_prefix: str
    dialect: str
    endpoint: str
    requested_model: str
    upstream_name: str
    upstream_model: str
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cached_tokens: int
    total_tokens: int
    token_source: str
    status: int
    error_code: str
    streamed: bool
    client_disconnected: bool
    latency_ms: int
    ttft_ms: int | None
    cost_usd: Decimal
    detailed: bool
    attempts: int
