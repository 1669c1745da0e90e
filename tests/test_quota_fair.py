"""Fair admission (proxy_app/ledger/quota.py, counters.grant): a request without max_tokens is
granted min(default, what remains) output tokens instead of being refused, under both counter
backends (in-process and real Redis), with an injected clock."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from accounts.services import issue_key
from proxy_app.core import hub
from proxy_app.core.errors import RateLimited
from proxy_app.ledger import pricing, quota
from tests.test_counters import backend  # noqa: F401  (fixture: memory and Redis)
from tests.test_quota import (  # noqa: F401  (autouse fixtures)
    MODEL,
    NOW,
    _close_orm_thread_connection,
    _fresh_limit_and_price_caches,
    admit,
    counter_values,
    identity_of,
    set_limits,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice(user):
    return identity_of(issue_key(user, name="laptop")[0])


async def test_small_quota_admits_a_request_without_max_tokens(backend, alice, settings):
    settings.QUOTA_DEFAULT_MAX_TOKENS = 4096
    await set_limits(user_id=alice.user_id, daily_tokens=50)
    admission = await admit(alice, prompt=20, max_tokens=None)
    assert admission.output_cap == 30  # 50 - 20: the upstream is asked for no more
    assert (await counter_values(alice))[("user alice", "daily_tokens")] == 50
    await quota.settle(admission, hub.Usage(prompt_tokens=20, completion_tokens=14), MODEL, now=NOW)
    assert (await counter_values(alice))[("user alice", "daily_tokens")] == 34
    second = await admit(alice, prompt=10, max_tokens=None, request_id="second")
    assert second.output_cap == 6
    assert (await counter_values(alice))[("user alice", "daily_tokens")] == 50


async def test_near_exhaustion_the_last_tokens_are_usable_then_refused(backend, alice, settings):
    settings.QUOTA_DEFAULT_MAX_TOKENS = 4096
    await set_limits(user_id=alice.user_id, daily_tokens=1000)
    first = await admit(alice, prompt=100, max_tokens=800)
    await quota.settle(first, hub.Usage(prompt_tokens=100, completion_tokens=800), MODEL, now=NOW)
    last = await admit(alice, prompt=99, max_tokens=None, request_id="last")  # 100 remain: 99 + 1
    assert last.output_cap == 1
    with pytest.raises(quota.QuotaExceeded) as refused:  # nothing remains
        await admit(alice, prompt=1, max_tokens=None, request_id="none")
    assert "0 tokens remain" in refused.value.message
    await quota.settle(last, hub.Usage(prompt_tokens=99, completion_tokens=0), MODEL, now=NOW)
    with pytest.raises(quota.QuotaExceeded) as refused:  # 1 remains, the prompt alone needs 5
        await admit(alice, prompt=5, max_tokens=None, request_id="big prompt")
    assert "1 tokens remain: not enough for this request's prompt (~5 tokens)" in refused.value.message
    fits = await admit(alice, prompt=0, max_tokens=None, request_id="tiny")
    assert fits.output_cap == 1


async def test_cap_is_the_tightest_limit_of_every_scope(backend, alice, settings):
    settings.QUOTA_DEFAULT_MAX_TOKENS = 4096
    await set_limits(user_id=alice.user_id, daily_tokens=10_000, tpm=3000)
    await set_limits(api_key_id=alice.key_id, monthly_tokens=700)
    admission = await admit(alice, prompt=100, max_tokens=None)
    assert admission.output_cap == 600
    values = await counter_values(alice)
    assert values[("user alice", "tpm")] == values[("user alice", "daily_tokens")] == 700
    assert values[(f"key {alice.prefix}", "monthly_tokens")] == 700
    roomy = await admit(alice, prompt=100, max_tokens=None, now=NOW + 3600 * 24 * 40, request_id="later")
    assert roomy.output_cap == 600  # a new month, still the key's 700


async def test_explicit_max_tokens_over_what_remains_is_refused_naming_it(backend, alice):
    await set_limits(user_id=alice.user_id, daily_tokens=1000)
    await admit(alice, prompt=100, max_tokens=500)
    with pytest.raises(quota.QuotaExceeded) as refused:
        await admit(alice, prompt=100, max_tokens=500, request_id="two")
    assert "400 tokens remain" in refused.value.message and "max_tokens 500" in refused.value.message
    assert (await admit(alice, prompt=100, max_tokens=300, request_id="three")).output_cap is None


async def test_without_token_limits_nothing_is_capped(backend, alice):
    await set_limits(user_id=alice.user_id, rpm=10)
    assert (await admit(alice, prompt=100, max_tokens=None)).output_cap is None


async def test_budget_caps_the_output_by_its_price(backend, alice, settings):
    settings.QUOTA_DEFAULT_MAX_TOKENS = 4096
    price = pricing.BUILT_IN_PRICES[MODEL]  # $0.30 in, $2.50 out per million tokens
    await set_limits(user_id=alice.user_id, budget_usd=Decimal("0.001"))  # 1000 micro-USD
    admission = await admit(alice, prompt=1000, max_tokens=None)  # the prompt costs 300 micro-USD
    assert admission.output_cap == 280  # 700 micro-USD / 2.5 per token
    reserved = (await counter_values(alice))[("user alice", "budget_usd")]
    assert reserved == 300 + math.ceil(280 * price.output) == 1000
    with pytest.raises(quota.QuotaExceeded, match=r"\$0.00 remain"):
        await admit(alice, prompt=10, max_tokens=None, request_id="broke")


async def test_choices_need_one_token_each(backend, alice, settings):
    settings.QUOTA_DEFAULT_MAX_TOKENS = 4096
    await set_limits(user_id=alice.user_id, tpm=103)
    with pytest.raises(RateLimited):
        await quota.admit(alice, model=MODEL, prompt_estimate=100, max_tokens=None, request_id="n", choices=4, now=NOW)
    granted = await quota.admit(
        alice, model=MODEL, prompt_estimate=100, max_tokens=None, request_id="n", choices=3, now=NOW
    )
    assert granted.output_cap == 3
