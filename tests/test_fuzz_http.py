"""The property-based fuzzer over HTTP: mutated bodies, headers and query strings (tests/fuzz_cases.py)
against every endpoint of every dialect, on a real gateway process backed by the served fake Gemini.

Properties, for every request: an answer within REQUEST_TIMEOUT seconds (no hang), never a 500
(nor any 5xx: the fake upstream is healthy, so a 5xx would blame the upstream for the client's
body), a 4xx in the answering dialect's own error shape, and the usage rows that
tests/fuzz_cases.py's docstring promises (exactly one per request that must have one, none for the
rest). The gateway's own log must hold no traceback.

`make test` runs FUZZ_EXAMPLES (default 10,000 requests, fixed seed: the same cases on every run,
about two minutes here); `make fuzz` runs more with a fresh seed (FUZZ_EXAMPLES, FUZZ_SEED).
Counts and time are printed (run with -s to see them).
"""

from __future__ import annotations

import collections
import time

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.fuzz_cases import MODEL, Request, answering_dialect, error_shape_problem, requests
from tests.fuzz_stack import Stack, env_int, fuzz_seed, seeded

pytestmark = pytest.mark.fuzz
EXAMPLES = env_int("FUZZ_EXAMPLES", 10_000)
SEED = fuzz_seed()
REQUEST_TIMEOUT = 20.0
STREAMED_TYPES = ("text/event-stream", "application/x-ndjson")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("fuzz"), GATEWAY_BODY_READ_TIMEOUT="5")
    yield stack
    stack.stop()


def _objects(stack: Stack) -> dict[str, str]:
    """A chat session and a stored response of the fuzz user, for the routes that name one."""
    auth = {"authorization": f"Bearer {stack.key}"}
    chat = httpx.post(f"{stack.url}/v1/sessions", json={"model": MODEL}, headers=auth, timeout=20)
    stored = httpx.post(
        f"{stack.url}/v1/responses", json={"model": MODEL, "input": "hi", "store": True}, headers=auth, timeout=20
    )
    assert chat.status_code == 201 and stored.status_code == 200, (chat.text, stored.text)
    return {"chat_id": chat.json()["id"], "response_id": stored.json()["id"]}


class Run:
    """What was sent and what came back, and every broken property (a finding)."""

    def __init__(self) -> None:
        self.sent = 0
        self.skipped = 0  # requests httpx itself refuses to send (e.g. a header it finds invalid)
        self.statuses: collections.Counter = collections.Counter()
        self.findings: list[tuple[str, Request, int, str]] = []
        self.answers: dict[str, tuple[Request, int, bool]] = {}
        self.slowest = 0.0

    def send(self, client: httpx.Client, request: Request) -> None:
        rid = f"fz-{self.sent + self.skipped:06d}"
        headers = {**request.headers, "x-request-id": rid}
        started = time.monotonic()
        try:
            with client.stream(
                request.method, request.path, params=request.query, headers=headers, content=request.body
            ) as resp:
                body = resp.read()
        except httpx.LocalProtocolError:
            self.skipped += 1
            return
        except httpx.TimeoutException:
            self.sent += 1
            self.findings.append(("hang", request, 0, f"no answer within {REQUEST_TIMEOUT} s"))
            return
        except httpx.TransportError as exc:
            self.sent += 1
            self.findings.append(("connection", request, 0, repr(exc)))
            return
        self.sent += 1
        self.slowest = max(self.slowest, time.monotonic() - started)
        self.statuses[resp.status_code] += 1
        streamed = resp.headers.get("content-type", "").startswith(STREAMED_TYPES)
        unrouted = resp.status_code == 404 and b"Unknown endpoint" in body  # a dialect's fallback: no view ran
        alone = unrouted or (resp.status_code == 200 and no_call(request, body))
        self.answers[rid] = (request, resp.status_code, streamed, alone)
        self.check(request, resp.status_code, body)

    def check(self, request: Request, status: int, body: bytes) -> None:
        if status >= 500:
            self.findings.append((f"status {status}", request, status, body[:300].decode(errors="replace")))
        if status < 400:
            return
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            self.findings.append(("error body is not JSON", request, status, body[:300].decode(errors="replace")))
            return
        dialect = answering_dialect(request)
        if problem := error_shape_problem(dialect, status, parsed):
            self.findings.append((problem, request, status, body[:300].decode(errors="replace")))

    def check_rows(self, rows: list[tuple]) -> None:
        by_id: dict[str, list[int]] = collections.defaultdict(list)
        for rid, status, _ in rows:
            by_id[rid].append(status)
        for rid, (request, status, streamed, answered_alone) in self.answers.items():
            endpoint = request.endpoint
            same_method = request.method == endpoint.method
            if not endpoint.routed or status == 405 or answered_alone:
                expected = 0
            elif status >= 400 or (endpoint.proxied and same_method):
                expected = 1
            else:
                continue  # another method's success on a shared path: either way is right
            got = by_id.get(rid, [])
            if len(got) != expected:
                self.findings.append((f"{len(got)} usage rows, expected {expected}", request, status, str(got)))
            elif got and not streamed and got[0] != status:
                self.findings.append((f"usage row says {got[0]}", request, status, ""))

    def report(self, elapsed: float) -> str:
        kinds = collections.Counter((kind, r.endpoint.method, r.endpoint.path) for kind, r, _, _ in self.findings)
        lines = [
            f"fuzz: {self.sent} requests sent ({self.skipped} refused by httpx), {elapsed:.0f} s, "
            f"slowest answer {self.slowest:.2f} s, seed {SEED}",
            f"statuses: {dict(sorted(self.statuses.items()))}",
            f"findings: {len(self.findings)} ({len(kinds)} distinct)",
        ]
        lines += [f"  {n} x {kind}: {method} {path}" for (kind, method, path), n in kinds.most_common(40)]
        shown = set()
        for kind, request, status, detail in self.findings:
            if (kind, request.endpoint.path) in shown or len(shown) >= 25:
                continue
            shown.add((kind, request.endpoint.path))
            lines.append(f"--- {kind} {status} {request.method} {request.path} [{request.note}] -> {detail[:300]}")
        return "\n".join(lines)


def no_call(request: Request, body: bytes) -> bool:
    """An Ollama answer the gateway gives without the upstream, as Ollama does without a model run:
    a model load (chat/generate without messages or prompt: done_reason "load") or an empty embedding
    input. Like the other successes that call no upstream, these leave no usage row."""
    if request.endpoint.dialect != "ollama" or not request.path.startswith("/api/"):
        return False
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(answer, dict):
        return False
    return (
        answer.get("done_reason") in ("load", "unload")
        or answer.get("embeddings") == []
        or answer.get("embedding") == []
    )


def test_fuzz_every_endpoint(stack):
    fill = _objects(stack)
    run = Run()
    started = time.monotonic()
    timeout = httpx.Timeout(REQUEST_TIMEOUT)
    with httpx.Client(base_url=stack.url, timeout=timeout, limits=httpx.Limits(max_keepalive_connections=4)) as client:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.generate],  # findings are collected, not raised: nothing to shrink
            suppress_health_check=list(HealthCheck),
        )
        @given(st.data())
        def one(data):
            run.send(client, data.draw(requests(stack.key, fill)))

        seeded(one)()
    elapsed = time.monotonic() - started
    run.check_rows(stack.rows())
    log = stack.log()
    for line in log.splitlines():
        if "Traceback" in line or "unhandled error" in line:
            run.findings.append(("traceback in the gateway log", run_request_stub(), 0, line))
            break
    report = run.report(elapsed)
    print(report)
    assert run.sent >= EXAMPLES * 0.95, report
    assert not run.findings, report


def run_request_stub() -> Request:
    from tests.fuzz_cases import ENDPOINTS

    return Request("-", "(gateway log)", {}, {}, b"", "see the gateway log", ENDPOINTS[0], True)
