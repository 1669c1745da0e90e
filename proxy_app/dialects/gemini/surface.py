"""The Gemini-native dialect's HTTP surface: /v1beta/models/... and /v1/models/..., as Google's
SDKs and the Gemini CLI call generativelanguage.googleapis.com.

The key comes as `x-goog-api-key`, `?key=` or `Authorization: Bearer` (Gemini CLI option) and
is always the gateway key. A model on a Gemini upstream passes through natively (only model
fields and the key change, so thought signatures, tools, safety settings, cachedContent survive);
a model on another upstream is translated through the hub.
"""

from __future__ import annotations

import orjson
from django.http import HttpRequest, HttpResponse
from django.urls import path, re_path

from accounts.authentication import KeyIdentity
from proxy_app.call import pipeline
from proxy_app.core import hub
from proxy_app.core.context import CallContext
from proxy_app.core.errors import GatewayError, InvalidRequest, NotFound
from proxy_app.dialects.gemini import request as gn
from proxy_app.dialects.http import json_response, read_json, stream_response
from proxy_app.dialects.surface import Dialect, bearer, endpoint, stream_frames, unknown_route
from proxy_app.ledger import usage
from proxy_app.upstreams.gemini.codec import SKIP_SIGNATURE

STREAM = "streamGenerateContent"
METHODS = ("generateContent", STREAM, "countTokens", "embedContent", "batchEmbedContents")


def google_key(request: HttpRequest) -> str:
    return request.headers.get("x-goog-api-key") or request.GET.get("key") or bearer(request)


def is_google_client(request: HttpRequest) -> bool:
    """On routes shared with OpenAI (GET /v1/models...): Google clients send their key their own way
    (x-goog-api-key or ?key=), OpenAI clients a Bearer token."""
    return "x-goog-api-key" in request.headers or "key" in request.GET


claims = is_google_client
PREFIXES = ("/v1beta/", "/v1/models")


DIALECT = Dialect("gemini", google_key, gn.build_error, 'Bearer realm="gateway"')


def _native_chars(obj: dict) -> int:
    candidates = obj.get("candidates")
    if not isinstance(candidates, list):
        return 0
    parts = [p for c in candidates if isinstance(c, dict) for p in ((c.get("content") or {}).get("parts") or [])]
    return sum(
        len(p.get("text") or "") + len(orjson.dumps(p.get("functionCall") or "")) for p in parts if isinstance(p, dict)
    )


def _reply_signatures(obj: dict) -> list[str]:
    """Thought signatures in a native reply or stream event (candidates[].content.parts[])."""
    candidates = obj.get("candidates") if isinstance(obj, dict) else None
    if not isinstance(candidates, list):
        return []
    contents = [c.get("content") for c in candidates if isinstance(c, dict)]
    return _signatures([c for c in contents if isinstance(c, dict)])


def _signatures(contents: list) -> list[str]:
    lists = (c.get("parts") for c in contents if isinstance(c, dict))  # a pass-through body is unchecked:
    parts = [p for found in lists if isinstance(found, list) for p in found if isinstance(p, dict)]  # any shape
    return [p["thoughtSignature"] for p in parts if isinstance(p.get("thoughtSignature"), str)]


class _Signed:
    """A native body whose history may carry thought signatures: the latest one (pool affinity),
    and `unsign()`, which sends Gemini's documented skip value on function calls instead (and no
    signature elsewhere) when the conversation must move to another key (mapping.md §5.3)."""

    def __init__(self, body: dict) -> None:
        self.body = body
        contents = body.get("contents")
        found = _signatures(contents) if isinstance(contents, list) else []
        self.latest = found[-1] if found else None

    def unsign(self) -> None:
        if self.latest is None:
            return
        contents = []
        for content in self.body.get("contents") or []:
            if isinstance(content, dict) and isinstance(content.get("parts"), list):
                content = {**content, "parts": [_unsigned(p) for p in content["parts"]]}
            contents.append(content)
        self.body, self.latest = {**self.body, "contents": contents}, None


def _unsigned(part: object) -> object:
    if not isinstance(part, dict) or "thoughtSignature" not in part:
        return part
    rest = {k: v for k, v in part.items() if k != "thoughtSignature"}
    return {**rest, "thoughtSignature": SKIP_SIGNATURE} if "functionCall" in part else rest


NATIVE_PROBE = pipeline.Probe(usage=gn.usage_of, chars=_native_chars, signatures=_reply_signatures)


async def model_method(request: HttpRequest, identity: KeyIdentity, ctx: CallContext, tail: str) -> HttpResponse:
    model, method = gn.split_model_path(tail)
    if method not in METHODS:
        raise NotFound(f"Method '{method or tail}' is not supported on models.", code="not_found")
    ctx.endpoint = method
    body = gn.normalise(read_json(request))
    route = await pipeline.check_model(model, identity, ctx)
    if route.same_family("gemini"):
        gn.check_embed_dimensions(body, method)
        return await _pass_through(request, body, model, method, identity, ctx)
    if method in ("embedContent", "batchEmbedContents"):
        req = gn.parse_embed_request(body, model, method)
        return json_response(gn.build_embed_response(await pipeline.embed(req, identity, ctx), method))
    if method == "countTokens":
        return _count_locally(body, ctx)
    req = gn.parse_generate_request(body, model, stream=method == STREAM)
    if method == STREAM:
        encoder = gn.GenerateStreamEncoder(model, sse=_wants_sse(request), include_thoughts=req.include_thoughts)
        events = await pipeline.run_stream(req, identity, ctx)
        return stream_response(stream_frames(events, encoder), encoder.media_type)
    resp = await pipeline.run_chat(req, identity, ctx)
    return json_response(gn.build_generate_response(resp, model, include_thoughts=req.include_thoughts))


def _admission_estimate(body: dict, method: str) -> dict:
    """What to reserve against the limits: the prompt, plus the most the answer may take.
    countTokens costs nothing upstream and is not counted."""
    if method == "countTokens":
        return {}
    config = body.get("generationConfig") if isinstance(body.get("generationConfig"), dict) else {}
    most, n = config.get("maxOutputTokens"), config.get("candidateCount") or 1
    generating = method in ("generateContent", STREAM)
    max_tokens = (
        most * n if generating and isinstance(most, int) and isinstance(n, int) else (None if generating else 0)
    )
    choices = n if isinstance(n, int) and n > 0 else 1
    return {"prompt_estimate": gn.estimate_prompt(body), "max_tokens": max_tokens, "choices": choices}


def _capped(body: dict, method: str, ctx: CallContext) -> dict:
    """The body with generationConfig.maxOutputTokens set to the admission's output cap, when the
    client named none and a token or budget limit applies (quota.admit)."""
    estimate = _admission_estimate(body, method)
    if estimate.get("max_tokens") is not None or method not in ("generateContent", STREAM):
        return body
    cap = pipeline.output_cap(ctx, estimate["choices"])
    if cap is None:
        return body
    config = body.get("generationConfig") if isinstance(body.get("generationConfig"), dict) else {}
    return {**body, "generationConfig": {**config, "maxOutputTokens": cap}}


def _wants_sse(request: HttpRequest) -> bool:
    return request.GET.get("alt") == "sse"


def _count_locally(body: dict, ctx: CallContext) -> HttpResponse:
    """No countTokens upstream endpoint: estimate (mapping.md §8); the Gemini CLI calls it often."""
    usage.record(ctx, status=200, usage=hub.Usage(source="estimated"))
    messages = gn.parse_count_tokens_request(body)
    return json_response(gn.count_tokens_response(hub.estimate_prompt_tokens(messages)))


async def _pass_through(request, body: dict, alias: str, method: str, identity, ctx: CallContext) -> HttpResponse:
    signed = _Signed(body)

    def send(client, upstream_model: str):
        renamed = gn.rewrite_models(_capped(signed.body, method, ctx), method, upstream_model)
        if method == STREAM:
            return client.forward_stream(upstream_model, renamed)
        return client.forward(upstream_model, method, renamed)

    native = pipeline.Native(
        model=alias,
        send=send,
        usage_of=_native_usage(body, method),
        probe=NATIVE_PROBE,
        signature=signed.latest,
        unsign=signed.unsign,
        **_admission_estimate(body, method),
    )
    if method == STREAM:
        encoder = gn.GenerateStreamEncoder(alias, sse=_wants_sse(request), include_thoughts=True)
        events = await pipeline.forward_stream(native, identity, ctx)
        return stream_response(_relay(events, encoder, alias), encoder.media_type)
    reply = await pipeline.forward(native, identity, ctx)
    if method in ("embedContent", "batchEmbedContents"):
        return json_response(reply)
    return json_response(gn.rename_model_version(reply, alias))


def _native_usage(body: dict, method: str):
    """How a native reply's usage is read: Gemini reports it on generateContent; embeddings report
    none (the prompt estimate stands); countTokens costs nothing."""
    if method in ("embedContent", "batchEmbedContents"):
        estimate = hub.Usage(prompt_tokens=gn.estimate_prompt(body), source="estimated")
        return lambda _: estimate
    return gn.usage_of if method in ("generateContent", STREAM) else (lambda _: hub.Usage())


async def _relay(events, encoder: gn.GenerateStreamEncoder, alias: str):
    try:
        async for obj in events:
            yield encoder.frame(gn.rename_model_version(obj, alias))
    except GatewayError as err:
        yield encoder.error(err)
        return
    for frame in encoder.close():
        yield frame


def _page_size(request: HttpRequest) -> int | None:
    raw = request.GET.get("pageSize")
    if raw is None:
        return None
    if not raw.isdigit():
        raise InvalidRequest("pageSize must be a non-negative integer", param="pageSize")
    return int(raw)


async def list_models(request: HttpRequest, identity: KeyIdentity, ctx: CallContext) -> HttpResponse:
    infos = await pipeline.list_models(identity)
    return json_response(gn.build_model_list(infos, _page_size(request), request.GET.get("pageToken")))


async def get_model(request: HttpRequest, identity: KeyIdentity, ctx: CallContext, model_id: str) -> HttpResponse:
    name = model_id.removeprefix("models/")
    for info in await pipeline.list_models(identity):
        if info.id == name:
            return json_response(gn.build_model(info))
    await pipeline.check_model(name, identity, ctx)  # routable but unlisted; else 404 / 403
    return json_response(gn.build_model(hub.ModelInfo(id=name)))


_methods = endpoint(DIALECT, "POST", "generateContent", model_method)
_list = endpoint(DIALECT, "GET", "models.list", list_models)
_get = endpoint(DIALECT, "GET", "models.get", get_model)


def _routes(prefix: str) -> list:
    return [
        re_path(rf"^{prefix}/models/(?P<tail>[\s\S]+:[a-zA-Z]+)$", _methods),
        path(f"{prefix}/models", _list),
        path(f"{prefix}/models/<path:model_id>", _get),
    ]


# /v1/models/<m>:<method> is Gemini's alone; GET /v1/models[/id] is shared with OpenAI (`claims`).
urlpatterns = [*_routes("v1beta"), re_path(r"^v1/models/(?P<tail>[\s\S]+:[a-zA-Z]+)$", _methods)]
shared = [path("v1/models", _list), path("v1/models/<path:model_id>", _get)]
fallbacks = [re_path(r"^v1beta/(?P<rest>[\s\S]*)$", unknown_route(DIALECT))]
