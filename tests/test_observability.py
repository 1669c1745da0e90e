"""Access-log lines and /metrics, through the real gateway on a socket (and across processes)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy_app.core.context import UsageRow
from proxy_app.ops import observability
from proxy_app.ops.observability import JsonLineFormatter
from tests.test_server import ROOT, Gateway, manage

pytestmark = pytest.mark.django_db(transaction=True)

PROMPT = "my secret prompt is purple-elephant-42"
CHAT = [{"role": "user", "content": PROMPT}]
ACCESS_FIELDS = {
    "ts",
    "event",
    "request_id",
    "client_ip",
    "user_id",
    "key_prefix",
    "dialect",
    "endpoint",
    "model",
    "upstream",
    "upstream_model",
    "status",
    "error_code",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cached_tokens",
    "total_tokens",
    "token_source",
    "latency_ms",
    "ttft_ms",
    "streamed",
    "disconnected",
    "attempts",
}


class _Lines(logging.Handler):
    """Collects the access logger's output exactly as its handlers format it."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonLineFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def line_for(self, request_id: str, timeout: float = 10) -> dict:
        """The one line of `request_id` (streams log when they end, so wait a little)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.lines if f'"request_id":"{request_id}"' in line]
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(found) == 1, self.lines
        assert "\n" not in found[0]
        return json.loads(found[0])


@pytest.fixture
def access_log():
    handler = _Lines()
    logger = logging.getLogger("gateway.access")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def post_chat(gateway_url: str, key: str, request_id: str, **body) -> httpx.Response:
    return httpx.post(
        f"{gateway_url}/v1/chat/completions",
        json={"messages": CHAT, **body},
        headers={"authorization": f"Bearer {key}", "x-request-id": request_id},
        timeout=20,
    )


def scrape(gateway_url: str) -> dict[tuple, float]:
    resp = httpx.get(f"{gateway_url}/metrics", timeout=20)
    assert resp.status_code == 200, resp.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def value(samples: dict[tuple, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: dict, after: dict, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


# ------------------------------------------------------------------------------------------------
# Access log


def test_access_line_has_every_field_and_no_secret(gateway_url, api_key, fake_gemini, mapping, access_log, usage_rows):
    mapping("gpt-4o", "gemini-2.5-flash")
    resp = post_chat(gateway_url, api_key, "req-obs-1", model="gpt-4o")
    assert resp.status_code == 200 and "purple-elephant-42" in resp.text  # the fake echoes the prompt
    line = access_log.line_for("req-obs-1")
    assert set(line) == ACCESS_FIELDS
    (row,) = usage_rows()
    assert line == {
        "ts": line["ts"],
        "event": "request",
        "request_id": "req-obs-1",
        "client_ip": "127.0.0.1",
        "user_id": row.user_id,
        "key_prefix": row.key_prefix,
        "dialect": "openai",
        "endpoint": row.endpoint,
        "model": "gpt-4o",
        "upstream": "gemini",
        "upstream_model": "gemini-2.5-flash",
        "status": 200,
        "error_code": None,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "reasoning_tokens": row.reasoning_tokens,
        "cached_tokens": row.cached_tokens,
        "total_tokens": row.total_tokens,
        "token_source": "reported",
        "latency_ms": row.latency_ms,
        "ttft_ms": None,
        "streamed": False,
        "disconnected": False,
        "attempts": 1,
    }
    assert row.prompt_tokens > 0 and api_key.startswith(line["key_prefix"])
    assert abs(datetime.fromisoformat(line["ts"]) - datetime.now(UTC)).total_seconds() < 10
    raw = access_log.lines[-1]
    assert api_key.split("_", 1)[1] not in raw and "purple-elephant" not in raw


def test_errors_are_logged_with_their_code(gateway_url, api_key, fake_gemini, access_log, usage_rows):
    assert post_chat(gateway_url, api_key, "req-obs-404", model="no-such-model").status_code == 404
    assert post_chat(gateway_url, api_key + "x", "req-obs-401", model="gpt-4o").status_code == 401
    fake_gemini.script("error", status=503)
    assert post_chat(gateway_url, api_key, "req-obs-503", model="gemini-2.5-flash").status_code == 503

    missing = access_log.line_for("req-obs-404")
    assert (missing["status"], missing["error_code"], missing["model"]) == (404, "model_not_found", "no-such-model")
    bad_key = access_log.line_for("req-obs-401")
    assert (bad_key["status"], bad_key["error_code"], bad_key["user_id"], bad_key["key_prefix"]) == (
        401,
        "invalid_api_key",
        None,
        "",
    )
    upstream = access_log.line_for("req-obs-503")
    assert (upstream["status"], upstream["upstream"], upstream["error_code"]) == (503, "gemini", "service_unavailable")
    assert all(api_key.split("_", 1)[1] not in line and "purple" not in line for line in access_log.lines)


def test_stream_line_has_time_to_first_token(gateway_url, api_key, fake_gemini, access_log, usage_rows):
    fake_gemini.chunk_delay = 0.05
    fake_gemini.script("text", chunks=["one ", "two ", "three"])
    resp = post_chat(gateway_url, api_key, "req-obs-stream", model="gemini-2.5-flash", stream=True)
    assert resp.status_code == 200 and "three" in resp.text
    line = access_log.line_for("req-obs-stream")
    assert line["streamed"] is True and line["disconnected"] is False and line["status"] == 200
    assert line["ttft_ms"] is not None and 0 <= line["ttft_ms"] <= line["latency_ms"]
    assert line["completion_tokens"] > 0


def test_disconnect_is_logged(gateway_url, api_key, fake_gemini, access_log, usage_rows):
    fake_gemini.chunk_delay = 0.3
    fake_gemini.script("text", chunks=[f"word{i} " for i in range(20)])
    with httpx.stream(
        "POST",
        f"{gateway_url}/v1/chat/completions",
        json={"model": "gemini-2.5-flash", "messages": CHAT, "stream": True},
        headers={"authorization": f"Bearer {api_key}", "x-request-id": "req-obs-gone"},
    ) as resp:
        for text in resp.iter_lines():
            if "word1" in text:
                break
    line = access_log.line_for("req-obs-gone")
    assert (line["status"], line["error_code"], line["disconnected"], line["streamed"]) == (
        499,
        "client_disconnected",
        True,
        True,
    )
    assert line["ttft_ms"] is not None


def test_rotating_file_log(tmp_path):
    """GATEWAY_ACCESS_LOG_FILE: JSON lines in a size-capped file with backups, `{pid}` per process."""
    from tests.test_server import gateway_env

    env = gateway_env(
        tmp_path,
        GATEWAY_ACCESS_LOG_FILE=str(tmp_path / "logs" / "access-{pid}.jsonl"),
        GATEWAY_ACCESS_LOG_MAX_BYTES="2048",
        GATEWAY_ACCESS_LOG_BACKUPS="2",
        GATEWAY_ACCESS_LOG_STDOUT="false",
    )
    code = (
        "from tests.test_observability import fake_row; from proxy_app.ops import observability\n"
        "for i in range(40): observability.request_finished(fake_row(request_id=f'req-{i}'))\n"
    )
    result = manage(env, "shell", "-c", code)
    assert result.returncode == 0, result.stderr
    assert "req-" not in result.stdout  # stdout switched off
    files = sorted((tmp_path / "logs").iterdir())
    assert [f.name.split(".", 1)[1] for f in files] == ["jsonl", "jsonl.1", "jsonl.2"]  # capped backups
    assert all(f.stat().st_size <= 2048 for f in files)
    lines = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert lines[-1]["request_id"] == "req-39" and lines[-1]["status"] == 200


# ------------------------------------------------------------------------------------------------
# Metrics


def fake_row(**changes) -> UsageRow:
    """A usage row as usage.record() builds it."""
    row = {
        "created_at": datetime.now(UTC),
        "request_id": "req-fake",
        "user_id": 7,
        "api_key_id": 3,
        "key_prefix": "gw-abcdefgh",
        "dialect": "openai",
        "endpoint": "chat",
        "requested_model": "gemini-2.5-flash",
        "upstream_name": "gemini",
        "upstream_model": "gemini-2.5-flash",
        "prompt_tokens": 11,
        "completion_tokens": 5,
        "reasoning_tokens": 0,
        "cached_tokens": 0,
        "total_tokens": 16,
        "token_source": "reported",
        "status": 200,
        "error_code": "",
        "streamed": False,
        "client_disconnected": False,
        "latency_ms": 120,
        "ttft_ms": None,
        "cost_usd": Decimal(0),
        "detailed": False,
        "attempts": 1,
    }
    return UsageRow(**{**row, **changes})


def test_metrics_count_requests_tokens_and_latency(gateway_url, api_key, fake_gemini, mapping, usage_rows):
    mapping("gpt-4o", "gemini-2.5-flash")
    before = scrape(gateway_url)
    for i in range(2):
        assert post_chat(gateway_url, api_key, f"req-m-{i}", model="gpt-4o").status_code == 200
    assert post_chat(gateway_url, api_key, "req-m-s", model="gpt-4o", stream=True).status_code == 200
    assert post_chat(gateway_url, api_key, "req-m-x", model="made-up-model-123").status_code == 404
    assert post_chat(gateway_url, api_key + "x", "req-m-k", model="gpt-4o").status_code == 401
    rows = usage_rows()
    after = scrape(gateway_url)

    ok = [r for r in rows if r.status == 200]
    assert delta(before, after, "gateway_requests_total", dialect="openai", model="gpt-4o", status="200") == 3
    assert delta(before, after, "gateway_requests_total", dialect="openai", model="other", status="404") == 1
    assert delta(before, after, "gateway_requests_total", dialect="openai", model="none", status="401") == 1
    assert delta(before, after, "gateway_tokens_total", dialect="openai", model="gpt-4o", kind="prompt") == sum(
        r.prompt_tokens for r in ok
    )
    assert delta(before, after, "gateway_tokens_total", dialect="openai", model="gpt-4o", kind="completion") == sum(
        r.completion_tokens for r in ok
    )
    assert delta(before, after, "gateway_request_duration_seconds_count", dialect="openai", model="gpt-4o") == 3
    assert (
        delta(before, after, "gateway_request_duration_seconds_bucket", dialect="openai", model="gpt-4o", le="+Inf")
        == 3
    )
    assert delta(before, after, "gateway_time_to_first_token_seconds_count", dialect="openai", model="gpt-4o") == 1

    # Bounded labels: dialects, statuses and known models only; never a key, a user or a made-up name.
    text = httpx.get(f"{gateway_url}/metrics").text
    assert api_key.split("_", 1)[0] not in text and "alice" not in text and "made-up" not in text
    models = {dict(labels).get("model") for (_, labels) in after} - {None}
    assert {"gpt-4o", "other", "none"} <= models and not any("made-up" in m for m in models)


def test_limit_refusals_and_upstream_errors_are_counted(gateway_url, api_key, fake_gemini, usage_rows):
    before = scrape(gateway_url)
    fake_gemini.script("error", status=429)
    assert post_chat(gateway_url, api_key, "req-429", model="gemini-2.5-flash").status_code == 429
    fake_gemini.script("error", status=503)
    assert post_chat(gateway_url, api_key, "req-503", model="gemini-2.5-flash").status_code == 503
    # The gateway's own quotas answer 429 insufficient_quota; one such row, as usage.record() makes it.
    observability.request_finished(fake_row(status=429, error_code="insufficient_quota", requested_model="x" * 300))
    after = scrape(gateway_url)
    assert delta(before, after, "gateway_limit_refusals_total", dialect="openai", code="rate_limit_exceeded") == 1
    assert delta(before, after, "gateway_limit_refusals_total", dialect="openai", code="insufficient_quota") == 1
    assert delta(before, after, "gateway_requests_total", dialect="openai", model="other", status="429") == 1
    assert delta(before, after, "gateway_upstream_errors_total", upstream="gemini", code="service_unavailable") == 1


def test_in_flight_gauge_follows_a_stream(gateway_url, api_key, fake_gemini, usage_rows):
    baseline = value(scrape(gateway_url), "gateway_requests_in_flight")
    fake_gemini.chunk_delay = 0.2
    fake_gemini.script("text", chunks=[f"w{i} " for i in range(8)])
    with httpx.stream(
        "POST",
        f"{gateway_url}/v1/chat/completions",
        json={"model": "gemini-2.5-flash", "messages": CHAT, "stream": True},
        headers={"authorization": f"Bearer {api_key}"},
    ) as resp:
        lines = resp.iter_lines()
        next(lines)
        assert value(scrape(gateway_url), "gateway_requests_in_flight") == baseline + 1
        assert any("w7" in line for line in lines)
    deadline = time.monotonic() + 5
    while value(scrape(gateway_url), "gateway_requests_in_flight") != baseline:
        assert time.monotonic() < deadline, "in-flight gauge did not come back down"
        time.sleep(0.05)


def test_metrics_endpoint_is_restricted_by_client_address(gateway_url, settings):
    import ipaddress

    assert httpx.post(f"{gateway_url}/metrics").status_code == 405
    settings.METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network("10.0.0.0/8")]
    resp = httpx.get(f"{gateway_url}/metrics")
    assert resp.status_code == 403 and "gateway_" not in resp.text


@pytest.mark.parametrize(
    "client, allowed",
    [
        (("127.0.0.1", 5000), True),
        (("::1", 5000), True),
        (("::ffff:127.0.0.1", 1), True),
        (("10.1.2.3", 5000), False),
        (("unix-socket", 0), False),
        (None, False),
    ],
)
def test_default_metrics_access_is_loopback_only(client, allowed):
    assert observability.client_allowed(client) is allowed


def test_model_label_is_bounded(monkeypatch):
    monkeypatch.setattr(observability, "_served", set())
    monkeypatch.setattr(observability, "MODEL_LABEL_CAP", 2)
    monkeypatch.setattr(observability, "_model_names", lambda: frozenset({"gpt-4o", "gemini-2.5-flash-lite"}))
    assert observability.model_label("", 401) == "none"
    assert observability.model_label("gpt-4o:latest", 404) == "gpt-4o"  # an alias (routing table)
    assert observability.model_label("gemini-2.5-flash-lite", 429) == "gemini-2.5-flash-lite"  # mapped/listed
    assert observability.model_label("typo-model", 404) == "other"
    assert observability.model_label("gemini-2.5-flash", 200) == "gemini-2.5-flash"  # served by the upstream
    assert observability.model_label("models/gemini-2.5-flash", 503) == "gemini-2.5-flash"
    assert observability.model_label("gemini-2.5-flash:latest", 200) == "gemini-2.5-flash"
    assert observability.model_label("gemini-2.5-pro", 200) == "gemini-2.5-pro"
    assert observability.model_label("gemini-9-imaginary", 200) == "other"  # past the cap
    assert observability.model_label("bad model name\n", 200) == "other"
    monkeypatch.setattr(observability, "_codes", set())
    monkeypatch.setattr(observability, "CODE_LABEL_CAP", 1)
    assert [observability._code_label(c) for c in ("timeout", "timeout", "bad_gateway", "Weird Code")] == [
        "timeout",
        "timeout",
        "other",
        "other",
    ]


# ------------------------------------------------------------------------------------------------
# Several processes


def test_metrics_aggregate_across_processes(tmp_path):
    """Two daphne processes share PROMETHEUS_MULTIPROC_DIR: either one's /metrics shows both."""
    from tests.test_server import gateway_env

    prom = tmp_path / "prom"
    prom.mkdir()
    env = gateway_env(
        tmp_path,
        PROMETHEUS_MULTIPROC_DIR=str(prom),
        GATEWAY_ACCESS_LOG_FILE=str(tmp_path / "logs" / "access-{pid}.jsonl"),
    )
    assert manage(env, "migrate", "--noinput").returncode == 0
    key = manage(env, "issue_token", "dora", "--create-user").stdout.strip().splitlines()[-1]
    first, second = Gateway(env), Gateway(env)
    try:
        for server, count in ((first, 3), (second, 2)):
            for _ in range(count):  # no upstream configured: 503 upstream_not_configured, recorded
                assert post_chat(server.url, key, "req-mp", model="gemini-2.5-flash").status_code == 503
        for server in (first, second):
            samples = scrape(server.url)
            assert value(samples, "gateway_requests_total", dialect="openai", model="other", status="503") == 5
            assert value(samples, "gateway_upstream_errors_total", upstream="none", code="upstream_not_configured") == 5
            assert value(samples, "gateway_request_duration_seconds_count", dialect="openai", model="other") == 5
            assert value(samples, "gateway_requests_in_flight") == 0
    finally:
        outputs = [first.stop(), second.stop()]
    stdout_lines = [json.loads(line) for out in outputs for line in out.splitlines() if line.startswith("{")]
    assert len(stdout_lines) == 5 and {line["status"] for line in stdout_lines} == {503}
    assert all(key.split("_", 1)[1] not in out for out in outputs)
    logs = sorted((tmp_path / "logs").iterdir())
    assert sorted(len(f.read_text().splitlines()) for f in logs) == [2, 3]  # one file per process
    after_exit = subprocess.run(
        [
            sys.executable,
            "-c",
            "from prometheus_client import CollectorRegistry, generate_latest, multiprocess;"
            "r = CollectorRegistry(); multiprocess.MultiProcessCollector(r); print(generate_latest(r).decode())",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert (
        value(
            {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(after_exit)
                for s in f.samples
            },
            "gateway_requests_total",
            dialect="openai",
            model="other",
            status="503",
        )
        == 5
    )


def test_bad_multiprocess_dir_fails_at_start(tmp_path):
    from tests.test_server import gateway_env

    result = manage(gateway_env(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "missing")), "check")
    assert result.returncode != 0 and "PROMETHEUS_MULTIPROC_DIR" in result.stderr


def test_request_finished_never_raises(caplog):
    row = fake_row(request_id="req-broken", created_at=None)  # a malformed row: logged, not raised
    observability.request_finished(row)
    assert "req-broken" in caplog.text
