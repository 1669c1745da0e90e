"""What every upstream client offers, and how transport failures become gateway errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import orjson
from httpx_sse import EventSource, SSEError

from proxy_app.core import hub
from proxy_app.core.errors import GatewayError, InvalidRequest, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from proxy_app.ops import detail_log
from proxy_app.upstreams.http import FirstByteTimeout, PoolFull


@dataclass(frozen=True)
class UpstreamConfig:
    """An upstream as the request path sees it (from the DB or from GEMINI_* env variables)."""

    name: str
    kind: str
    base_url: str
    api_key: str
    max_concurrent: int | None = None  # per-upstream limits (proxy_app.ledger.upstream_limits)
    rpm: int | None = None
    tpm: int | None = None

    @property
    def limited(self) -> bool:
        return self.max_concurrent is not None or self.rpm is not None or self.tpm is not None


class UpstreamClient:
    def __init__(self, config: UpstreamConfig) -> None:
        self.config = config

    async def chat(self, req: hub.ChatRequest) -> hub.ChatResponse:
        raise NotImplementedError

    def stream_chat(self, req: hub.ChatRequest) -> AsyncIterator[hub.StreamEvent]:
        raise NotImplementedError

    async def embed(self, req: hub.EmbedRequest) -> hub.EmbedResponse:
        raise NotImplementedError

    async def list_models(self) -> list[hub.ModelInfo]:
        raise NotImplementedError


@contextmanager
def upstream_failures(name: str) -> Iterator[None]:
    """Map httpx failures: timeout → 504, cannot connect → 503, broken connection → 502."""
    try:
        yield
    except PoolFull as exc:  # our own cap (upstreams/http.py), not the upstream's fault
        raise UpstreamUnavailable(
            f"the gateway is at its limit of open upstream calls ({exc}); retry shortly",
            code="upstream_capacity",
            retry_after=1,
        ) from None
    except FirstByteTimeout as exc:
        raise UpstreamTimeout(f"upstream '{name}' did not start its answer in time ({exc})") from None
    except httpx.TimeoutException:
        raise _unreachable(UpstreamTimeout(f"upstream '{name}' did not answer in time")) from None
    except (httpx.ConnectError, httpx.PoolTimeout):
        raise _unreachable(UpstreamUnavailable(f"could not connect to upstream '{name}'")) from None
    except httpx.TransportError as exc:
        raise _unreachable(UpstreamError(f"connection to upstream '{name}' broke: {type(exc).__name__}")) from None


def _unreachable(err: GatewayError) -> GatewayError:
    err.unreachable = True  # another pool member may answer (before the first byte only)
    return err


def encode_body(body: object) -> bytes:
    """An upstream request body as JSON. Whatever the client sent parsed, but a body nested deeper
    than the encoder goes (orjson: 255 levels; the parser takes 1024) or holding an integer past
    64 bits cannot be sent on: that is the client's body, so 400, not a crash."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError as exc:
        raise InvalidRequest(
            f"The request cannot be forwarded: {exc} (nesting deeper than 254 levels or an integer beyond 64 bits)."
        ) from None


def json_body(response: httpx.Response, name: str) -> object:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        detail_log.upstream_response(response.status_code, response.text[:4096])
        raise UpstreamError(f"upstream '{name}' sent a reply that is not JSON") from None
    detail_log.upstream_response(response.status_code, body)
    return body


def error_body(response: httpx.Response) -> object:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = response.text[:500]
    detail_log.upstream_response(response.status_code, body)
    return body


async def sse_objects(response: httpx.Response, name: str, on_done=None) -> AsyncIterator[dict]:
    """The JSON object of each SSE event (httpx-sse does the framing). With `on_done`, an OpenAI
    `data: [DONE]` ends the stream and calls it; Gemini streams simply end."""
    try:
        async for sse in EventSource(response).aiter_sse():
            if not sse.data:
                continue
            if on_done is not None and sse.data.startswith("[DONE]"):  # as openai-python does
                on_done()
                return
            try:
                data = orjson.loads(sse.data)
            except orjson.JSONDecodeError:
                raise UpstreamError(f"upstream '{name}' sent a stream event that is not JSON") from None
            if not isinstance(data, dict):
                raise UpstreamError(f"upstream '{name}' sent an unexpected stream event")
            detail_log.upstream_event(data)
            yield data
    except SSEError:
        raise UpstreamError(f"upstream '{name}' did not answer with an event stream") from None
