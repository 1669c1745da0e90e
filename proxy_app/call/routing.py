"""Model name → Route (a pool of upstream members): mapped aliases, plain Gemini names, or 404/403/503.

The table (all mappings and upstreams) is read in one go and kept for MAPPING_CACHE_SECONDS, so
routing costs no query on the hot path and admin edits apply within seconds in every process.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async
from django.conf import settings

from accounts.authentication import KeyIdentity
from gateway_site.singleflight import SingleFlight
from proxy_app.core.errors import Forbidden, InvalidRequest, NotFound, UpstreamUnavailable
from proxy_app.models import ModelMapping, Upstream
from proxy_app.upstreams import KINDS
from proxy_app.upstreams.base import UpstreamConfig

GEMINI_PREFIXES = ("gemini-", "gemma-", "models/")
SEARCH_SUFFIX = ":search"
NO_UPSTREAM = (
    "No Gemini upstream is configured. Set GEMINI_API_KEY (and optionally GEMINI_BASE_URL) in the "
    "gateway's environment, or add one with `python manage.py add_upstream NAME --kind gemini "
    "--base-url URL --api-key KEY`."
)


@dataclass(frozen=True)
class Member:
    """One place an alias can be sent: an upstream and the model name there."""

    upstream: UpstreamConfig
    upstream_model: str
    priority: int = 0
    weight: int = 1


@dataclass(frozen=True)
class Route:
    """Where a request goes: its pool's members, lowest priority number first (never empty;
    one member for plain Gemini names and single-upstream aliases). proxy_app.call.failover
    decides the order they are tried in."""

    members: tuple[Member, ...]
    grounding: bool = False
    alias: str = ""  # the mapping's alias ("" for plain Gemini names)

    @property
    def upstream(self) -> UpstreamConfig:
        return self.members[0].upstream

    @property
    def upstream_model(self) -> str:
        return self.members[0].upstream_model

    @property
    def pooled(self) -> bool:
        return len(self.members) > 1

    def same_family(self, dialect: str) -> bool:
        """Every member is of the client dialect's own family: its request can pass through as is
        (a pool mixing kinds is translated, so any member can take it)."""
        return all(m.upstream.kind == dialect for m in self.members)


@dataclass(frozen=True)
class Mapping:
    alias: str
    members: tuple[tuple[UpstreamConfig | None, str, int, int], ...]  # (upstream or default, model, priority, weight)
    hidden: bool
    created: int = 0  # Unix seconds, for model lists

    @property
    def upstream(self) -> UpstreamConfig | None:
        return self.members[0][0]

    @property
    def upstream_model(self) -> str:
        return self.members[0][1]


@dataclass
class Table:
    mappings: dict[str, Mapping]
    default_gemini: UpstreamConfig | None
    loaded_at: float
    routes: dict[tuple[str, bool], Route] = field(default_factory=dict)  # built on first use


_table: Table | None = None
_flight = SingleFlight()  # a burst that finds the table stale reads it once


def _config(up: Upstream) -> UpstreamConfig:
    return UpstreamConfig(
        name=up.name,
        kind=up.kind,
        base_url=up.base_url.rstrip("/"),
        api_key=up.api_key(),
        max_concurrent=up.max_concurrent,
        rpm=up.rpm,
        tpm=up.tpm,
    )


def _load_table() -> Table:
    upstreams = {u.pk: _config(u) for u in Upstream.objects.filter(enabled=True)}
    mappings = {}
    for m in ModelMapping.objects.prefetch_related("members"):
        # Members on a disabled upstream drop out; an alias left with none is unknown until re-enabled.
        members = tuple(
            (upstreams.get(p.upstream_id), p.upstream_model, p.priority, p.weight)
            for p in m.members.all()
            if p.upstream_id is None or p.upstream_id in upstreams
        )
        if members:
            created = int(m.created_at.timestamp())
            mappings[m.alias] = Mapping(m.alias, members, m.hidden, created)
    return Table(mappings, _default_gemini(list(upstreams.values())), time.monotonic())


def _default_gemini(db_upstreams: list[UpstreamConfig]) -> UpstreamConfig | None:
    if settings.GEMINI_API_KEY:
        return UpstreamConfig("gemini", "gemini", settings.GEMINI_BASE_URL, settings.GEMINI_API_KEY)
    return next((u for u in db_upstreams if u.kind == "gemini"), None)


async def table() -> Table:
    global _table
    if _table is None or time.monotonic() - _table.loaded_at > settings.MAPPING_CACHE_SECONDS:
        _table = await _flight.run("table", sync_to_async(_load_table))
    return _table


def clear_cache() -> None:
    global _table
    _table = None


def _usable(config: UpstreamConfig | None) -> UpstreamConfig:
    if config is None:
        raise UpstreamUnavailable(NO_UPSTREAM, code="upstream_not_configured")
    if config.kind not in KINDS:
        raise UpstreamUnavailable(
            f"upstream '{config.name}' has kind '{config.kind}', which this gateway cannot call yet"
        )
    return config


LATEST_TAG = ":latest"


async def resolve(model: str, identity: KeyIdentity) -> Route:
    """Exact alias first; then `<name>:latest` as `<name>` (Ollama clients add the tag);
    then `<alias or gemini model>:search` (Google Search grounding)."""
    tbl = await table()
    if model.endswith(LATEST_TAG) and model not in tbl.mappings:
        model = model[: -len(LATEST_TAG)]
    base, grounding = (model[: -len(SEARCH_SUFFIX)], True) if model.endswith(SEARCH_SUFFIX) else (model, False)
    mapping = tbl.mappings.get(model) or (tbl.mappings.get(base) if grounding else None)
    if mapping is not None:
        if not identity.allows(mapping.alias):
            raise Forbidden(f"This API key may not use the model '{model}'.")
        return _pool_route(tbl, mapping, grounding and mapping.alias != model)
    if base.startswith(GEMINI_PREFIXES):
        _check_passed_name(base)
        if not identity.allows(model) and not identity.allows(base):
            raise Forbidden(f"This API key may not use the model '{model}'.")
        return Route((Member(_usable(tbl.default_gemini), base.removeprefix("models/")),), grounding)
    raise NotFound(f"The model '{model}' does not exist or you do not have access to it.")


def _pool_route(tbl: Table, mapping: Mapping, grounding: bool) -> Route:
    """The mapping's Route, built once per table load (not per request)."""
    route = tbl.routes.get((mapping.alias, grounding))
    if route is None:
        members, failure = [], None
        for upstream, model, priority, weight in mapping.members:
            try:  # a member this gateway cannot call (no default Gemini key, unknown kind) drops out
                members.append(Member(_usable(upstream or tbl.default_gemini), model, priority, max(weight, 1)))
            except UpstreamUnavailable as err:
                failure = failure or err
        if not members:
            raise failure
        route = tbl.routes[(mapping.alias, grounding)] = Route(tuple(members), grounding, mapping.alias)
    return route


# A Gemini model name the client chose goes into the upstream's URL: only what model ids are made of
# (a control character made httpx refuse the URL, a 500; `..` would climb out of /models/).
_MODEL_NAME = re.compile(r"[A-Za-z0-9._:@/-]+")


def _check_passed_name(name: str) -> None:
    if not _MODEL_NAME.fullmatch(name) or ".." in name or "//" in name:
        raise InvalidRequest(
            f"The model name {name!r} has characters a model name cannot have (letters, digits and ._:@/- only).",
            param="model",
        )


async def visible_aliases(identity: KeyIdentity) -> list[Mapping]:
    tbl = await table()
    return [m for m in tbl.mappings.values() if not m.hidden and identity.allows(m.alias)]
