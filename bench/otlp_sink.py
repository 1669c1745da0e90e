"""`python -m bench.otlp_sink --port 4318`: a minimal OTLP/HTTP trace receiver for measuring tracing overhead.

Accepts `POST /v1/traces` (protobuf, as the gateway's exporter sends), answers 200 with an empty
ExportTraceServiceResponse, counts the spans, and prints the count every few seconds and at exit;
nothing is stored. Run it beside `python -m bench --env OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318`
so the export path costs what it costs against a real collector (a refused port would only back off).
"""

from __future__ import annotations

import argparse
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

_count = {"spans": 0, "exports": 0}
_lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        request = ExportTraceServiceRequest.FromString(body)
        spans = sum(len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans)
        with _lock:
            _count["spans"] += spans
            _count["exports"] += 1
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.otlp_sink", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=4318)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"OTLP sink on http://127.0.0.1:{args.port}", flush=True)
    try:
        while True:
            time.sleep(5)
            print(f"{_count['spans']} spans in {_count['exports']} exports", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        print(f"total: {_count['spans']} spans in {_count['exports']} exports", flush=True)


if __name__ == "__main__":
    main()
