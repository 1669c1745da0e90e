"""Turn the runs into the printed side-by-side table and the JSON results file."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from bench.load import Run

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PACKAGES = ("django", "daphne", "uvicorn", "granian", "httpx", "aiohttp")


def machine() -> dict:
    model = ""
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except Exception:
            versions[name] = "not installed"
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": model,
        "loadavg_at_start": os.getloadavg(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": versions,
    }


def _cell(value: float | None, base: float | None, unit: str) -> str:
    """The figure, and for the non-direct sides its ratio to direct (or the added ms)."""
    if value is None:
        return "-"
    text = f"{value:,.0f}" if unit == "/s" and value >= 100 else f"{value:,.2f}"
    if base is not None and base != value:
        if unit == "ms":
            text += f" ({value - base:+.2f})"
        elif base:
            text += f" ({value / base:.2f}x)"
    return text


METRICS = [  # label, scenario, how to read the figure, unit
    ("non-stream latency p50, c=1 (ms; +added)", "sequential", lambda r: r.latency_ms.get("p50"), "ms"),
    ("non-stream latency p99, c=1 (ms; +added)", "sequential", lambda r: r.latency_ms.get("p99"), "ms"),
    ("req/s, c={c}", "throughput_c{c}", lambda r: r.per_second, "/s"),
    ("req/s, c={c4}", "throughput_c{c4}", lambda r: r.per_second, "/s"),
    ("CPU ms/request, c=1", "sequential", lambda r: r.cpu_ms_per_request.get("side"), "cpu"),
    ("CPU ms/request, c={c}", "throughput_c{c}", lambda r: r.cpu_ms_per_request.get("side"), "cpu"),
    ("CPU ms/request, c={c4}", "throughput_c{c4}", lambda r: r.cpu_ms_per_request.get("side"), "cpu"),
    ("stream TTFT p50, c=1 (ms; +added)", "stream_sequential", lambda r: r.ttft_ms.get("p50"), "ms"),
    ("stream total p50, c=1 (ms; +added)", "stream_sequential", lambda r: r.latency_ms.get("p50"), "ms"),
    ("CPU ms per 20-chunk stream, c=1", "stream_sequential", lambda r: r.cpu_ms_per_request.get("side"), "cpu"),
    ("streams/s, c={cs}", "stream_concurrent", lambda r: r.per_second, "/s"),
    ("CPU ms per stream, c={cs}", "stream_concurrent", lambda r: r.cpu_ms_per_request.get("side"), "cpu"),
    ("slow streams x{n}: TTFT p50 (s)", "slow_streams", lambda r: (r.ttft_ms.get("p50") or 0) / 1000 or None, "s"),
    ("slow streams x{n}: total p50 (s)", "slow_streams", lambda r: (r.latency_ms.get("p50") or 0) / 1000 or None, "s"),
    ("slow streams x{n}: total p99 (s)", "slow_streams", lambda r: (r.latency_ms.get("p99") or 0) / 1000 or None, "s"),
    ("slow streams x{n}: ok", "slow_streams", lambda r: r.ok, "n"),
    ("slow streams x{n}: peak RSS (MB)", "slow_streams", lambda r: r.rss_mb.get("side"), "n"),
]


def _side_cpu(run: Run) -> None:
    """Name the measured side's own process as 'side' (the fake is 'fake'/'slow' in every run)."""
    own = {k: v for k, v in run.cpu_ms_per_request.items() if k not in ("fake", "slow", "loadgen")}
    if run.target == "direct":
        key = "slow" if run.scenario == "slow_streams" else "fake"
        run.cpu_ms_per_request["side"] = run.cpu_ms_per_request.get(key, 0.0)
        run.rss_mb["side"] = run.rss_mb.get(key, 0.0)
    else:
        run.cpu_ms_per_request["side"] = sum(own.values())
        run.rss_mb["side"] = sum(v for k, v in run.rss_mb.items() if k not in ("fake", "slow"))


def table(runs: dict[tuple[str, str], Run], facts: dict, usage: dict, plan) -> str:
    sides = list(dict.fromkeys(side for _, side in runs))
    for run in runs.values():
        _side_cpu(run)
    c, cs = plan.concurrency, plan.stream_concurrency
    fmt = {"c": c, "c4": 4 * c, "cs": cs, "n": plan.slow_streams}
    width = max(18, *(len(s) + 2 for s in sides))
    v = facts["versions"]
    lines = [
        f"Machine: {facts['cpus_usable']} usable CPU(s) of {facts['cpu_count']} ({facts['cpu_model'] or '?'}), "
        f"Python {facts['python']}, "
        + ", ".join(f"{k} {v[k]}" for k in PACKAGES)
        + f"; load average at start {', '.join(f'{x:.2f}' for x in facts['loadavg_at_start'])}.",
        "All sides share the 2 cores with the load generator and the fake upstream(s): read ratios to "
        "`direct` (in brackets) rather than absolute figures. CPU is each side's own processes "
        "(/proc, workers included); for `direct` it is the fake's.",
        "",
        f"{'':<44}" + "".join(f"{s:>{width}}" for s in sides),
        "-" * (44 + width * len(sides)),
    ]
    for label, scenario, read, unit in METRICS:
        scenario = scenario.format(**fmt)
        base_run = runs.get((scenario, "direct"))
        base = read(base_run) if base_run and unit in ("ms", "/s", "s") else None
        cells = []
        for side in sides:
            run = runs.get((scenario, side))
            cells.append(_cell(read(run), None if side == "direct" else base, unit) if run else "-")
        if any(cell != "-" for cell in cells):
            lines.append(f"{label.format(**fmt):<44}" + "".join(f"{cell:>{width}}" for cell in cells))
    lines += ["", "Errors and caps:"]
    for run in runs.values():
        if run.sent < run.planned:
            lines.append(f"  {run.scenario} / {run.target}: time cap reached, {run.sent} of {run.planned} sent")
        for kind, count in run.error_kinds.items():
            lines.append(f"  {run.scenario} / {run.target}: error x{count}: {kind}")
        if run.warmup_errors:
            lines.append(f"  {run.scenario} / {run.target}: {run.warmup_errors} warm-up errors")
    lines.append("")
    lines += [usage_line(side, u) for side, u in usage.items()]
    return "\n".join(lines)


def usage_line(side: str, usage: dict) -> str:
    if "error" in usage:
        return f"Usage check {side} FAILED: {usage['error']}"
    missing = usage["sent"] - usage["recorded_after_stop"]
    verdict = (
        "OK: every request recorded"
        if missing == 0
        else (f"MISMATCH: {abs(missing)} {'missing' if missing > 0 else 'extra'} usage row(s)")
    )
    return (
        f"Usage check {side}: {usage['sent']} requests sent (warm-ups included); rows counted "
        f"{usage['recorded_live']} 1 s after the load, {usage['recorded_after_stop']} after a graceful "
        f"stop (exit code {usage['gateway_exit']}) -> {verdict}."
    )


def save(payload: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    payload = {**payload, "runs": [asdict(run) for run in payload["runs"]]}
    path.write_text(json.dumps(payload, indent=2))
    return path
