"""What a request cost in USD: per-model prices (longest matching name prefix wins) times usage.

Prices come from the ModelPrice table (edited in the admin) over the built-in defaults below; a
row overrides the default with the same name, and a model nothing matches costs 0. The merged
table is cached PRICE_CACHE_SECONDS (default 30 s) per process: `aload()` refreshes it from the
async request path (the quota admission does), `load()` from sync code; `cost()` itself never
touches the database, so it is safe anywhere (including a `finally` under cancellation).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from django.conf import settings

from gateway_site.singleflight import SingleFlight
from proxy_app.core import hub

MILLION = Decimal(1_000_000)
MICRO = Decimal("0.000001")  # UsageRecord.cost_usd has 6 decimal places; counters count micro-USD


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: Decimal
    output: Decimal
    cached_input: Decimal = Decimal(0)

    def cost(self, usage: hub.Usage) -> Decimal:
        """Cached prompt tokens at the cached rate, the rest of the prompt at the input rate,
        completion (reasoning included, hub.Usage) at the output rate; rounded to 1e-6 USD."""
        cached = min(max(usage.cached_tokens, 0), max(usage.prompt_tokens, 0))
        uncached = max(usage.prompt_tokens, 0) - cached
        total = uncached * self.input + cached * self.cached_input + max(usage.completion_tokens, 0) * self.output
        return (total / MILLION).quantize(MICRO, rounding=ROUND_HALF_UP)


def _p(inp: str, out: str, cached: str) -> Price:
    return Price(Decimal(inp), Decimal(out), Decimal(cached))


# Google's list prices (paid tier, prompts up to 200k tokens; long-context tiers, grounding and
# audio rates are not modelled) as of writing, from https://ai.google.dev/gemini-api/docs/pricing.
# They change: edit them in the admin (Gateway → Model prices); a row there wins over these.
# Migration proxy_app 0003 copies this table into the admin once.
BUILT_IN_PRICES: dict[str, Price] = {
    "gemini-3-pro-preview": _p("2.00", "12.00", "0.20"),
    "gemini-3-flash-preview": _p("0.50", "3.00", "0.05"),
    "gemini-2.5-pro": _p("1.25", "10.00", "0.31"),
    "gemini-2.5-flash": _p("0.30", "2.50", "0.075"),
    "gemini-2.5-flash-lite": _p("0.10", "0.40", "0.025"),
    "gemini-2.0-flash": _p("0.10", "0.40", "0.025"),
    "gemini-embedding": _p("0.15", "0", "0"),
}


class PriceTable:
    def __init__(self, prices: dict[str, Price], loaded_at: float) -> None:
        self.loaded_at = loaded_at
        # "*" is the catch-all: the empty prefix, tried last.
        normalized = {("" if prefix == "*" else prefix): price for prefix, price in prices.items()}
        self._by_length = sorted(normalized.items(), key=lambda item: len(item[0]), reverse=True)

    def price_for(self, model: str) -> Price | None:
        name = model.removeprefix("models/")
        return next((price for prefix, price in self._by_length if name.startswith(prefix)), None)

    def cost(self, model: str, usage: hub.Usage) -> Decimal:
        price = self.price_for(model)
        return price.cost(usage) if price else Decimal("0.000000")


_table = PriceTable(BUILT_IN_PRICES, loaded_at=-math.inf)


def _cache_seconds() -> float:
    return getattr(settings, "PRICE_CACHE_SECONDS", 30.0)


def _merge(rows) -> PriceTable:
    prices = dict(BUILT_IN_PRICES)
    for model, inp, out, cached in rows:
        prices[model] = Price(inp, out, cached)
    return PriceTable(prices, loaded_at=time.monotonic())


_flight = SingleFlight()


def _fresh() -> bool:
    return time.monotonic() - _table.loaded_at < _cache_seconds()


def _rows():
    from proxy_app.models import ModelPrice

    fields = ("model", "input_per_million", "output_per_million", "cached_input_per_million")
    return ModelPrice.objects.values_list(*fields)


async def aload() -> PriceTable:
    """The current table, re-read from the database (async ORM) when older than the cache time."""
    global _table
    if not _fresh():
        _table = await _flight.run("prices", _aread)
    return _table


async def _aread() -> PriceTable:
    return _merge([row async for row in _rows()])


def load() -> PriceTable:
    """Sync twin of `aload()` (commands, admin, the usage writer thread)."""
    global _table
    if not _fresh():
        _table = _merge(list(_rows()))
    return _table


def clear_cache() -> None:
    global _table
    _table = PriceTable(BUILT_IN_PRICES, loaded_at=-math.inf)


def cost(model: str, usage: hub.Usage) -> Decimal:
    """USD cost of `usage` on `model` (the upstream model name), from the last loaded table."""
    return _table.cost(model, usage)


def micro_usd(amount: Decimal) -> int:
    """Whole micro-dollars, rounded up (so a reservation never under-counts)."""
    return int((amount / MICRO).to_integral_value(rounding=ROUND_CEILING))
