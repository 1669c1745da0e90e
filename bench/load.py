"""The load generator: send one fixed prompt to a target, N at a time, and time every answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from bench.servers import UPSTREAM_KEY, cpu_seconds, rss_mb

# 16 words: the fake echoes them after 4 of its own, one word per event -> a 20-chunk stream.
PROMPT = (
    "Write one short sentence about benchmarks that measure a gateway against the direct path, please, today, thanks."
)
MODEL = "gemini-2.5-flash"


class BadAnswer(Exception):
    """The response arrived but is not a correct answer (status, shape or empty text)."""


@dataclass
class Target:
    """How to ask one side (direct upstream or gateway) the prompt and how to read its answers."""

    name: str
    url: str
    stream_url: str
    headers: dict[str, str]
    body: dict
    stream_body: dict
    text_of: Callable[[dict], str]  # a non-streamed JSON answer -> its completion text
    delta_of: Callable[[dict], str]  # one SSE event -> its piece of text
    needs_done: bool  # the stream must end with `data: [DONE]`
    sent: int = 0  # every request sent, warm-ups included


@dataclass
class Run:
    """One measured scenario against one target."""

    scenario: str
    target: str
    stream: bool
    workers: int
    planned: int
    sent: int = 0
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    per_second: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)  # whole request / whole stream
    ttft_ms: dict[str, float] = field(default_factory=dict)  # first content event (streams)
    cpu_ms_per_request: dict[str, float] = field(default_factory=dict)
    error_kinds: dict[str, int] = field(default_factory=dict)
    warmup_errors: int = 0
    rss_mb: dict[str, float] = field(default_factory=dict)  # peak resident memory after the run


def _gemini_text(data: dict) -> str:
    try:
        return "".join(part.get("text", "") for part in data["candidates"][0]["content"]["parts"])
    except (KeyError, IndexError, TypeError):
        return ""


def _openai_text(data: dict, key: str) -> str:
    try:
        return data["choices"][0][key].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""


def direct_target(base_url: str) -> Target:
    body = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}
    models = f"{base_url}/v1beta/models/{MODEL}"
    return Target(
        "direct",
        f"{models}:generateContent",
        f"{models}:streamGenerateContent?alt=sse",
        {"x-goog-api-key": UPSTREAM_KEY},
        body,
        body,
        _gemini_text,
        _gemini_text,
        False,
    )


def gateway_target(base_url: str, api_key: str, name: str = "gateway", model: str = MODEL) -> Target:
    """An OpenAI-dialect side: this gateway (any server) or a peer gateway given on the command line."""
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}]}
    return Target(
        name,
        f"{base_url}/v1/chat/completions",
        f"{base_url}/v1/chat/completions",
        {"authorization": f"Bearer {api_key}"},
        {**body, "stream": False},
        {**body, "stream": True},
        lambda d: _openai_text(d, "message"),
        lambda d: _openai_text(d, "delta"),
        True,
    )


_SSL = ssl.create_default_context()


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    cuts = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else values * 99
    return {
        "p50": cuts[49],
        "p90": cuts[89],
        "p99": cuts[98],
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
    }


async def call(client: httpx.AsyncClient, target: Target, stream: bool) -> tuple[float, float | None]:
    """One checked request: (total ms, ms to the first content event or None). Raises on a bad answer."""
    target.sent += 1
    started = time.perf_counter()
    if not stream:
        resp = await client.post(target.url, json=target.body, headers=target.headers)
        if resp.status_code != 200:
            raise BadAnswer(f"HTTP {resp.status_code}")
        if not target.text_of(resp.json()):
            raise BadAnswer("empty completion")
        return (time.perf_counter() - started) * 1000, None
    first, text, done = None, [], False
    async with client.stream("POST", target.stream_url, json=target.stream_body, headers=target.headers) as resp:
        if resp.status_code != 200:
            await resp.aread()
            raise BadAnswer(f"HTTP {resp.status_code}")
        async for line in resp.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                continue
            piece = target.delta_of(json.loads(data))
            if piece and first is None:
                first = time.perf_counter()
            text.append(piece)
    if first is None:
        raise BadAnswer("stream without content")
    if target.needs_done and not done:
        raise BadAnswer("stream without [DONE]")
    return (time.perf_counter() - started) * 1000, (first - started) * 1000


async def _pool(
    clients: list[httpx.AsyncClient], target: Target, stream: bool, count: int, time_cap: float, run: Run | None
) -> int:
    """One loop per client shares `count` requests until done or `time_cap` s pass; returns errors."""
    deadline = time.perf_counter() + time_cap
    issued = errors = 0
    latencies: list[float] = []
    firsts: list[float] = []
    kinds: Counter[str] = Counter()

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal issued, errors
        while issued < count and time.perf_counter() < deadline:
            issued += 1
            try:
                total, first = await call(client, target, stream)
            except Exception as exc:  # every failure is counted, none stops the run
                errors += 1
                kinds[f"{type(exc).__name__}: {exc}"[:120]] += 1
                continue
            latencies.append(total)
            if first is not None:
                firsts.append(first)

    await asyncio.gather(*(worker(client) for client in clients))
    if run is not None:
        run.sent, run.ok, run.errors = issued, len(latencies), errors
        run.latency_ms, run.ttft_ms, run.error_kinds = summary(latencies), summary(firsts), dict(kinds)
    return errors


async def measure(
    scenario: str,
    target: Target,
    *,
    stream: bool,
    count: int,
    workers: int,
    time_cap: float,
    pids: dict[str, int],
    client: str = "aiohttp",
    warmup: int | None = None,
) -> Run:
    """Warm up fresh keep-alive clients, then run the scenario and return its figures.

    `client` is how the load generator talks: "aiohttp" (default) is one httpx client over
    httpx-aiohttp's transport, whose one aiohttp pool serves every worker at O(1) per request and
    costs about 0.35 ms of CPU per request here; "httpx" gives each worker its own httpx client (one
    kept-alive connection each, ~0.55 ms); "httpx-shared" is one httpx client for all, whose
    httpcore 1.0.9 pool scans every connection per request (~3.4 ms, encode/httpcore#1035): then
    the benchmark measures itself, not the servers. The lighter the load generator, the less it
    takes from the two cores the servers share with it.
    """
    run = Run(scenario, target.name, stream, workers, count)
    async with contextlib.AsyncExitStack() as stack:
        if client == "aiohttp":
            transport = AiohttpTransport(
                client=lambda: aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ssl=_SSL))
            )
            clients = [await stack.enter_async_context(httpx.AsyncClient(transport=transport, timeout=60.0))] * workers
        else:
            shared = client == "httpx-shared"
            size = workers + 8 if shared else 1
            limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
            # One SSL context for all clients (loopback is plain HTTP): building one per client loads
            # the CA bundle each time, which made 1000 clients cost the load generator seconds and ~1 GB.
            opened = [
                await stack.enter_async_context(httpx.AsyncClient(limits=limits, timeout=60.0, verify=_SSL))
                for _ in range(1 if shared else workers)
            ]
            clients = opened * workers if shared else opened
        warm = max(2 * workers, 10) if warmup is None else warmup
        run.warmup_errors = await _pool(clients, target, stream, warm, 10.0, None)
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        own_before = time.process_time()
        started = time.perf_counter()
        await _pool(clients, target, stream, count, time_cap, run)
        run.seconds = time.perf_counter() - started
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        cpu["loadgen"] = time.process_time() - own_before
    run.per_second = run.ok / run.seconds if run.seconds else 0.0
    run.cpu_ms_per_request = {name: 1000 * sec / max(run.sent, 1) for name, sec in cpu.items()}
    run.rss_mb = {name: rss_mb(pid) for name, pid in pids.items()}
    return run
