"""Operational signals of proxied requests: one JSON access-log line each, and Prometheus metrics.

Both come from the usage row that `usage.record()` builds once per proxied request: it calls
`request_finished(row)`, which writes the access line (logger `gateway.access`, configured in
settings.LOGGING: stdout and an optional rotating file) and updates the metrics. The line
carries the key's public prefix, never the key, and no prompt or answer text.

`MetricsASGI` sits ahead of Django in gateway_site/asgi.py: it serves `GET /metrics` (for the
client networks in METRICS_ALLOWED_NETWORKS) and counts requests in flight; doing that in ASGI
is exact for streams (the app returns after the last byte or the disconnect) and also covers
requests that record no usage row (model lists).

Labels stay bounded: dialect, HTTP status, and a model label that is a routing-table alias or a
known upstream model name, else "other" (clients choose model strings). Never keys or users.

Several processes: with PROMETHEUS_MULTIPROC_DIR set (before start; prometheus-client reads it
at import), every process writes its samples to files there and /metrics sums them. The
directory must be emptied when the gateway (all its processes) starts, or old values remain.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
from collections.abc import Callable

import orjson
from django.conf import settings
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_asgi_app, multiprocess

from gateway_site.client_ip import in_networks, parse_ip
from proxy_app.core.context import UsageRow

log = logging.getLogger(__name__)
access_log = logging.getLogger("gateway.access")

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
REGISTRY = CollectorRegistry(auto_describe=True)  # ours, not prometheus-client's global default
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)
LIMIT_CODES = frozenset({"rate_limit_exceeded", "insufficient_quota"})
UPSTREAM_FAILURES = frozenset({502, 503, 504})  # UpstreamError / UpstreamUnavailable / UpstreamTimeout
MODEL_LABEL_CAP = 100  # upstream model names learnt from successful calls, per process
CODE_LABEL_CAP = 50  # distinct upstream error codes, per process

REQUESTS = Counter("gateway_requests", "Proxied requests.", ["dialect", "model", "status"], registry=REGISTRY)
TOKENS = Counter(
    "gateway_tokens",
    "Tokens of proxied requests (kind: prompt or completion).",
    ["dialect", "model", "kind"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "gateway_request_duration_seconds",
    "Time from request start to the last byte.",
    ["dialect", "model"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
TTFT = Histogram(
    "gateway_time_to_first_token_seconds",
    "Time to the first streamed token.",
    ["dialect", "model"],
    buckets=TTFT_BUCKETS,
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    "gateway_requests_in_flight",
    "Requests being served now (ops paths excluded).",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
UPSTREAM_ERRORS = Counter(
    "gateway_upstream_errors",
    "Failed upstream calls (502, 503, 504) by error code.",
    ["upstream", "code"],
    registry=REGISTRY,
)
UPSTREAM_ATTEMPTS = Counter(
    "gateway_upstream_attempts",
    "Upstream calls by outcome (ok, rejected, rate_limited, server_error, unreachable); failover may make several.",
    ["upstream", "outcome"],
    registry=REGISTRY,
)
LIMIT_REFUSALS = Counter(
    "gateway_limit_refusals",
    "429 answers (rate limits and quotas) by error code.",
    ["dialect", "code"],
    registry=REGISTRY,
)


# ------------------------------------------------------------------------------------------------
# The hook


def request_finished(row: UsageRow, client_ip: str = "") -> None:
    """Access line and metrics for one finished request (the UsageRow that usage.record() built).

    Never raises: a fault here must not turn into a failed request.
    """
    try:
        if access_log.hasHandlers():  # both outputs may be switched off
            access_log.info(access_line(row, client_ip))
        observe(row)
    except Exception:
        log.exception("could not log or count request %s", getattr(row, "request_id", "?"))


def access_line(row: UsageRow, client_ip: str = "") -> dict:
    """The access-log fields, in a stable order. `client_ip` is the real client (the socket peer,
    or the forwarded client behind a GATEWAY_TRUSTED_PROXIES proxy; gateway_site/client_ip.py)."""
    return {
        "ts": row.created_at.isoformat(timespec="milliseconds"),
        "event": "request",
        "request_id": row.request_id,
        "client_ip": client_ip or None,
        "user_id": row.user_id,
        "key_prefix": row.key_prefix,
        "dialect": row.dialect,
        "endpoint": row.endpoint,
        "model": row.requested_model,
        "upstream": row.upstream_name,
        "upstream_model": row.upstream_model,
        "status": row.status,
        "error_code": row.error_code or None,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "reasoning_tokens": row.reasoning_tokens,
        "cached_tokens": row.cached_tokens,
        "total_tokens": row.total_tokens,
        "token_source": row.token_source,
        "latency_ms": row.latency_ms,
        "ttft_ms": row.ttft_ms,
        "streamed": row.streamed,
        "disconnected": row.client_disconnected,
        "attempts": row.attempts,
    }


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line (orjson): a dict message as is, other records as level/logger/message."""

    def format(self, record: logging.LogRecord) -> str:
        if isinstance(record.msg, dict):
            return orjson.dumps(record.msg, default=str).decode()
        payload = {"level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        return orjson.dumps(payload, default=str).decode()


def observe(row: UsageRow) -> None:
    dialect, status = row.dialect, row.status
    model = model_label(row.requested_model, status)
    _child(REQUESTS, dialect, model, str(status)).inc()
    if row.prompt_tokens:
        _child(TOKENS, dialect, model, "prompt").inc(row.prompt_tokens)
    if row.completion_tokens:
        _child(TOKENS, dialect, model, "completion").inc(row.completion_tokens)
    _child(LATENCY, dialect, model).observe(row.latency_ms / 1000)
    if row.ttft_ms is not None:
        _child(TTFT, dialect, model).observe(row.ttft_ms / 1000)
    if status in UPSTREAM_FAILURES:
        _child(UPSTREAM_ERRORS, row.upstream_name or "none", _code_label(row.error_code)).inc()
    elif status == 429 and row.error_code in LIMIT_CODES:
        _child(LIMIT_REFUSALS, dialect, row.error_code).inc()


def upstream_attempt(upstream: str, outcome: str) -> None:
    """One upstream call made (upstream names are the admin's, a bounded set)."""
    try:
        _child(UPSTREAM_ATTEMPTS, upstream or "none", outcome).inc()
    except Exception:
        log.exception("could not count an upstream attempt")


_children: dict[tuple, object] = {}


def _child(metric, *labels: str):
    """`metric.labels(*labels)`, cached: prometheus-client's lookup costs a few µs with its lock."""
    key = (metric, labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


# ------------------------------------------------------------------------------------------------
# Bounded labels

_CODE = re.compile(r"^[a-z0-9_]{1,48}$")
_MODEL = re.compile(r"^[A-Za-z0-9._:/-]{1,100}$")
_served: set[str] = set()
_codes: set[str] = set()


def model_label(requested: str, status: int) -> str:
    """`requested` when it names a known model (alias, mapped or listed upstream model), else "other"."""
    if not requested:
        return "none"
    known, names = _model_names(), _candidates(requested)
    for name in names:
        if name in known or name in _served:
            return name
    plain = names[-1]
    if status == 200 and len(_served) < MODEL_LABEL_CAP and _MODEL.match(plain):
        _served.add(plain)  # the upstream served it: a real model name, not a client's typo
        return plain
    return "other"


def _candidates(requested: str) -> tuple[str, ...]:
    """The name as sent, then as routing reads it (no `models/`, Ollama's `:latest`, grounding's `:search`)."""
    base = requested.removeprefix("models/")
    return (requested, base, base.removesuffix(":latest").removesuffix(":search"))


_model_names: Callable[[], frozenset[str]] = frozenset  # until the pipeline says where names come from


def known_models_from(source: Callable[[], frozenset[str]]) -> None:
    """Where the model names that get a label of their own come from: the pipeline passes its
    routing table's aliases and upstream models (a cached set, no query), so this module needs
    to import neither."""
    global _model_names
    _model_names = source


def _code_label(code: str) -> str:
    """Error codes are ours, but some come from upstream replies: keep their number bounded too."""
    if code in _codes:
        return code
    if len(_codes) < CODE_LABEL_CAP and _CODE.match(code or ""):
        _codes.add(code)
        return code
    return "other"


# ------------------------------------------------------------------------------------------------
# /metrics and in-flight, ahead of Django


def exposition_registry() -> CollectorRegistry:
    """What /metrics shows: this process's registry, or every process's files in multiprocess mode."""
    if not MULTIPROCESS:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


class MetricsASGI:
    """ASGI wrapper: `GET /metrics` for allowed client addresses; counts HTTP requests in flight."""

    path = "/metrics"

    def __init__(self, app) -> None:
        self.app = app
        self.metrics_app = make_asgi_app(exposition_registry())
        self.untracked = ("/health", "/admin/", "/" + settings.STATIC_URL.lstrip("/"))

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["path"] == self.path:
            return await self.serve_metrics(scope, receive, send)
        if scope["path"].startswith(self.untracked):
            return await self.app(scope, receive, send)
        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            IN_FLIGHT.dec()

    async def serve_metrics(self, scope, receive, send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            return await _plain(send, 405, b"Method not allowed; use GET.\n", [(b"allow", b"GET")])
        if not client_allowed(scope.get("client")):
            return await _plain(send, 403, b"Forbidden: see GATEWAY_METRICS_ALLOWED_IPS.\n")
        await self.metrics_app(scope, receive, send)


def client_allowed(client: tuple[str, int] | list | None) -> bool:
    """The client address is in METRICS_ALLOWED_NETWORKS. It is the real client (ClientIPASGI put
    it in the scope): the socket peer, or the forwarded client behind a GATEWAY_TRUSTED_PROXIES proxy.
    A unix socket or an odd server gives no address: refused."""
    return bool(client) and in_networks(parse_ip(str(client[0])), settings.METRICS_ALLOWED_NETWORKS)


async def _plain(send, status: int, body: bytes, headers: list | None = None) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


if MULTIPROCESS:
    # This process's live gauge (in flight) must stop counting once it exits.
    atexit.register(multiprocess.mark_process_dead, os.getpid())
