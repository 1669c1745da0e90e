"""Rate-limit headers and prices (proxy_app/ledger/quota.py, proxy_app/ledger/pricing.py) over real limits
rows and both counter backends; the fixtures and helpers are test_quota's."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts import limits
from accounts.models import Limits
from proxy_app.core.errors import RateLimited
from proxy_app.ledger import pricing, quota
from proxy_app.models import ModelPrice
from tests.test_counters import backend  # noqa: F401  (fixture: memory and Redis)
from tests.test_quota import (  # noqa: F401  (fixtures)
    NOW,
    TO_MIDNIGHT,
    _close_orm_thread_connection,
    _fresh_limit_and_price_caches,
    admit,
    alice,
    counter_values,
    set_limits,
    used,
)

pytestmark = pytest.mark.django_db(transaction=True)

# --- headers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.2, "1s"), (1, "1s"), (59.5, "1m0s"), (360, "6m0s"), (3600, "1h0m0s"), (TO_MIDNIGHT, "11h59m30s")],
)
def test_reset_durations_look_like_openais(seconds, text):
    assert quota.format_duration(seconds) == text


async def test_headers_describe_the_tightest_limit(backend, alice):
    await set_limits(user_id=alice.user_id, rpm=60, tpm=10_000)
    await set_limits(api_key_id=alice.key_id, rpm=5)
    first = await admit(alice)
    assert first.headers() == {
        "x-ratelimit-limit-requests": "5",
        "x-ratelimit-remaining-requests": "4",
        "x-ratelimit-reset-requests": "30s",
        "x-ratelimit-limit-tokens": "10000",
        "x-ratelimit-remaining-tokens": "9700",
        "x-ratelimit-reset-tokens": "30s",
    }
    await Limits.objects.filter(user_id=alice.user_id).aupdate(daily_tokens=1000)
    limits.clear_cache()
    second = await admit(alice, now=NOW + 10)
    assert second.headers()["x-ratelimit-limit-tokens"] == "1000"
    assert second.headers()["x-ratelimit-remaining-tokens"] == "700"
    assert second.headers()["x-ratelimit-reset-tokens"] == "11h59m20s"


async def test_only_parallel_or_budget_limits_give_no_rate_headers(backend, alice):
    await set_limits(user_id=alice.user_id, max_parallel=3, budget_usd=Decimal("2"))
    assert (await admit(alice)).headers() == {}


# --- prices ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "usage", "expected"),
    [
        ("gemini-2.5-flash", used(1_000_000, 0), "0.300000"),
        ("gemini-2.5-flash", used(1_000_000, 1_000_000, cached=400_000), "2.710000"),  # 0.6×0.30 + 0.4×0.075 + 2.50
        ("gemini-2.5-flash-lite", used(1000, 1000), "0.000500"),  # the longer prefix wins over -flash
        ("gemini-2.5-flash-preview-09-2025", used(1000, 1000), "0.002800"),
        ("models/gemini-2.5-pro", used(1000, 1000), "0.011250"),
        ("gemini-3-pro-preview", used(10, 0, cached=10), "0.000002"),
        ("gemini-embedding-001", used(1000, 0), "0.000150"),
        ("gpt-4o", used(1000, 1000), "0.000000"),  # not priced
    ],
)
def test_builtin_prices(model, usage, expected):
    assert pricing.cost(model, usage) == Decimal(expected)


async def test_price_rows_override_defaults_and_are_cached():
    await ModelPrice.objects.acreate(model="gemini-2.5-flash", input_per_million=1, output_per_million=2)
    await ModelPrice.objects.acreate(model="*", input_per_million=10, output_per_million=10)
    await pricing.aload()
    assert pricing.cost("gemini-2.5-flash-001", used(1000, 1000)) == Decimal("0.003000")
    assert pricing.cost("gemini-2.5-flash-lite", used(1000, 1000)) == Decimal("0.000500")  # its default stays
    assert pricing.cost("gpt-4o", used(1000, 1000)) == Decimal("0.020000")
    await ModelPrice.objects.filter(model="*").adelete()
    await pricing.aload()
    assert pricing.cost("gpt-4o", used(1000, 1000)) == Decimal("0.020000")  # cached for PRICE_CACHE_SECONDS
    pricing.clear_cache()
    assert (await pricing.aload()).cost("gpt-4o", used(1000, 1000)) == Decimal("0")


async def test_budget_reserves_the_worst_case_cost(backend, alice):
    await set_limits(user_id=alice.user_id, budget_usd=Decimal("0.01"))
    await admit(alice, prompt=1000, max_tokens=1000)  # up to $0.0028
    assert (await counter_values(alice))[("user alice", "budget_usd")] == 2800
    with pytest.raises(RateLimited, match=r"^user alice exceeded monthly budget \(budget_usd=0.01\): \$0.0028 already"):
        await admit(alice, prompt=1000, max_tokens=3000)
