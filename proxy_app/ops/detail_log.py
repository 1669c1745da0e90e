"""Detailed request logs for debugging translations: the earlier logging proxy's four stages per request.

Off by default; switched on globally or per upstream in the admin (LogSettings, Upstream). For a
traced request one JSON file is written, `<GATEWAY_DETAIL_LOG_DIR>/<day>/<request id>.json`, with:
`client_request`, `upstream_request`, `upstream_response` (for streams: every event, assembled),
`client_response` (for streams: the frames sent, assembled). Secrets are masked (auth headers,
`key=` in URLs) and inline media replaced by its size. Files are written by the usage writer
thread, never on the event loop; the directory is kept under GATEWAY_DETAIL_LOG_MAX_BYTES by
deleting the oldest files. The usage record of a traced request has `detailed = True`, and the
admin links it to its file.

When nothing is switched on, every hook below is one context-variable lookup.
"""

from __future__ import annotations

import contextvars
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings

from gateway_site.singleflight import SingleFlight
from proxy_app.core.writer import writer

SECRET_HEADERS = {"authorization", "x-goog-api-key", "api-key", "x-api-key", "cookie", "proxy-authorization"}
MEDIA_KEYS = {"data", "images", "file_data", "fileData", "bytes"}  # values that hold base64 media
_KEY_IN_URL = re.compile(r"([?&](?:key|api_key|access_token)=)[^&#\s]*", re.IGNORECASE)
_DATA_URL = re.compile(r"^data:([^;,]*);base64,(.*)$", re.DOTALL)
MAX_ASSEMBLED_BYTES = 2 * 1024 * 1024  # per stage: a runaway stream must not fill the disk

_current: contextvars.ContextVar[Trace | None] = contextvars.ContextVar("detail_trace", default=None)


@dataclass
class Trace:
    request_id: str
    stages: dict[str, Any] = field(default_factory=dict)
    upstream_events: list[Any] = field(default_factory=list)
    client_frames: list[bytes] = field(default_factory=list)
    size: int = 0
    keep: bool = False  # decided when the upstream is known (global or per-upstream switch)

    def add_event(self, event: Any) -> None:
        if self.size < MAX_ASSEMBLED_BYTES:
            self.upstream_events.append(redact(event))
            self.size += len(orjson.dumps(event, default=str))


# --- switches ---------------------------------------------------------------------------------

_switches: tuple[float, bool, frozenset[str]] = (0.0, False, frozenset())
_flight = SingleFlight()


async def switches() -> tuple[bool, frozenset[str]]:
    """(global switch, upstream names switched on), re-read from the DB every couple of seconds."""
    global _switches
    if time.monotonic() - _switches[0] > settings.MAPPING_CACHE_SECONDS:
        everything, names = await _flight.run("switches", sync_to_async(_read_switches))
        _switches = (time.monotonic(), everything, names)
    return _switches[1], _switches[2]


def _read_switches() -> tuple[bool, frozenset[str]]:
    from proxy_app.models import LogSettings, Upstream

    everything = settings.DETAIL_LOG_ALL or LogSettings.objects.filter(detailed_logging=True).exists()
    names = frozenset(Upstream.objects.filter(detailed_logging=True).values_list("name", flat=True))
    return everything, names


def clear_cache() -> None:
    global _switches
    _switches = (0.0, False, frozenset())


async def begin(request, request_id: str) -> Trace | None:
    """Start a trace for this request when any switch is on (decided for good once routed)."""
    everything, names = await switches()
    if not everything and not names:
        return None
    trace = Trace(request_id)
    trace.stages["client_request"] = {
        "method": request.method,
        "path": redact_url(request.get_full_path()),
        "headers": redact_headers(dict(request.headers)),
        "body": _body(request.body),
    }
    _current.set(trace)
    return trace


def keep_current(upstream_name: str) -> bool:
    """Called when the request's usage is recorded (its upstream known): keep its trace or not."""
    trace = _current.get()
    if trace is None:
        return False
    _, everything, names = _switches
    trace.keep = everything or upstream_name in names
    return trace.keep


# --- hooks called by the upstream clients ------------------------------------------------------


def tracing() -> bool:
    """Is this request being traced? (Lets callers skip building what they would hand in.)"""
    return _current.get() is not None


def client_body() -> Any:
    """The client's request body as detailed logging keeps it (media stripped), or None (tracing's prompt)."""
    trace = _current.get()
    stage = trace.stages.get("client_request") if trace is not None else None
    return stage["body"] if stage else None


def upstream_request(method: str, url: str, headers: dict, body: bytes | dict | None) -> None:
    trace = _current.get()
    if trace is not None:
        parsed = body if isinstance(body, dict) else _body(body or b"")
        trace.stages["upstream_request"] = {
            "method": method,
            "url": redact_url(url),
            "headers": redact_headers(headers),
            "body": parsed,
        }


def upstream_response(status: int, body: Any) -> None:
    trace = _current.get()
    if trace is not None:
        trace.stages["upstream_response"] = {"status": status, "body": redact(body)}


def upstream_event(event: Any) -> None:
    trace = _current.get()
    if trace is not None:
        trace.add_event(event)


def failed_attempt(upstream: str, upstream_model: str, err) -> None:
    """A pool member failed before answering: keep what was sent to it and what it said under
    `failed_attempts`, so the next member's stages start clean."""
    trace = _current.get()
    if trace is None:
        return
    attempt = {"upstream": upstream, "upstream_model": upstream_model, "status": err.status, "code": err.code}
    attempt["message"] = err.message
    for stage in ("upstream_request", "upstream_response"):
        if stage in trace.stages:
            attempt[stage] = trace.stages.pop(stage)
    if trace.upstream_events:
        attempt["upstream_events"], trace.upstream_events = trace.upstream_events, []
    trace.stages.setdefault("failed_attempts", []).append(attempt)


# --- the client's response and the file ---------------------------------------------------------


def client_response(trace: Trace, response) -> None:
    """Non-streamed: record now. Streamed: wrap the body to assemble what is sent, write at its end."""
    if not response.streaming:
        trace.stages["client_response"] = {"status": response.status_code, "body": _body(response.content)}
        _write(trace)
        return
    response.streaming_content = _assembled(trace, response.status_code, response.streaming_content)


async def _assembled(trace: Trace, status: int, frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for frame in frames:
            if trace.size < MAX_ASSEMBLED_BYTES:
                trace.client_frames.append(frame)
                trace.size += len(frame)
            yield frame
    finally:
        text = b"".join(trace.client_frames).decode("utf-8", "replace")
        trace.stages["client_response"] = {"status": status, "stream": text}
        _write(trace)


def _write(trace: Trace) -> None:
    if not trace.keep:
        return
    if trace.upstream_events:
        trace.stages["upstream_response"] = {"status": 200, "events": trace.upstream_events}
    day = time.strftime("%Y-%m-%d", time.gmtime())
    payload = orjson.dumps({"request_id": trace.request_id, **trace.stages}, default=str, option=orjson.OPT_INDENT_2)
    writer.submit(DetailLogFile(f"{day}/{safe_name(trace.request_id)}.json", payload))


def safe_name(request_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", request_id)[:128]


def path_for(request_id: str, day: str) -> Path:
    return Path(settings.DETAIL_LOG_DIR) / day / f"{safe_name(request_id)}.json"


@dataclass(frozen=True)
class DetailLogFile:
    """A writer job: one request's detail log, to be stored at DETAIL_LOG_DIR/`relative`."""

    relative: str
    payload: bytes


def write_files(jobs: list[DetailLogFile]) -> None:
    """On the writer thread: write the files, then keep the directory under its size cap."""
    root = Path(settings.DETAIL_LOG_DIR)
    for job in jobs:
        path = root / job.relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(job.payload)
    _enforce_cap(root)


writer.register(DetailLogFile, write_files)


def _enforce_cap(root: Path) -> None:
    files = sorted((p for p in root.glob("*/*.json")), key=lambda p: p.stat().st_mtime)
    total = sum(p.stat().st_size for p in files)
    while files and total > settings.DETAIL_LOG_MAX_BYTES:
        oldest = files.pop(0)
        total -= oldest.stat().st_size
        oldest.unlink(missing_ok=True)


# --- redaction ------------------------------------------------------------------------------------


def redact_url(url: str) -> str:
    return _KEY_IN_URL.sub(r"\1[redacted]", url)


def redact_headers(headers: dict) -> dict:
    return {k: ("[redacted]" if k.lower() in SECRET_HEADERS else v) for k, v in headers.items()}


def redact(value: Any, key: str = "") -> Any:
    """A copy with inline media replaced by its size; everything else kept for debugging."""
    if isinstance(value, dict):
        return {k: redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str):
        match = _DATA_URL.match(value)
        if match:
            return f"data:{match.group(1)};base64,[{len(match.group(2))} characters redacted]"
        if key in MEDIA_KEYS and len(value) > 64:
            return f"[{len(value)} base64 characters redacted]"
    return value


def _body(raw: bytes) -> Any:
    try:
        return redact(orjson.loads(raw)) if raw else None
    except orjson.JSONDecodeError:
        return raw[:4096].decode("utf-8", "replace")


def find(request_id: str) -> Path | None:
    """The detail log file of a request, newest day first."""
    name = f"{safe_name(request_id)}.json"
    matches = sorted(Path(settings.DETAIL_LOG_DIR).glob(f"*/{name}"), reverse=True)
    return matches[0] if matches else None
