"""`python -m bench`: start the fake upstreams, run every scenario against each side, print and save.

Sides, in this order: `direct` (the fake Gemini itself), this gateway under each `--servers`
entry (one at a time, on the same SQLite database), and each `--peer NAME=COMMAND`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.load import Run, Target, direct_target, gateway_target, measure
from bench.report import machine, save, table
from bench.servers import Stack

SLOW_DELAY = 0.2  # seconds between the slow fake's events: 20 chunks -> about 3.8 s per stream


@dataclass
class Plan:
    """How much load each scenario sends (a count and a time cap: whichever ends first)."""

    sequential: int = 300  # non-streamed, one after another
    streams: int = 200  # streamed, one after another
    requests: int = 3000  # non-streamed, `concurrency` workers (and again with 4x workers)
    concurrency: int = 32
    concurrent_streams: int = 1000
    stream_concurrency: int = 16
    slow_streams: int = 1000  # all at once, against the slow fake (0: skip)
    time_cap: float = 10.0  # seconds per concurrent run; sequential runs get twice that
    chunk_delay: float = 0.0  # seconds between the fake upstream's SSE events
    client: str = "aiohttp"  # the load generator's HTTP client: aiohttp, httpx (one per worker), httpx-shared
    servers: list[str] = field(default_factory=lambda: ["uvicorn"])  # gateway sides: SERVER[xWORKERS]
    gateway_env: dict[str, str] = field(default_factory=dict)
    peers: dict[str, str] = field(default_factory=dict)


def parse_plan(argv: list[str] | None) -> Plan:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, a ~30 s smoke test")
    parser.add_argument(
        "--requests",
        type=int,
        help="requests in the throughput runs (default 3000; the concurrent-stream run sends a third of it)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        help="workers in the first throughput run (default 32; the second uses 4x, the concurrent-stream run half)",
    )
    parser.add_argument("--slow-streams", type=int, help="slow streams opened at once (default 1000; 0 skips)")
    parser.add_argument(
        "--chunk-delay",
        type=float,
        default=0.0,
        help="seconds between the fast fake upstream's streamed events (default 0)",
    )
    parser.add_argument(
        "--servers",
        default="uvicorn",
        help="gateway sides, comma-separated SERVER[xWORKERS] (uvicorn, daphne, granian), "
        "e.g. daphne,uvicorn,granian or uvicorn,uvicornx2 (workers >1 need REDIS_URL)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the gateway, e.g. GATEWAY_UPSTREAM_TRANSPORT=httpx",
    )
    parser.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help="another OpenAI-dialect gateway: a shell command with {port} and {upstream} "
        "(the fake's URL; the bench's Bearer key is the upstream key)",
    )
    parser.add_argument(
        "--client",
        choices=("aiohttp", "httpx", "httpx-shared"),
        default="aiohttp",
        help="the load generator's client (default aiohttp, the cheapest; httpx-shared "
        "costs it several times more CPU; see bench/README.md)",
    )
    args = parser.parse_args(argv)
    plan = Plan(30, 20, 300, 32, 100, 16, 100, 3.0) if args.quick else Plan()
    if args.requests:
        plan.requests, plan.concurrent_streams = args.requests, max(args.requests // 3, 1)
    if args.concurrency:
        plan.concurrency, plan.stream_concurrency = args.concurrency, max(args.concurrency // 2, 1)
    if args.slow_streams is not None:
        plan.slow_streams = args.slow_streams
    plan.chunk_delay, plan.client = args.chunk_delay, args.client
    plan.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    plan.gateway_env = dict(item.split("=", 1) for item in args.env)
    plan.peers = dict(item.split("=", 1) for item in args.peer)
    return plan


def scenarios(plan: Plan) -> list[tuple]:
    """name, streamed, count, workers, time cap, warm-up count (None: the default), slow upstream."""
    found = [
        ("sequential", False, plan.sequential, 1, 2 * plan.time_cap, None, False),
        (f"throughput_c{plan.concurrency}", False, plan.requests, plan.concurrency, plan.time_cap, None, False),
        (f"throughput_c{4 * plan.concurrency}", False, plan.requests, 4 * plan.concurrency, plan.time_cap, None, False),
        ("stream_sequential", True, plan.streams, 1, 2 * plan.time_cap, None, False),
        ("stream_concurrent", True, plan.concurrent_streams, plan.stream_concurrency, plan.time_cap, None, False),
    ]
    if plan.slow_streams:
        found.append(("slow_streams", True, plan.slow_streams, plan.slow_streams, 60.0, 10, True))
    return found


def server_spec(spec: str) -> tuple[str, int]:
    name, _, workers = spec.partition("x")
    return name, int(workers or 1)


async def run_side(
    side: str, fast: Target, slow: Target, plan: Plan, pids, only: set[str] | None = None
) -> dict[tuple[str, str], Run]:
    runs = {}
    for name, stream, count, workers, cap, warmup, use_slow in scenarios(plan):
        if only is not None and name not in only:
            continue
        target = slow if use_slow else fast
        print(f"  {name:<20} {side:<14} {count} x {workers} worker(s) ...", end="", flush=True, file=sys.stderr)
        run = await measure(
            name,
            target,
            stream=stream,
            count=count,
            workers=workers,
            time_cap=cap,
            pids=pids(),
            client=plan.client,
            warmup=warmup,
        )
        run.target = side
        runs[name, side] = run
        print(f" {run.ok}/{run.sent} ok in {run.seconds:.1f}s", file=sys.stderr)
    return runs


def run_all(plan: Plan, stack: Stack) -> tuple[dict[tuple[str, str], Run], dict[str, dict]]:
    runs: dict[tuple[str, str], Run] = {}
    usage: dict[str, dict] = {}
    fake_only = lambda: {k: v for k, v in stack.pids().items() if k in ("fake", "slow")}  # noqa: E731
    runs |= asyncio.run(
        run_side("direct", direct_target(stack.fake_url), direct_target(stack.slow_url), plan, fake_only)
    )
    for spec in plan.servers:
        server, workers = server_spec(spec)
        before = stack.usage_totals()["requests"] if stack.api_key else 0
        stack.start_gateway(server=server, workers=workers, env=plan.gateway_env)
        fast = gateway_target(stack.gateway_url, stack.api_key, spec)
        slow = gateway_target(stack.gateway_url, stack.api_key, spec, model="slow")
        runs |= asyncio.run(run_side(spec, fast, slow, plan, stack.pids))
        usage[spec] = check_usage(stack, fast.sent + slow.sent, before)
    for name, command in plan.peers.items():
        url = stack.start_peer(name, command)
        fast = gateway_target(url, "test-upstream-key", name)
        names = {s[0] for s in scenarios(plan)} - {"slow_streams"}
        runs |= asyncio.run(run_side(name, fast, fast, plan, stack.pids, only=names))
        stack.stop(name)
        if plan.slow_streams:  # the same command again, in front of the slow fake
            url = stack.start_peer(name, command.replace("{upstream}", "{slow_upstream}"))
            slow = gateway_target(url, "test-upstream-key", name)
            runs |= asyncio.run(run_side(name, slow, slow, plan, stack.pids, only={"slow_streams"}))
            stack.stop(name)
    return runs, usage


def check_usage(stack: Stack, sent: int, before: int) -> dict:
    """Usage rows this gateway side added vs requests we sent: 1 s after the load, then after SIGTERM."""
    try:
        time.sleep(1.0)
        live = stack.usage_totals()["requests"] - before
        exit_code = stack.stop("gateway")
        after = stack.usage_totals()["requests"] - before
    except Exception as exc:  # reported, never fatal: the figures above still stand
        return {"error": f"{type(exc).__name__}: {exc}", "sent": sent}
    return {"sent": sent, "recorded_live": live, "recorded_after_stop": after, "gateway_exit": exit_code}


def main(argv: list[str] | None = None) -> int:
    plan = parse_plan(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally below still runs
    started = time.monotonic()
    facts = machine()
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        stack = Stack(Path(tmp), chunk_delay=plan.chunk_delay)
        try:
            print(f"Starting the fake upstreams in {tmp} ...", file=sys.stderr)
            stack.start_fake(slow_delay=SLOW_DELAY if plan.slow_streams else None)
            runs, usage = run_all(plan, stack)
        except KeyboardInterrupt:
            print("\nInterrupted; stopping the servers.", file=sys.stderr)
            return 130
        except RuntimeError as exc:
            print(f"bench failed: {exc}", file=sys.stderr)
            return 1
        finally:
            stack.stop_all()
    print(table(runs, facts, usage, plan))
    path = save(
        {
            "finished": datetime.now(UTC).isoformat(),
            "seconds": time.monotonic() - started,
            "machine": facts,
            "plan": asdict(plan),
            "runs": list(runs.values()),
            "usage": usage,
        }
    )
    print(f"\nWhole run: {time.monotonic() - started:.0f} s. Full results: {path}")
    errors = sum(run.errors for run in runs.values())
    bad_usage = any(u.get("error") or u["sent"] != u["recorded_after_stop"] for u in usage.values())
    return 1 if errors or bad_usage else 0


if __name__ == "__main__":
    sys.exit(main())
