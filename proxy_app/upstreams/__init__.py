"""Upstream kinds: `KINDS` maps `Upstream.kind` to its client class; `client_for` builds one."""

from __future__ import annotations

from functools import cache

from django.utils.module_loading import import_string

from proxy_app.upstreams.base import UpstreamClient, UpstreamConfig

KINDS = {
    "gemini": "proxy_app.upstreams.gemini.client.GeminiClient",
    "openai": "proxy_app.upstreams.openai_compat.client.OpenAICompatClient",
}


@cache
def _client_class(kind: str) -> type[UpstreamClient]:
    return import_string(KINDS[kind])


def client_for(config: UpstreamConfig) -> UpstreamClient:
    return _client_class(config.kind)(config)
