"""`python -m bench.limits`: what enforcing limits costs, in one run.

The same gateway scenarios (sequential latency, 32-worker throughput) three times against one fake
upstream: limits off; all six limits on with in-process counters; the same with Redis counters
(a private `redis-server` started for the run, so its command statistics count only our calls;
or --redis-url). Limits are generous, so nothing is refused: the figures show the bookkeeping cost
only. Redis round trips per request come from Redis's own INFO commandstats, not from our code.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

from bench.load import gateway_target, measure
from bench.servers import Stack, free_port

LIMITS = (
    "--rpm",
    "10000000",
    "--tpm",
    "1000000000",
    "--max-parallel",
    "100000",
    "--daily-tokens",
    "1000000000",
    "--monthly-tokens",
    "1000000000",
    "--budget-usd",
    "1000000",
)


def redis_calls(url: str) -> int:
    """Round trips so far: script calls (EVAL/EVALSHA) as counted by INFO commandstats. Commands a
    script runs inside Redis are counted there too, but cost no round trip, so they are left out;
    so are connection set-up commands (HELLO, once per pooled connection)."""
    stats = redis.Redis.from_url(url).info("commandstats")
    return sum(entry["calls"] for name, entry in stats.items() if name in ("cmdstat_evalsha", "cmdstat_eval"))


async def scenarios(stack: Stack, sequential: int, requests: int, workers: int) -> dict:
    target = gateway_target(stack.gateway_url, stack.api_key)
    seq = await measure("sequential", target, stream=False, count=sequential, workers=1, time_cap=30, pids=stack.pids())
    tput = await measure(
        "throughput", target, stream=False, count=requests, workers=workers, time_cap=15, pids=stack.pids()
    )
    return {
        "p50": seq.latency_ms["p50"],
        "p99": seq.latency_ms["p99"],
        "rps": tput.per_second,
        "cpu": tput.cpu_ms_per_request.get("gateway", 0.0),
        "errors": seq.errors + tput.errors,
        "sent": target.sent,
    }


def run(config: str, stack: Stack, args) -> dict:
    stack.stop("gateway")
    limits = () if config == "off" else LIMITS
    stack.extra_env = (
        {"REDIS_URL": args.redis_url, "GATEWAY_QUOTA_REDIS_PREFIX": f"gwbench-{uuid.uuid4().hex[:8]}"}
        if config == "redis"
        else {}
    )
    stack.start_gateway(limits=limits)
    before = redis_calls(args.redis_url) if config == "redis" else 0
    result = asyncio.run(scenarios(stack, args.sequential, args.requests, args.concurrency))
    if config == "redis":
        result["redis_calls_per_request"] = (redis_calls(args.redis_url) - before) / max(result["sent"], 1)
    return result


def report(results: dict[str, dict]) -> str:
    off = results["off"]
    lines = [
        "redis/req = script round trips per request: one admission on the request's path, one settlement"
        " after the answer (not waited for); CPU ms/req = the gateway process's, in the throughput run",
        f"{'limits':<22}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}{'rps vs off':>12}{'p50 vs off':>12}"
        f"{'redis/req':>11}{'CPU ms/req':>12}",
    ]
    for name, r in results.items():
        calls = f"{r['redis_calls_per_request']:.2f}" if "redis_calls_per_request" in r else "-"
        lines.append(
            f"{name:<22}{r['p50']:>9.2f}{r['p99']:>9.2f}{r['rps']:>9.0f}"
            f"{r['rps'] / off['rps']:>11.2f}x{r['p50'] / off['p50']:>11.2f}x{calls:>11}{r['cpu']:>12.2f}"
        )
    return "\n".join(lines)


def private_redis(workdir: Path) -> tuple[str, subprocess.Popen | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        return "", None
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            return url, proc
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    return "", None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.limits", description=__doc__)
    parser.add_argument("--sequential", type=int, default=300)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--redis-url", default="", help="use this Redis instead of a private redis-server")
    args = parser.parse_args(argv)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="gateway-bench-limits-") as tmp:
        stack = Stack(Path(tmp))
        redis_proc = None
        if not args.redis_url:
            args.redis_url, redis_proc = private_redis(Path(tmp))
            args.redis_url = args.redis_url or os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
        try:
            stack.start_fake()
            for config in ("off", "memory", "redis"):
                print(f"  limits {config} ...", file=sys.stderr, flush=True)
                results[config] = run(config, stack, args)
        finally:
            stack.stop_all()
            if redis_proc is not None:
                redis_proc.terminate()
    results = {"off": results["off"], "on (in-process)": results["memory"], "on (Redis)": results["redis"]}
    print(report(results))
    return 1 if any(r["errors"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
