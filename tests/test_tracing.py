"""OpenTelemetry tracing (proxy_app/ops/tracing.py): spans read back from the SDK's InMemorySpanExporter
while the official SDKs drive the real gateway; the fake upstreams show what traceparent they received.
Also: off imports no OpenTelemetry, and a collector that is not there never stops the gateway serving."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from proxy_app.ops import detail_log, tracing
from proxy_app.upstreams import http as upstream_http
from tests.conftest import free_port
from tests.fakes.harness import served
from tests.test_server import ROOT, Gateway, migrated

PROMPT = "the secret-ish prompt about tracing"
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_PARENT = "00f067aa0ba902b7"


@pytest.fixture
def spans():
    """Every span the gateway finishes, in the order they ended."""
    exporter = InMemorySpanExporter()
    provider = tracing.install(SimpleSpanProcessor(exporter))
    upstream_http.reset_clients()  # the next upstream client gets the traced transport
    yield exporter
    tracing.uninstall()
    upstream_http.reset_clients()
    provider.shutdown()


def _pair(exporter, wait_for: int = 2):
    """(request span, [upstream call spans]) once `wait_for` spans ended (a stream's end the last)."""
    deadline = time.monotonic() + 5
    while len(exporter.get_finished_spans()) < wait_for and time.monotonic() < deadline:
        time.sleep(0.01)
    finished = exporter.get_finished_spans()
    servers = [s for s in finished if s.kind == SpanKind.SERVER]
    assert len(servers) == 1, [s.name for s in finished]
    return servers[0], [s for s in finished if s.kind == SpanKind.CLIENT]


def _assert_child(server, calls, fake) -> None:
    assert len(calls) == 1
    call = calls[0]
    assert call.parent.span_id == server.context.span_id
    assert call.context.trace_id == server.context.trace_id
    received = fake.requests[-1]["headers"]["traceparent"]
    version, trace_id, parent_id, _flags = received.split("-")
    assert (version, trace_id, parent_id) == ("00", f"{server.context.trace_id:032x}", f"{call.context.span_id:016x}")


def _no_prompt(span) -> None:
    assert "gen_ai.input.messages" not in span.attributes
    assert all(PROMPT not in str(value) for value in span.attributes.values())


def test_openai_chat_gets_a_request_span_and_a_child_per_upstream_call(spans, openai_client, fake_gemini, mapping):
    mapping("gpt-4o", "gemini-2.5-flash")
    openai_client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": PROMPT}],
        extra_headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01"},
    )
    server, calls = _pair(spans)
    assert server.name == "chat gpt-4o"
    assert f"{server.context.trace_id:032x}" == CLIENT_TRACE  # the client's trace continues
    assert f"{server.parent.span_id:016x}" == CLIENT_PARENT
    attrs = server.attributes
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == attrs["gen_ai.system"] == "gcp.gemini"
    assert attrs["gen_ai.request.model"] == "gpt-4o"
    assert attrs["gen_ai.response.model"] == "gemini-2.5-flash"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
    assert attrs["http.response.status_code"] == 200 and attrs["gateway.streamed"] is False
    _assert_child(server, calls, fake_gemini)
    assert calls[0].name == "POST"
    assert calls[0].attributes["server.address"] == "gemini.test"
    assert calls[0].attributes["http.response.status_code"] == 200
    assert "?" not in calls[0].attributes["url.full"]
    _no_prompt(server)
    for call in calls:
        _no_prompt(call)


def test_openai_stream_span_ends_with_the_stream(spans, openai_client, fake_gemini):
    stream = openai_client.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None
    server, calls = _pair(spans)
    assert server.name == "chat gemini-2.5-flash"
    assert server.parent is None  # no traceparent from the client: a new trace
    attrs = server.attributes
    assert attrs["gateway.streamed"] is True
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.usage.output_tokens"] == chunks[-1].usage.completion_tokens
    assert server.end_time >= calls[0].end_time  # the upstream body was read to its end first
    _assert_child(server, calls, fake_gemini)
    _no_prompt(server)


def test_gemini_native_stream_and_an_openai_compatible_upstream(spans, genai_client, fake_gemini, fake_openai, mapping):
    chunks = list(genai_client.models.generate_content_stream(model="gemini-2.5-flash", contents=PROMPT))
    assert chunks
    server, calls = _pair(spans)
    assert server.name == "generate_content gemini-2.5-flash"
    assert server.attributes["gateway.dialect"] == "gemini"
    assert server.attributes["gen_ai.response.finish_reasons"] == ("STOP",)  # the native stream's own words
    _assert_child(server, calls, fake_gemini)

    spans.clear()
    mapping("kimi", "gpt-4o-mini", upstream="compat")
    genai_client.models.generate_content(model="kimi", contents=PROMPT)  # translated to an OpenAI upstream
    server, calls = _pair(spans)
    assert server.attributes["gen_ai.provider.name"] == "openai"
    assert server.attributes["gen_ai.request.model"] == "kimi"
    assert server.attributes["gen_ai.response.model"] == "gpt-4o-mini"
    _assert_child(server, calls, fake_openai)


def test_errors_and_refusals_are_traced_without_an_upstream_call(spans, openai_client, fake_gemini):
    fake_gemini.script("error", status=503)
    with pytest.raises(Exception):  # noqa: B017 - the SDK's class for it does not matter here
        openai_client.chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": "x"}])
    server, calls = _pair(spans)
    assert server.attributes["http.response.status_code"] >= 500 and server.status.status_code.name == "ERROR"
    assert calls[0].attributes["http.response.status_code"] == 503 and calls[0].status.status_code.name == "ERROR"

    spans.clear()
    openai_client.models.list()  # no usage row: the span ends with the answer
    server, calls = _pair(spans, wait_for=1)
    assert server.name == "models.list" and server.attributes["http.response.status_code"] == 200


def test_the_prompt_is_traced_only_when_detailed_logging_keeps_the_request(
    spans, openai_client, fake_gemini, settings, tmp_path, transactional_db
):
    from proxy_app.models import LogSettings

    settings.DETAIL_LOG_DIR = tmp_path / "detail"
    LogSettings.objects.create(detailed_logging=True)
    detail_log.clear_cache()
    try:
        openai_client.chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": PROMPT}])
    finally:
        detail_log.clear_cache()
    server, calls = _pair(spans)
    assert PROMPT in server.attributes["gen_ai.input.messages"]
    assert openai_client.api_key not in str(dict(server.attributes))
    assert all("authorization" not in str(dict(call.attributes)).lower() for call in calls)


def test_off_imports_no_opentelemetry(tmp_path):
    code = (
        "import sys, django; django.setup();"
        "import gateway_site.asgi, proxy_app.urls, proxy_app.call.pipeline, proxy_app.upstreams.http;"
        "from proxy_app.ops import tracing; assert not tracing.on;"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    env = {"DJANGO_SETTINGS_MODULE": "gateway_site.settings", "GATEWAY_VAR_DIR": str(tmp_path), "PATH": ""}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_collector_that_is_not_there_never_stops_the_gateway(migrated):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    with served("tests.fakes.gemini", "--api-key", "k") as fake_url:
        env = migrated(GEMINI_API_KEY="k", GEMINI_BASE_URL=fake_url, OTEL_EXPORTER_OTLP_ENDPOINT=dead)
        key = _issue(env)
        server = Gateway(env)
        try:
            slowest = 0.0
            for stream in [False, True] * 10:
                started = time.monotonic()
                body = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
                resp = httpx.post(
                    f"{server.url}/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, json=body
                )
                assert resp.status_code == 200, resp.text
                slowest = max(slowest, time.monotonic() - started)
            received = httpx.get(f"{fake_url}/_fake/requests").json()
        finally:
            started = time.monotonic()
            server.stop()
            stopping = time.monotonic() - started
    assert slowest < 1.0  # the export (retrying a refused connection) never sits on a request
    assert len(received) == 20 and all(r["headers"]["traceparent"].startswith("00-") for r in received)
    assert stopping < 25  # the last flush gives up within the exporter's timeout


def _issue(env) -> str:
    from tests.test_server import manage

    result = manage(env, "issue_token", "tracer", "--create-user")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]
