"""`python -m bench`: start both servers, run every scenario against each side, print and save."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from bench.load import Run, Target, direct_target, gateway_target, measure
from bench.report import machine, save, table
from bench.servers import Stack


@dataclass
class Plan:
    """How much load each scenario sends (a count and a time cap: whichever ends first)."""

    sequential: int = 300        # non-streamed, one after another
    streams: int = 200           # streamed, one after another
    requests: int = 3000         # non-streamed, `concurrency` workers
    concurrency: int = 32
    concurrent_streams: int = 1000
    stream_concurrency: int = 16
    time_cap: float = 10.0       # seconds per concurrent run; sequential runs get twice that
    chunk_delay: float = 0.0     # seconds between the fake upstream's SSE events
    shared_client: bool = False  # one httpx client for all workers instead of one per worker


def parse_plan(argv: list[str] | None) -> Plan:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts, a ~15 s smoke test")
    parser.add_argument("--requests", type=int, help="requests in the throughput run (default 3000; "
                        "the concurrent-stream run sends a third of it)")
    parser.add_argument("--concurrency", type=int, help="workers in the throughput run (default 32; "
                        "the concurrent-stream run uses half)")
    parser.add_argument("--chunk-delay", type=float, default=0.0,
                        help="seconds between the fake upstream's streamed events (default 0)")
    parser.add_argument("--shared-client", action="store_true",
                        help="one httpx.AsyncClient shared by all workers (its pool costs the load "
                        "generator several times more CPU; see bench/README.md)")
    args = parser.parse_args(argv)
    plan = Plan(30, 20, 300, 32, 100, 16, 3.0) if args.quick else Plan()
    if args.requests:
        plan.requests, plan.concurrent_streams = args.requests, max(args.requests // 3, 1)
    if args.concurrency:
        plan.concurrency, plan.stream_concurrency = args.concurrency, max(args.concurrency // 2, 1)
    plan.chunk_delay, plan.shared_client = args.chunk_delay, args.shared_client
    return plan


async def run_all(plan: Plan, stack: Stack) -> tuple[dict[tuple[str, str], Run], Target]:
    """Every scenario, direct then gateway; also returns the gateway target (its `sent` count)."""
    targets = [direct_target(stack.fake_url), gateway_target(stack.gateway_url, stack.api_key)]
    scenarios = [  # name, streamed, count, workers, time cap
        ("sequential", False, plan.sequential, 1, 2 * plan.time_cap),
        ("throughput", False, plan.requests, plan.concurrency, plan.time_cap),
        ("stream_sequential", True, plan.streams, 1, 2 * plan.time_cap),
        ("stream_concurrent", True, plan.concurrent_streams, plan.stream_concurrency, plan.time_cap),
    ]
    runs: dict[tuple[str, str], Run] = {}
    for name, stream, count, workers, cap in scenarios:
        for target in targets:
            print(f"  {name:<18} {target.name:<8} {count} x {workers} worker(s) ...", end="", flush=True, file=sys.stderr)
            run = await measure(name, target, stream=stream, count=count, workers=workers,
                                time_cap=cap, pids=stack.pids(), shared_client=plan.shared_client)
            runs[name, target.name] = run
            print(f" {run.ok}/{run.sent} ok in {run.seconds:.1f}s", file=sys.stderr)
    return runs, targets[1]


def check_usage(stack: Stack, gateway_sent: int, measured: int) -> dict:
    """Usage rows counted by the gateway vs requests we sent: 1 s after the load, then after SIGTERM."""
    try:
        time.sleep(1.0)
        live = stack.usage_totals()["requests"]
        exit_code = stack.stop("gateway")
        after = stack.usage_totals()["requests"]
    except Exception as exc:  # reported, never fatal: the figures above still stand
        return {"error": f"{type(exc).__name__}: {exc}", "sent": gateway_sent}
    return {"sent": gateway_sent, "measured": measured, "recorded_live": live,
            "recorded_after_stop": after, "gateway_exit": exit_code}


def main(argv: list[str] | None = None) -> int:
    plan = parse_plan(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally below still runs
    started = time.monotonic()
    facts = machine()
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        stack = Stack(Path(tmp), chunk_delay=plan.chunk_delay)
        try:
            print(f"Starting the fake upstream and the gateway in {tmp} ...", file=sys.stderr)
            stack.start()
            runs, gateway = asyncio.run(run_all(plan, stack))
            measured = sum(run.sent for key, run in runs.items() if key[1] == "gateway")
            usage = check_usage(stack, gateway.sent, measured)
        except KeyboardInterrupt:
            print("\nInterrupted; stopping the servers.", file=sys.stderr)
            return 130
        except RuntimeError as exc:
            print(f"bench failed: {exc}", file=sys.stderr)
            return 1
        finally:
            stack.stop_all()
    print(table(runs, facts, usage, plan.shared_client))
    path = save({"finished": datetime.now(timezone.utc).isoformat(), "seconds": time.monotonic() - started,
                 "machine": facts, "plan": asdict(plan), "runs": list(runs.values()), "usage": usage})
    print(f"\nWhole run: {time.monotonic() - started:.0f} s. Full results: {path}")
    errors = sum(run.errors for run in runs.values())
    return 1 if errors or usage.get("error") or usage["sent"] != usage["recorded_after_stop"] else 0


if __name__ == "__main__":
    sys.exit(main())
