"""Client for Google's native Gemini REST API (v1beta): URLs, key header, SSE reading.

Bodies are built and read by codec.py (proxy_app.upstreams.gemini.codec); this module only moves them.
Streams are always requested with `alt=sse` (gemini.md §9.1), so no JSON-array parser is needed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from proxy_app.core import hub
from proxy_app.core.errors import UpstreamError
from proxy_app.upstreams.base import UpstreamClient, encode_body, error_body, json_body, sse_objects, upstream_failures
from proxy_app.upstreams.gemini import codec
from proxy_app.upstreams.http import get_client


class GeminiClient(UpstreamClient):
    def _url(self, model: str, method: str) -> str:
        model = model.removeprefix("models/")
        return f"{self.config.base_url}/v1beta/models/{model}:{method}"

    def _headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.config.api_key, "content-type": "application/json"}

    async def _post(self, url: str, body: dict) -> object:
        with upstream_failures(self.config.name):
            response = await get_client().post(url, content=encode_body(body), headers=self._headers())
        if response.status_code != 200:
            raise codec.parse_error(response.status_code, error_body(response), response.headers.get("retry-after"))
        return json_body(response, self.config.name)

    async def chat(self, req: hub.ChatRequest) -> hub.ChatResponse:
        body = await self._post(self._url(req.upstream_model, "generateContent"), codec.build_generate_request(req))
        if not isinstance(body, dict):
            raise UpstreamError(f"upstream '{self.config.name}' sent an unexpected reply")
        return codec.parse_generate_response(body)

    async def stream_chat(self, req: hub.ChatRequest) -> AsyncIterator[hub.StreamEvent]:
        url = self._url(req.upstream_model, "streamGenerateContent") + "?alt=sse"
        payload = encode_body(codec.build_generate_request(req))
        called: set[int] = set()
        finished: set[int] = set()
        with upstream_failures(self.config.name):
            async with get_client().stream("POST", url, content=payload, headers=self._headers()) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise codec.parse_error(
                        response.status_code, error_body(response), response.headers.get("retry-after")
                    )
                async for data in sse_objects(response, self.config.name):
                    event = codec.parse_stream_chunk(data)
                    _settle_finish(event, called, finished)
                    yield event
        if not finished:
            raise UpstreamError(f"upstream '{self.config.name}' ended the stream before the answer was complete")

    async def forward(self, model: str, method: str, body: dict) -> dict:
        """Pass a native request through (Gemini-native clients): only model and key change."""
        reply = await self._post(self._url(model, method), body)
        if not isinstance(reply, dict):
            raise UpstreamError(f"upstream '{self.config.name}' sent an unexpected reply")
        return reply

    async def forward_stream(self, model: str, body: dict) -> AsyncIterator[dict]:
        """Native stream pass-through: yields each upstream event object as it arrives."""
        url = self._url(model, "streamGenerateContent") + "?alt=sse"
        finished = False
        with upstream_failures(self.config.name):
            async with get_client().stream("POST", url, content=encode_body(body), headers=self._headers()) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise codec.parse_error(
                        response.status_code, error_body(response), response.headers.get("retry-after")
                    )
                async for data in sse_objects(response, self.config.name):
                    if "error" in data:
                        raise codec.parse_error(_status_of(data), data)
                    finished = finished or _has_finish(data)
                    yield data
        if not finished:
            raise UpstreamError(f"upstream '{self.config.name}' ended the stream before the answer was complete")

    async def embed(self, req: hub.EmbedRequest) -> hub.EmbedResponse:
        url = self._url(req.upstream_model, "batchEmbedContents")
        step = codec.EMBED_BATCH_LIMIT
        batches = [req.inputs[i : i + step] for i in range(0, len(req.inputs), step)]
        bodies = await asyncio.gather(*(self._post(url, codec.build_batch_embed_request(req, b)) for b in batches))
        vectors = [v for body in bodies for v in codec.parse_batch_embed_response(body)]
        if len(vectors) != len(req.inputs):
            raise UpstreamError(
                f"upstream '{self.config.name}' returned {len(vectors)} embeddings for {len(req.inputs)} inputs"
            )
        # Gemini reports no usage for embeddings (gemini.md §11): estimate, flagged as such.
        tokens = sum(hub.estimate_tokens(text) for text in req.inputs)
        return hub.EmbedResponse(vectors=vectors, usage=hub.Usage(prompt_tokens=tokens, source="estimated"))

    async def list_models(self) -> list[hub.ModelInfo]:
        models: list[hub.ModelInfo] = []
        params = {"pageSize": "1000"}
        for _ in range(20):  # bounded: a misbehaving upstream must not loop us forever
            with upstream_failures(self.config.name):
                response = await get_client().get(
                    f"{self.config.base_url}/v1beta/models", params=params, headers=self._headers()
                )
            if response.status_code != 200:
                raise codec.parse_error(response.status_code, error_body(response))
            body = json_body(response, self.config.name)
            if not isinstance(body, dict):
                raise UpstreamError(f"upstream '{self.config.name}' sent an unexpected model list")
            models += [codec.parse_model(m) for m in body.get("models") or [] if isinstance(m, dict)]
            if not body.get("nextPageToken"):
                break
            params["pageToken"] = str(body["nextPageToken"])
        return models


def _settle_finish(event: hub.StreamEvent, called: set[int], finished: set[int]) -> None:
    """Gemini says STOP after a function call; OpenAI clients expect tool_calls (mapping.md §6.4)."""
    for delta in event.deltas:
        if delta.tool_calls:
            called.add(delta.index)
        if delta.finish_reason == "stop" and delta.index in called:
            delta.finish_reason = "tool_calls"
        if delta.finish_reason:
            finished.add(delta.index)


def _status_of(event: dict) -> int:
    error = event.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, int) and 400 <= code <= 599 else 502


def _has_finish(event: dict) -> bool:
    candidates = event.get("candidates")
    if not isinstance(candidates, list):
        return isinstance(event.get("promptFeedback"), dict)  # a blocked prompt ends the stream
    return any(isinstance(c, dict) and c.get("finishReason") for c in candidates)
