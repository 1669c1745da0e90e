"""Client for OpenAI-compatible servers: URLs, Bearer key, SSE reading, error mapping.

The base URL is the one the provider documents for its OpenAI SDK (`https://api.openai.com/v1`,
`https://api.deepseek.com/v1`, `http://127.0.0.1:11434/v1`); the client appends /chat/completions,
/embeddings and /models. Bodies are built and read by proxy_app.upstreams.openai_compat.codec; this
module only moves them. Streams always ask for the usage chunk (stream_options.include_usage).

Two ways in: the hub methods of UpstreamClient (any client dialect), and `forward_*` for an
OpenAI client, whose body passes through unchanged; the caller renames the model and strips the
usage chunk the client did not ask for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import httpx

from proxy_app.core import hub
from proxy_app.core.errors import GatewayError, UpstreamError
from proxy_app.upstreams.base import UpstreamClient, encode_body, error_body, json_body, sse_objects, upstream_failures
from proxy_app.upstreams.http import get_client
from proxy_app.upstreams.openai_compat import codec


@dataclass
class _StreamEnd:
    done: bool = False  # the upstream sent `data: [DONE]`

    def mark_done(self) -> None:
        self.done = True


class OpenAICompatClient(UpstreamClient):
    def _url(self, path: str) -> str:
        return self.config.base_url.rstrip("/") + path

    def _headers(self, *, stream: bool = False) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "text/event-stream" if stream else "application/json"}
        if self.config.api_key:  # local servers (Ollama, vLLM) often run without one
            headers["authorization"] = f"Bearer {self.config.api_key}"
        return headers

    def _error(self, response: httpx.Response) -> GatewayError:
        return codec.parse_error(
            response.status_code,
            error_body(response),
            response.headers.get("retry-after"),
            retry_after_ms=response.headers.get("retry-after-ms"),
        )

    def _reply(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code != 200:
            raise self._error(response)
        body = json_body(response, self.config.name)
        if not isinstance(body, dict):
            raise UpstreamError(f"upstream '{self.config.name}' sent an unexpected reply")
        error = codec.in_band_error(body)  # some servers answer 200 with an error object
        if error is not None:
            raise error
        return body

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with upstream_failures(self.config.name):
            response = await get_client().post(self._url(path), content=encode_body(body), headers=self._headers())
        return self._reply(response)

    async def _get(self, path: str) -> dict[str, Any]:
        with upstream_failures(self.config.name):
            response = await get_client().get(self._url(path), headers=self._headers())
        return self._reply(response)

    async def _chunks(self, body: dict[str, Any], end: _StreamEnd) -> AsyncIterator[dict[str, Any]]:
        """Each SSE data object of a /chat/completions stream, up to `[DONE]`; in-band errors raise."""
        payload = encode_body(body)
        with upstream_failures(self.config.name):
            async with get_client().stream(
                "POST", self._url("/chat/completions"), content=payload, headers=self._headers(stream=True)
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise self._error(response)
                async for data in sse_objects(response, self.config.name, on_done=end.mark_done):
                    error = codec.in_band_error(data)
                    if error is not None:
                        raise error
                    yield data

    def _incomplete(self) -> UpstreamError:
        return UpstreamError(f"upstream '{self.config.name}' ended the stream before the answer was complete")

    # --- hub side ---------------------------------------------------------------------------------

    async def chat(self, req: hub.ChatRequest) -> hub.ChatResponse:
        body = await self._post("/chat/completions", codec.build_chat_request(replace(req, stream=False)))
        resp = codec.parse_chat_response(body)
        if resp.usage.source == "estimated":  # the server reported none: estimate, flagged as such
            calls = [call for c in resp.choices for call in c.tool_calls]
            output = sum(hub.estimate_tokens(c.text + c.reasoning) for c in resp.choices)
            output += sum(hub.estimate_tokens(str(call.arguments)) for call in calls)
            resp.usage = hub.Usage(
                prompt_tokens=hub.estimate_prompt_tokens(req.messages), completion_tokens=output, source="estimated"
            )
        return resp

    async def stream_chat(self, req: hub.ChatRequest) -> AsyncIterator[hub.StreamEvent]:
        reader = codec.StreamReader()
        body = codec.build_chat_request(replace(req, stream=True))
        async for data in self._chunks(body, _StreamEnd()):
            event = reader.feed(data)
            if event.deltas or event.usage is not None:
                yield event
        tail = reader.end()
        if tail.deltas:
            yield tail
        if not reader.finished:  # dropped connection or a server that never finished: no fake stop
            raise self._incomplete()

    async def embed(self, req: hub.EmbedRequest) -> hub.EmbedResponse:
        resp = codec.parse_embed_response(await self._post("/embeddings", codec.build_embed_request(req)))
        if len(resp.vectors) != len(req.inputs):
            raise UpstreamError(
                f"upstream '{self.config.name}' returned {len(resp.vectors)} embeddings for {len(req.inputs)} inputs"
            )
        if resp.usage.source == "estimated":
            tokens = sum(hub.estimate_tokens(text) for text in req.inputs)
            resp.usage = hub.Usage(prompt_tokens=tokens, source="estimated")
        return resp

    async def list_models(self) -> list[hub.ModelInfo]:
        return codec.parse_model_list(await self._get("/models"))

    # --- pass-through (OpenAI client → OpenAI-compatible upstream) -----------------------------------

    async def forward_chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """A non-streamed chat body as the client sent it; returns the upstream's JSON."""
        if body.get("stream") or "stream_options" in body:
            # OpenAI rejects stream_options without stream; this call is never streamed.
            body = {k: v for k, v in body.items() if k != "stream_options"} | {"stream": False}
        return await self._post("/chat/completions", body)

    async def forward_chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Each upstream chunk as sent, up to [DONE]; always asks the upstream for the usage chunk."""
        options = body.get("stream_options")
        options = options if isinstance(options, dict) else {}
        body = {**body, "stream": True, "stream_options": {**options, "include_usage": True}}
        end = _StreamEnd()
        finished = False
        async for data in self._chunks(body, end):
            finished = finished or _has_finish(data)
            yield data
        if not end.done and not finished:
            raise self._incomplete()

    async def forward_embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._post("/embeddings", body)


def _has_finish(chunk: dict[str, Any]) -> bool:
    choices = chunk.get("choices")
    return isinstance(choices, list) and any(isinstance(c, dict) and c.get("finish_reason") for c in choices)
