"""Turn the runs into the printed side-by-side table and the JSON results file."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

from bench.load import Run

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": model,
        "loadavg_at_start": os.getloadavg(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {name: version(name) for name in ("django", "daphne", "httpx")},
    }


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if unit == "/s" and value >= 100 else f"{value:,.2f}"


def _row(label: str, direct: float | None, gateway: float | None, unit: str) -> str:
    ratio = added = ""
    if direct and gateway is not None:
        ratio = f"{gateway / direct:.2f}x"
    if unit == "ms" and direct is not None and gateway is not None:
        added = f"{gateway - direct:+.2f} ms"
    return f"{label:<44}{_fmt(direct, unit):>11}{_fmt(gateway, unit):>11}{ratio:>10}{added:>13}"


def table(runs: dict[tuple[str, str], Run], machine_facts: dict, usage: dict, shared_client: bool) -> str:
    def pair(scenario: str) -> tuple[Run, Run]:
        return runs[scenario, "direct"], runs[scenario, "gateway"]

    seq, thr, sseq, scon = (pair(s) for s in ("sequential", "throughput", "stream_sequential", "stream_concurrent"))
    lines = [
        f"Machine: {machine_facts['cpus_usable']} usable CPU(s) of {machine_facts['cpu_count']} "
        f"({machine_facts['cpu_model'] or 'unknown model'}), Python {machine_facts['python']}, "
        f"Django {machine_facts['versions']['django']}, daphne {machine_facts['versions']['daphne']}, "
        f"httpx {machine_facts['versions']['httpx']}, load average at start "
        f"{', '.join(f'{x:.2f}' for x in machine_facts['loadavg_at_start'])}.",
        f"The load generator (this process: one asyncio loop, "
        f"{'one httpx client shared by all workers' if shared_client else 'one keep-alive httpx client per worker'}) "
        "shares those CPUs with the fake "
        "upstream (one daphne process) and the gateway (one daphne process): all figures are on loopback "
        "and include that contention, so read the ratios rather than the absolute numbers.",
        "",
        f"{'scenario':<44}{'direct':>11}{'gateway':>11}{'gw/direct':>10}{'added':>13}",
        "-" * 89,
    ]
    for key in ("p50", "p90", "p99", "mean"):
        lines.append(_row(f"sequential non-stream latency {key} (ms)",
                          seq[0].latency_ms.get(key), seq[1].latency_ms.get(key), "ms"))
    lines.append(_row(f"throughput, {thr[0].workers} workers (req/s)", thr[0].per_second, thr[1].per_second, "/s"))
    for key in ("p50", "p99"):
        lines.append(_row(f"stream time to first content {key} (ms)",
                          sseq[0].ttft_ms.get(key), sseq[1].ttft_ms.get(key), "ms"))
    lines.append(_row("stream total time p50 (ms)", sseq[0].latency_ms.get("p50"), sseq[1].latency_ms.get("p50"), "ms"))
    lines.append(_row(f"concurrent streams, {scon[0].workers} workers (streams/s)",
                      scon[0].per_second, scon[1].per_second, "/s"))
    for key in ("p50", "p99"):
        lines.append(_row(f"  same run: time to first content {key} (ms)",
                          scon[0].ttft_ms.get(key), scon[1].ttft_ms.get(key), "ms"))
    lines += ["", f"{'run':<20}{'side':<9}{'ok/sent':>12}{'errors':>8}{'seconds':>9}"
                  f"{'CPU ms per request: fake':>27}{'gateway':>9}{'loadgen':>9}", "-" * 103]
    for run in runs.values():
        cpu = run.cpu_ms_per_request
        lines.append(f"{run.scenario:<20}{run.target:<9}{f'{run.ok}/{run.sent}':>12}{run.errors:>8}"
                     f"{run.seconds:>9.2f}{cpu.get('fake', 0):>27.2f}{cpu.get('gateway', 0):>9.2f}"
                     f"{cpu.get('loadgen', 0):>9.2f}")
        if run.sent < run.planned:
            lines.append(f"{'':<20}(time cap reached: {run.sent} of {run.planned} planned)")
        for kind, count in run.error_kinds.items():
            lines.append(f"{'':<20}error x{count}: {kind}")
        if run.warmup_errors:
            lines.append(f"{'':<20}warm-up errors: {run.warmup_errors}")
    lines += ["", usage_line(usage)]
    return "\n".join(lines)


def usage_line(usage: dict) -> str:
    if "error" in usage:
        return f"Usage check FAILED: {usage['error']}"
    missing = usage["sent"] - usage["recorded_after_stop"]
    verdict = "OK: every request recorded" if missing == 0 else (
        f"MISMATCH: {abs(missing)} {'missing' if missing > 0 else 'extra'} usage row(s)")
    return (f"Usage check: {usage['sent']} requests sent through the gateway ({usage['measured']} "
            f"measured + {usage['sent'] - usage['measured']} warm-up); usage_report counted "
            f"{usage['recorded_live']} 1 s after "
            f"the load and {usage['recorded_after_stop']} after a graceful stop "
            f"(gateway exit code {usage['gateway_exit']}) -> {verdict}.")


def save(payload: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    payload = {**payload, "runs": [asdict(run) for run in payload["runs"]]}
    path.write_text(json.dumps(payload, indent=2))
    return path
