"""OpenTelemetry tracing of proxied requests: one server span per request, one client span per upstream call.

On only when OTEL_EXPORTER_OTLP_ENDPOINT is set (settings.OTEL_ENABLED; the `otel` extra installs the
SDK): `configure()` runs once at start and exports in batches over OTLP/HTTP from the SDK's own thread,
so a collector that is slow or gone never holds up a request (spans past the queue are dropped).
Off, nothing here imports OpenTelemetry and the request path pays one `ctx.otel is None` check per hook.

    client traceparent ─▶ span "chat gpt-4o" (SERVER, GenAI attributes; begun in dialects/surface.serve,
                          ended when the usage row is recorded: ledger/usage.record)
                            └─ span "POST" (CLIENT, one per upstream HTTP call: TracedTransport wraps
                               the shared client's transport; its body's end ends it) ─▶ traceparent
                               sent to the upstream

Attributes follow the GenAI semantic conventions (gen_ai.provider.name and the older gen_ai.system,
gen_ai.operation.name, gen_ai.request.model = the name the client asked for, gen_ai.response.model,
gen_ai.usage.*, gen_ai.response.finish_reasons) plus `gateway.*` ones (upstream, upstream model,
dialect, endpoint, key prefix). Prompts are added (gen_ai.input.messages) only for requests kept by
detailed logging (ops/detail_log.py); keys never: upstream URLs lose their query string.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from proxy_app.ops import detail_log

on = False  # a tracer is installed (configure() or install())
_tracer: Any = None
_otel: Any = None  # the opentelemetry modules, imported when tracing is switched on

PROVIDERS = {"gemini": "gcp.gemini", "openai": "openai"}  # Upstream.kind -> gen_ai.provider.name
# ctx.endpoint -> gen_ai.operation.name (others, e.g. model lists and token counts, have none)
OPERATIONS = {
    "chat.completions": "chat",
    "chat": "chat",
    "messages": "chat",
    "responses": "chat",
    "generateContent": "generate_content",
    "streamGenerateContent": "generate_content",
    "send_message": "chat",
    "sessions.message": "chat",
    "completions": "text_completion",
    "generate": "text_completion",
    "embeddings": "embeddings",
    "embed": "embeddings",
    "embedContent": "embeddings",
    "batchEmbedContents": "embeddings",
}


class _Modules:
    def __init__(self) -> None:
        from opentelemetry import context, propagate, trace

        self.context, self.propagate, self.trace = context, propagate, trace


def configure() -> None:
    """Start-up (apps.ready) with OTEL_EXPORTER_OTLP_ENDPOINT set: batched OTLP/HTTP export. The
    exporter reads the standard OTEL_EXPORTER_OTLP_* variables (headers, timeout) itself."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    install(BatchSpanProcessor(OTLPSpanExporter()))


def install(processor) -> Any:
    """Trace every later request into `processor` (tests pass a SimpleSpanProcessor over the SDK's
    InMemorySpanExporter); returns the TracerProvider. Upstream clients built before keep their
    untraced transport: call upstreams.http.reset_clients() after."""
    global on, _tracer, _otel
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    _otel = _Modules()
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or "llm-gateway"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(processor)
    _tracer = provider.get_tracer("proxy_app")
    on = True
    return provider


def uninstall() -> None:
    """Back to off (tests)."""
    global on, _tracer
    on, _tracer = False, None


@dataclass
class OpenSpan:
    """The request's span while it runs (CallContext.otel), and what the replies told about it."""

    span: Any
    finish_reasons: list[str] = field(default_factory=list)
    response_model: str = ""


def begin(ctx, headers) -> None:
    """The request's span, child of the client's `traceparent` when it sent one; it becomes the
    current span of this request's task, so the upstream calls' spans hang under it."""
    parent = _otel.propagate.extract(headers)
    operation = OPERATIONS.get(ctx.endpoint)
    attributes = {"gateway.dialect": ctx.dialect, "gateway.endpoint": ctx.endpoint}
    if operation:
        attributes["gen_ai.operation.name"] = operation
    span = _tracer.start_span(
        operation or ctx.endpoint, context=parent, kind=_otel.trace.SpanKind.SERVER, attributes=attributes
    )
    ctx.otel = OpenSpan(span)
    # Never detached: the request runs in a task of its own, and that task's context ends with it.
    _otel.context.attach(_otel.trace.set_span_in_context(span, parent))


def routed(ctx, kind: str) -> None:
    """The model resolved to an upstream of this kind."""
    provider = PROVIDERS.get(kind, kind)
    ctx.otel.span.set_attributes({"gen_ai.provider.name": provider, "gen_ai.system": provider})


def note_reply(ctx, reply: Any) -> None:
    """A non-streamed reply (hub.ChatResponse or a native dict): finish reasons and model."""
    _note(ctx.otel, reply)


def watching(ctx, probe):
    """The stream probe (call/pipeline.Probe), also noting finish reasons and model of each event."""
    held, check = ctx.otel, probe.check

    def noted(event: Any) -> None:
        _note(held, event)
        check(event)

    return dataclasses.replace(probe, check=noted)


def _note(held: OpenSpan, reply: Any) -> None:
    if isinstance(reply, dict):
        model = reply.get("model") or reply.get("modelVersion")
        if model and isinstance(model, str):
            held.response_model = model
        items = reply.get("choices") or reply.get("candidates") or ()
        reasons = [i.get("finish_reason") or i.get("finishReason") for i in items if isinstance(i, dict)]
    else:
        items = getattr(reply, "choices", None) or getattr(reply, "deltas", None) or ()
        reasons = [getattr(i, "finish_reason", None) for i in items]
    held.finish_reasons.extend(str(r) for r in reasons if r)


def finish(ctx, row=None, *, status: int | None = None) -> None:
    """End the request's span: with its usage row (ledger/usage.record), or with only the answer's
    status for a request that records none (a model list)."""
    held, ctx.otel = ctx.otel, None
    if held is None:
        return
    span = held.span
    model = ctx.requested_model
    if model:
        span.update_name(f"{OPERATIONS.get(ctx.endpoint) or ctx.endpoint} {model}")
    attributes: dict[str, Any] = {"gateway.request_id": ctx.request_id, "gateway.key_prefix": ctx.key_prefix}
    if model:
        attributes["gen_ai.request.model"] = model
    if ctx.upstream_name:
        attributes["gateway.upstream.name"] = ctx.upstream_name
        attributes["gateway.upstream.model"] = ctx.upstream_model
    if held.response_model or ctx.upstream_model:
        attributes["gen_ai.response.model"] = held.response_model or ctx.upstream_model
    if held.finish_reasons:
        attributes["gen_ai.response.finish_reasons"] = held.finish_reasons
    if row is not None:
        status = row.status
        attributes.update(
            {
                "gen_ai.usage.input_tokens": row.prompt_tokens,
                "gen_ai.usage.output_tokens": row.completion_tokens,
                "gateway.usage.token_source": row.token_source,
                "gateway.streamed": row.streamed,
            }
        )
        if row.error_code:
            attributes["error.type"] = row.error_code
        if row.detailed and (body := detail_log.client_body()) is not None:
            attributes["gen_ai.input.messages"] = _messages(body)
    if status is not None:
        attributes["http.response.status_code"] = status
        if status >= 500:
            span.set_status(_otel.trace.StatusCode.ERROR)
            attributes.setdefault("error.type", str(status))
    span.set_attributes(attributes)
    span.end()


def _messages(body: Any) -> str:
    """The prompt of a client body as JSON (already stripped of inline media by detailed logging)."""
    if isinstance(body, dict):
        for key in ("messages", "contents", "input", "prompt"):
            if key in body:
                body = {k: body[k] for k in ("system", "systemInstruction", "instructions", key) if k in body}
                break
    return orjson.dumps(body, default=str).decode()


class TracedTransport(httpx.AsyncBaseTransport):
    """One CLIENT span per upstream HTTP call (so retries and failover attempts get one each), from
    send until the response body is closed; the call carries the span's `traceparent`."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        span = _tracer.start_span(
            request.method,
            kind=_otel.trace.SpanKind.CLIENT,
            attributes={
                "http.request.method": request.method,
                "server.address": url.host,
                "server.port": url.port or (443 if url.scheme == "https" else 80),
                "url.full": str(url.copy_with(query=None, fragment=None)),  # `?key=` never leaves
            },
        )
        _otel.propagate.inject(request.headers, context=_otel.trace.set_span_in_context(span))
        try:
            response = await self.inner.handle_async_request(request)
        except BaseException as exc:
            _failed(span, type(exc).__name__)
            span.end()
            raise
        span.set_attribute("http.response.status_code", response.status_code)
        if response.status_code >= 400:
            _failed(span, str(response.status_code))
        response.stream = _Ending(response.stream, span)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def _failed(span, kind: str) -> None:
    span.set_attribute("error.type", kind)
    span.set_status(_otel.trace.StatusCode.ERROR)


class _Ending(httpx.AsyncByteStream):
    """A response body that ends its call's span when it is closed (a stream: when it ended)."""

    def __init__(self, stream, span) -> None:
        self.stream, self.span = stream, span

    async def __aiter__(self):
        try:
            async for chunk in self.stream:
                yield chunk
        except Exception as exc:
            _failed(self.span, type(exc).__name__)
            raise

    async def aclose(self) -> None:
        if self.span.is_recording():
            self.span.end()
        await self.stream.aclose()
