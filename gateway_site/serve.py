"""`python -m gateway_site.serve`: the gateway's launcher (one or several processes on one port).

    python -m gateway_site.serve [-b HOST] [-p PORT] [--workers N] [--server uvicorn|daphne|granian]

- uvicorn (httptools + uvloop) is the default: bench/ measured it against daphne and granian on
  the same app (bench/README.md). `--workers N` starts N processes sharing one listening socket
  (uvicorn's supervisor: it restarts a worker that dies). Limits, quotas and in-flight counts
  must then be shared, so N > 1 is refused unless REDIS_URL is set; Prometheus metrics are
  switched to multiprocess mode (PROMETHEUS_MULTIPROC_DIR, emptied at start) so /metrics sums
  all workers.
- Server access logs are off: the gateway writes its own JSON access line per proxied request
  (logger gateway.access), with the key's public prefix only. Daphne, which always logs the full
  URL (Gemini clients may send `?key=`), has key values masked by the app (gateway_site/logredact.py).
- X-Forwarded-For: every server's own handling stays off; the app trusts it only from
  GATEWAY_TRUSTED_PROXIES (gateway_site/client_ip.py).
- SIGTERM: stop accepting, let open requests and streams finish for up to
  GATEWAY_SHUTDOWN_GRACE_SECONDS, then flush the usage rows (the app's lifespan shutdown).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

APP = "gateway_site.asgi:application"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m gateway_site.serve", description=__doc__.split("\n")[0])
    parser.add_argument("-b", "--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("-p", "--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("GATEWAY_WORKERS", "1")),
        help="processes sharing the port (default 1, or GATEWAY_WORKERS); >1 needs REDIS_URL",
    )
    parser.add_argument(
        "--server",
        choices=("uvicorn", "daphne", "granian"),
        default=os.environ.get("GATEWAY_SERVER", "uvicorn"),
        help="ASGI server (default uvicorn)",
    )
    parser.add_argument("--proxy-headers", action="store_true", help=argparse.SUPPRESS)  # replaced: see below
    parser.add_argument("app", nargs="?", default=APP, help=argparse.SUPPRESS)  # older command lines named it
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.proxy_headers:  # the server's own X-Forwarded-For handling would bypass gateway_site/client_ip.py
        parser.error(
            "--proxy-headers is replaced by GATEWAY_TRUSTED_PROXIES=<proxy IPs/CIDRs> (X-Forwarded-For) "
            "and GATEWAY_HTTPS=true (X-Forwarded-Proto)"
        )
    return args


def check_workers(workers: int, server: str, environ=os.environ) -> str | None:
    """Why this many workers cannot run here, or None."""
    if workers == 1:
        return None
    if not environ.get("REDIS_URL"):
        return (
            f"--workers {workers} needs REDIS_URL: without it every process keeps its own counters, "
            "so rate limits, quotas and in-flight caps would each be multiplied by the worker count."
        )
    if server == "daphne":
        return "daphne serves one process per port; use --server uvicorn (the default) for --workers"
    return None


def _multiprocess_metrics(environ=os.environ) -> None:
    if not environ.get("PROMETHEUS_MULTIPROC_DIR"):
        base = Path(environ.get("GATEWAY_VAR_DIR") or Path(__file__).resolve().parent.parent / "var")
        environ["PROMETHEUS_MULTIPROC_DIR"] = str(base / "prometheus")
    path = Path(environ["PROMETHEUS_MULTIPROC_DIR"])
    shutil.rmtree(path, ignore_errors=True)  # old samples would be summed in otherwise
    path.mkdir(parents=True, exist_ok=True)


def grace_seconds() -> int:
    return int(os.environ.get("GATEWAY_SHUTDOWN_GRACE_SECONDS", "30"))


def run_uvicorn(args: argparse.Namespace) -> None:
    import uvicorn

    uvicorn.run(
        args.app,
        host=args.bind,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        proxy_headers=False,  # X-Forwarded-For is the app's to judge (GATEWAY_TRUSTED_PROXIES, client_ip.py)
        server_header=False,
        timeout_graceful_shutdown=grace_seconds(),
        log_level=os.environ.get("GATEWAY_SERVER_LOG_LEVEL", "info"),
    )


def run_granian(args: argparse.Namespace) -> None:
    from granian import Granian
    from granian.constants import Interfaces, Loops

    Granian(
        args.app,
        address=args.bind,
        port=args.port,
        interface=Interfaces.ASGI,
        workers=args.workers,
        loop=Loops.uvloop,
        log_access=False,
        respawn_failed_workers=True,
        workers_kill_timeout=grace_seconds(),
    ).serve()


def run_daphne(args: argparse.Namespace) -> None:
    from daphne.cli import CommandLineInterface

    # Daphne always logs the full URL; the app masks key values in it when it is imported
    # (gateway_site/logredact.py), under this launcher or daphne run directly.
    argv = ["-b", args.bind, "-p", str(args.port), args.app]  # no --proxy-headers: see gateway_site/client_ip.py
    CommandLineInterface().run(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    problem = check_workers(args.workers, args.server)
    if problem:
        sys.exit(f"gateway_site.serve: {problem}")
    if args.workers > 1:
        _multiprocess_metrics()
    {"uvicorn": run_uvicorn, "granian": run_granian, "daphne": run_daphne}[args.server](args)


if __name__ == "__main__":
    main()
