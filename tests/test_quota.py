"""Admission and settlement (proxy_app/ledger/quota.py) over real limits rows, usage rows and both counter
backends (in-process and real Redis), with an injected clock, and effective limits (accounts/limits.py).
Rate headers and prices are in test_quota_headers_prices."""

from __future__ import annotations

import asyncio
import math
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from accounts import limits
from accounts.authentication import KeyIdentity
from accounts.models import Limits
from accounts.services import issue_key
from proxy_app.core import hub
from proxy_app.core.errors import RateLimited, UpstreamUnavailable
from proxy_app.ledger import counters, pricing, quota, rollup
from proxy_app.ledger.counters import MemoryCounters, RedisCounters
from proxy_app.models import ModelPrice, UsageRecord
from tests.test_counters import backend, closed_port  # noqa: F401  (fixture: memory and Redis)

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "gemini-2.5-flash"  # $0.30 in / $2.50 out / $0.075 cached, per million tokens
T0 = datetime(2026, 3, 14, 12, 0, 30, tzinfo=UTC)
NOW = T0.timestamp()
TO_MIDNIGHT = 11 * 3600 + 59 * 60 + 30
TO_APRIL = 17 * 86400 + TO_MIDNIGHT


@pytest.fixture(autouse=True)
def _fresh_limit_and_price_caches():
    limits.clear_cache()
    pricing.clear_cache()
    quota.clear_cache()
    yield
    limits.clear_cache()
    pricing.clear_cache()
    quota.clear_cache()


@pytest.fixture(autouse=True)
async def _close_orm_thread_connection():
    """The async ORM ran in asgiref's shared worker thread, outside any request: give its
    connection back (as request_finished does in the gateway) so the test database can be dropped."""
    yield
    await sync_to_async(connections.close_all)()


def identity_of(key) -> KeyIdentity:
    return KeyIdentity(
        key_id=key.pk,
        user_id=key.user_id,
        username=key.user.username,
        prefix=key.prefix,
        allowed_models=(),
        expires_at=None,
        revoked=False,
    )


@pytest.fixture
def alice(user) -> KeyIdentity:
    return identity_of(issue_key(user, name="laptop")[0])


@pytest.fixture
def alice_phone(user) -> KeyIdentity:
    return identity_of(issue_key(user, name="phone")[0])


async def set_limits(**row) -> None:
    await Limits.objects.acreate(**row)
    limits.clear_cache()


async def admit(identity, *, prompt=100, max_tokens=200, now=NOW, request_id="req", model=MODEL):
    return await quota.admit(
        identity, model=model, prompt_estimate=prompt, max_tokens=max_tokens, request_id=request_id, now=now
    )


def used(prompt: int, completion: int, cached: int = 0) -> hub.Usage:
    return hub.Usage(prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached)


async def counter_values(identity, now=NOW) -> dict[tuple[str, str], int | None]:
    return {(s.scope, s.kind): s.used for s in await quota.status(identity, now=now)}


# --- every limit kind ------------------------------------------------------------------------------

# (field, value, admitted, code, error type, retry_after, "exceeded ..." text). Each request
# reserves 100 + 200 = 300 tokens and 100 × $0.30 + 200 × $2.50 per million = $0.00053.
KIND_CASES = [
    ("rpm", 3, 3, "rate_limit_exceeded", "requests", 30, "requests per minute (rpm=3)"),
    ("tpm", 1000, 3, "rate_limit_exceeded", "tokens", 30, "tokens per minute (tpm=1000)"),
    ("max_parallel", 2, 2, "rate_limit_exceeded", "requests", 1, "requests in flight (max_parallel=2)"),
    (
        "daily_tokens",
        1000,
        3,
        "insufficient_quota",
        "insufficient_quota",
        TO_MIDNIGHT,
        "tokens per day (daily_tokens=1000)",
    ),
    (
        "monthly_tokens",
        1000,
        3,
        "insufficient_quota",
        "insufficient_quota",
        TO_APRIL,
        "tokens per month (monthly_tokens=1000)",
    ),
    (
        "budget_usd",
        Decimal("0.0015"),
        2,
        "insufficient_quota",
        "insufficient_quota",
        TO_APRIL,
        "monthly budget (budget_usd=0.0015)",
    ),
]


@pytest.mark.parametrize(
    ("field", "value", "admitted", "code", "kind", "retry", "text"), KIND_CASES, ids=[c[0] for c in KIND_CASES]
)
async def test_every_limit_admits_up_to_the_limit_then_refuses(
    backend, alice, field, value, admitted, code, kind, retry, text
):
    await set_limits(user_id=alice.user_id, **{field: value})
    for i in range(admitted):
        assert (await admit(alice, request_id=f"r{i}")).limited
    with pytest.raises(RateLimited) as refused:
        await admit(alice, request_id="over")
    err = refused.value
    assert (err.status, err.code, err.kind, err.retry_after, err.limit, err.scope) == (
        429,
        code,
        kind,
        retry,
        field,
        "user",
    )
    assert err.message.startswith(f"user alice exceeded {text}: ")


async def test_refusal_messages_say_what_is_used_and_what_to_do(backend, alice):
    await set_limits(user_id=alice.user_id, tpm=1000, max_parallel=5)
    await admit(alice, prompt=100, max_tokens=800)
    with pytest.raises(RateLimited) as refused:
        await admit(alice, prompt=100, max_tokens=200)
    assert refused.value.message == (
        "user alice exceeded tokens per minute (tpm=1000): 900 tokens already used or reserved, 100 tokens remain; "
        "this request may use up to 300 tokens (prompt ~100 + max_tokens 200); lower max_tokens or wait. Resets in 30s."
    )
    with pytest.raises(RateLimited, match=r"more than the whole limit; 1000 tokens remain; lower max_tokens"):
        await admit(alice, prompt=100, max_tokens=5000, now=NOW + 60)


async def test_unset_max_tokens_reserves_the_configured_default(backend, alice, settings):
    settings.QUOTA_DEFAULT_MAX_TOKENS = 500
    await set_limits(user_id=alice.user_id, tpm=1000)
    await admit(alice, prompt=100, max_tokens=None)
    assert (await counter_values(alice))[("user alice", "tpm")] == 600
    await admit(alice, prompt=100, max_tokens=0)  # embeddings: no output
    assert (await counter_values(alice))[("user alice", "tpm")] == 700


# --- scopes: user, key, default ------------------------------------------------------------------


async def test_key_limits_narrow_the_users_and_both_are_counted(backend, alice, alice_phone):
    await set_limits(user_id=alice.user_id, rpm=3)
    await set_limits(api_key_id=alice.key_id, rpm=1)
    await admit(alice)
    with pytest.raises(RateLimited, match=rf"^key {alice.prefix} exceeded requests per minute \(rpm=1\)") as refused:
        await admit(alice)
    assert refused.value.scope == "key"
    await admit(alice_phone)  # the other key has no limit of its own; the user's counter is shared
    await admit(alice_phone)
    with pytest.raises(RateLimited, match=r"^user alice exceeded requests per minute \(rpm=3\)"):
        await admit(alice_phone)


async def test_default_limits_apply_to_users_without_their_own(backend, alice, django_user_model):
    bob = await django_user_model.objects.acreate(username="bob")
    bob_key = await bob.api_keys.acreate(name="k", prefix="gw-bobkey1", secret_hash="x" * 64)
    bob_identity = KeyIdentity(bob_key.pk, bob.pk, "bob", bob_key.prefix, (), None, False)
    await set_limits(is_default=True, rpm=1)
    await set_limits(user_id=bob.pk)  # an empty row of his own: exempt from the default
    await admit(alice)
    with pytest.raises(RateLimited, match=r"^user alice exceeded requests per minute \(rpm=1\)"):
        await admit(alice)
    for _ in range(5):
        assert not (await admit(bob_identity)).limited


async def test_no_limits_is_a_no_op_that_touches_no_counters(alice):
    class Untouchable:
        async def reserve(self, *args, **kwargs):
            raise AssertionError("counters touched")

    counters.set_counters(Untouchable())
    try:
        admission = await admit(alice)
        assert not admission.limited and admission.headers() == {}
        assert await quota.settle(admission, used(1000, 100), MODEL) == Decimal("0.000550")
    finally:
        counters.set_counters(None)


def test_effective_limits_is_one_query(alice, django_assert_num_queries, django_user_model):
    Limits.objects.create(is_default=True, rpm=10)
    Limits.objects.create(api_key_id=alice.key_id, tpm=500)
    with django_assert_num_queries(1):
        found = limits.effective_limits_sync(
            user_id=alice.user_id, key_id=alice.key_id, username="alice", prefix="gw-x"
        )
    assert [(s.kind, s.label, s.limits.rpm, s.limits.tpm) for s in found.scopes] == [
        ("user", "user alice", 10, None),
        ("key", "key gw-x", None, 500),
    ]


async def test_effective_limits_are_cached_briefly(alice):
    await set_limits(user_id=alice.user_id, rpm=7)
    first = await limits.effective_limits(alice)
    await Limits.objects.filter(user_id=alice.user_id).aupdate(rpm=8)
    assert await limits.effective_limits(alice) is first  # no query within LIMITS_CACHE_SECONDS
    limits.clear_cache()
    assert (await limits.effective_limits(alice)).scopes[0].limits.rpm == 8


# --- windows roll over -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "day_key", "day_end", "month_key", "month_end"),
    [
        (
            datetime(2026, 12, 31, 23, 59, 59),
            "tokens:d20261231",
            datetime(2027, 1, 1),
            "tokens:m202612",
            datetime(2027, 1, 1),
        ),
        (
            datetime(2028, 2, 29, 0, 0, 0),
            "tokens:d20280229",
            datetime(2028, 3, 1),
            "tokens:m202802",
            datetime(2028, 3, 1),
        ),
        (
            datetime(2026, 3, 1, 0, 0, 0),
            "tokens:d20260301",
            datetime(2026, 3, 2),
            "tokens:m202603",
            datetime(2026, 4, 1),
        ),
    ],
)
def test_utc_day_and_month_periods(moment, day_key, day_end, month_key, month_end):
    found = quota.windows(moment.replace(tzinfo=UTC).timestamp())
    assert found["daily_tokens"][:2] == (day_key, day_end.replace(tzinfo=UTC).timestamp())
    assert found["monthly_tokens"][:2] == (month_key, month_end.replace(tzinfo=UTC).timestamp())
    assert found["budget_usd"][0] == "usd:" + month_key.split(":")[1]


async def test_minute_windows_roll_over(backend, alice):
    await set_limits(user_id=alice.user_id, rpm=1, tpm=10_000)
    await admit(alice)
    with pytest.raises(RateLimited) as refused:
        await admit(alice, now=NOW + 29)
    assert refused.value.retry_after == 1
    await admit(alice, now=NOW + 30)  # 12:01:00, a new minute


async def test_day_and_month_periods_roll_over(backend, alice):
    await set_limits(user_id=alice.user_id, daily_tokens=300)
    await admit(alice)
    with pytest.raises(RateLimited, match="tokens per day"):
        await admit(alice, now=NOW + TO_MIDNIGHT - 1)
    await admit(alice, now=NOW + TO_MIDNIGHT)  # 2026-03-15 00:00:00 UTC
    await Limits.objects.filter(user_id=alice.user_id).aupdate(daily_tokens=None, monthly_tokens=300)
    limits.clear_cache()
    april = datetime(2026, 4, 1, tzinfo=UTC).timestamp()
    await admit(alice, now=april - 10)  # a new counter, seeded from the (empty) usage table
    with pytest.raises(RateLimited, match="tokens per month") as refused:
        await admit(alice, now=april - 5)
    assert refused.value.retry_after == 5
    await admit(alice, now=april)


# --- settlement ------------------------------------------------------------------------------------


async def test_settle_frees_what_was_not_used_and_counts_what_was(backend, alice):
    await set_limits(user_id=alice.user_id, tpm=1000, daily_tokens=1000, budget_usd=Decimal("1"))
    big = await admit(alice, prompt=100, max_tokens=800)
    with pytest.raises(RateLimited):
        await admit(alice)
    cost = await quota.settle(big, used(100, 50), MODEL, now=NOW + 1)
    assert cost == Decimal("0.000155")  # 100 × 0.30 + 50 × 2.50, per million
    values = await counter_values(alice)
    assert (values[("user alice", "tpm")], values[("user alice", "daily_tokens")]) == (150, 150)
    assert values[("user alice", "budget_usd")] == 155  # micro-USD
    over = await admit(alice, prompt=100, max_tokens=200)
    await quota.settle(over, used(100, 700), MODEL, now=NOW + 2)  # the upstream ignored max_tokens: counted anyway
    assert (await counter_values(alice))[("user alice", "daily_tokens")] == 950
    with pytest.raises(RateLimited, match=r"950 tokens already used or reserved"):
        await admit(alice, prompt=10, max_tokens=100, now=NOW + 60)


async def test_settle_after_the_window_moved_charges_the_current_one(backend, alice):
    await set_limits(user_id=alice.user_id, tpm=10_000)
    admission = await admit(alice, prompt=100, max_tokens=900)
    await quota.settle(admission, used(100, 20), MODEL, now=NOW + 40)  # settled in the next minute
    assert (await counter_values(alice, now=NOW))[("user alice", "tpm")] == 0
    assert (await counter_values(alice, now=NOW + 40))[("user alice", "tpm")] == 120


async def test_settle_releases_the_in_flight_slot_once(backend, alice):
    await set_limits(user_id=alice.user_id, max_parallel=1)
    first = await admit(alice)
    with pytest.raises(RateLimited, match="requests in flight"):
        await admit(alice)
    await quota.settle(first, used(10, 10), MODEL, now=NOW)
    second = await admit(alice)
    await quota.settle(first, used(10, 10), MODEL, now=NOW)  # a second settle of `first` frees nothing
    with pytest.raises(RateLimited, match="requests in flight"):
        await admit(alice)
    await quota.settle(second, used(10, 10), MODEL, now=NOW)


async def test_a_lease_never_settled_expires(backend, alice, settings):
    settings.QUOTA_LEASE_SECONDS = 60
    await set_limits(user_id=alice.user_id, max_parallel=1)
    await admit(alice)  # its process died: never settled
    with pytest.raises(RateLimited):
        await admit(alice, now=NOW + 59)
    await admit(alice, now=NOW + 61)


async def test_settle_completes_even_when_cancelled(backend, alice):
    await set_limits(user_id=alice.user_id, max_parallel=1, tpm=1000)
    admission = await admit(alice)
    task = asyncio.create_task(quota.settle(admission, used(10, 10), MODEL, now=NOW))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    for _ in range(100):
        if (await counter_values(alice))[("user alice", "max_parallel")] == 0:
            break
        await asyncio.sleep(0.01)
    assert await counter_values(alice) == {("user alice", "tpm"): 20, ("user alice", "max_parallel"): 0}


# --- counters survive a restart --------------------------------------------------------------------


def usage_row(identity, when: datetime, tokens: int, cost: str, *, key=True) -> UsageRecord:
    return UsageRecord(
        created_at=when,
        request_id="old",
        user_id=identity.user_id,
        api_key_id=identity.key_id if key else None,
        dialect="openai",
        endpoint="chat",
        status=200,
        prompt_tokens=tokens,
        total_tokens=tokens,
        cost_usd=Decimal(cost),
    )


async def test_cold_counters_are_seeded_from_the_usage_table_once(backend, alice, alice_phone):
    await UsageRecord.objects.abulk_create(
        [
            usage_row(alice, T0 - timedelta(hours=1), 700, "0.10"),
            usage_row(alice, T0 - timedelta(days=1), 500, "0.20"),
            usage_row(alice_phone, T0 - timedelta(days=3), 200, "0.30"),
            usage_row(alice, T0 - timedelta(days=20), 999, "9.99"),  # last month
            usage_row(alice, T0 + timedelta(days=20), 999, "9.99"),  # next month
        ]
    )
    await set_limits(user_id=alice.user_id, daily_tokens=1000, monthly_tokens=10_000, budget_usd=Decimal("5"))
    await set_limits(api_key_id=alice.key_id, monthly_tokens=10_000)
    assert set((await counter_values(alice)).values()) == {None}  # cold: nothing counted yet
    await admit(alice, prompt=100, max_tokens=200)  # seeds, then reserves 300
    assert await counter_values(alice) == {
        ("user alice", "daily_tokens"): 1000,
        ("user alice", "monthly_tokens"): 1700,
        ("key " + alice.prefix, "monthly_tokens"): 1500,
        ("user alice", "budget_usd"): 600_530,
    }
    with pytest.raises(RateLimited, match=r"1000 tokens already used or reserved"):
        await admit(alice, prompt=1, max_tokens=0)
    await UsageRecord.objects.abulk_create([usage_row(alice, T0, 5000, "1")])  # not re-read: seeded once
    assert (await counter_values(alice))[("user alice", "monthly_tokens")] == 1700


async def test_a_cold_start_under_load_reads_the_usage_table_once_per_scope(backend, alice, monkeypatch):
    await set_limits(user_id=alice.user_id, daily_tokens=100_000, monthly_tokens=1_000_000)
    await set_limits(api_key_id=alice.key_id, budget_usd=Decimal("10"))
    queries = []
    real = quota._query_totals

    async def counted(kind, scope_id, day):
        queries.append(kind)
        return await real(kind, scope_id, day)

    monkeypatch.setattr(quota, "_query_totals", counted)
    await asyncio.gather(*(admit(alice, request_id=f"r{i}") for i in range(50)))
    assert sorted(queries) == ["key", "user"]


async def test_counters_match_the_usage_table_after_a_restart(backend, alice):
    await set_limits(user_id=alice.user_id, daily_tokens=5000, budget_usd=Decimal("1"))
    rows = []
    for i in range(5):
        admission = await admit(alice, request_id=f"r{i}")
        usage = used(40 + i, 30 + i, cached=10)
        cost = await quota.settle(admission, usage, MODEL, now=NOW)
        rows.append(usage_row(alice, T0, usage.total_tokens, str(cost)))
    before = await counter_values(alice)
    await UsageRecord.objects.abulk_create(rows)  # what usage.record() writes
    await backend.clear()  # a restart (memory) or a flushed Redis
    quota.clear_cache()
    admission = await admit(alice, prompt=0, max_tokens=0)
    await quota.settle(admission, used(0, 0), MODEL, now=NOW)
    assert (
        await counter_values(alice)
        == before
        == {
            ("user alice", "daily_tokens"): sum(r.total_tokens for r in rows),
            ("user alice", "budget_usd"): pricing.micro_usd(sum(r.cost_usd for r in rows)),
        }
    )


async def test_seeds_count_rolled_up_days_whose_raw_rows_were_pruned(backend, alice, alice_phone):
    """A raw-row retention shorter than a month: the month's counters are seeded from the daily
    roll-up for the pruned days and from raw rows for the rest, as before pruning."""
    rows = [usage_row(alice, datetime(2026, 2, 27, 9, tzinfo=UTC), 999, "9.99")]  # last month
    for day in range(1, 15):  # March 1st to the 14th (T0's day), from both of alice's keys
        rows.append(usage_row(alice, datetime(2026, 3, day, 9, tzinfo=UTC), 100 * day, "0.01"))
        rows.append(usage_row(alice_phone, datetime(2026, 3, day, 10, tzinfo=UTC), 7, "0.002"))
    await UsageRecord.objects.abulk_create(rows)
    await set_limits(user_id=alice.user_id, daily_tokens=10**6, monthly_tokens=10**6, budget_usd=Decimal("100"))

    async def seeded() -> dict:
        await backend.clear()  # a restart: every counter cold
        quota.clear_cache()
        await admit(alice, prompt=0, max_tokens=0)  # seeds; reserves nothing
        return await counter_values(alice)

    before = await seeded()
    assert before == {
        ("user alice", "daily_tokens"): 1400 + 7,
        ("user alice", "monthly_tokens"): 100 * sum(range(1, 15)) + 14 * 7,  # 10598
        ("user alice", "budget_usd"): pricing.micro_usd(14 * Decimal("0.012")),  # $0.168
    }
    result = await sync_to_async(rollup.run)(retention=3, today=T0.date())
    assert result.pruned_before == date(2026, 3, 11)
    assert result.pruned_rows == 1 + 10 * 2  # February 27th and March 1st to 10th
    assert await UsageRecord.objects.acount() == 4 * 2  # March 11th to 14th
    assert await seeded() == before


# --- the store is down -----------------------------------------------------------------------------


@pytest.fixture
def redis_down():
    counters.set_counters(RedisCounters(f"redis://127.0.0.1:{closed_port()}/0", prefix="gwtest-down"))
    yield
    counters.set_counters(None)


async def test_store_down_fails_closed_by_default(redis_down, alice):
    await set_limits(user_id=alice.user_id, rpm=100)
    with pytest.raises(UpstreamUnavailable) as refused:
        await admit(alice)
    assert (refused.value.status, refused.value.message) == (503, "rate-limit store unavailable")


async def test_store_down_admits_when_configured_open(redis_down, alice, settings, caplog, monkeypatch):
    settings.QUOTA_REDIS_FAILURE = "open"
    monkeypatch.setattr(quota, "_last_open_warning", -math.inf)  # its log line is throttled
    await set_limits(user_id=alice.user_id, rpm=100)
    admission = await admit(alice)
    assert admission.degraded and admission.headers() == {}
    assert await quota.settle(admission, used(100, 100), MODEL) == Decimal("0.000280")
    assert "rate-limit store unavailable, admitting without limits" in caplog.text


async def test_store_down_does_not_matter_without_limits(redis_down, alice):
    assert not (await admit(alice)).limited


# --- concurrency -----------------------------------------------------------------------------------


async def test_200_concurrent_admissions_never_overshoot_and_settle_exactly(backend, alice):
    quota_tokens, reserve_each = 10_000, 300
    await set_limits(user_id=alice.user_id, daily_tokens=quota_tokens)
    await set_limits(api_key_id=alice.key_id, max_parallel=150)
    rng = random.Random(7)
    settled_total = 0
    for wave in range(3):
        outcomes = await asyncio.gather(
            *(admit(alice, request_id=f"w{wave}-{i}") for i in range(200)), return_exceptions=True
        )
        admitted = [a for a in outcomes if isinstance(a, quota.Admission)]
        assert all(isinstance(o, quota.Admission | RateLimited) for o in outcomes)
        in_counter = (await counter_values(alice))[("user alice", "daily_tokens")]
        assert in_counter == settled_total + len(admitted) * reserve_each <= quota_tokens
        assert len(admitted) == min(150, (quota_tokens - settled_total) // reserve_each)
        actual = [rng.randint(0, reserve_each) for _ in admitted]
        await asyncio.gather(
            *(quota.settle(a, used(n // 2, n - n // 2), MODEL, now=NOW) for a, n in zip(admitted, actual))
        )
        settled_total += sum(actual)
        values = await counter_values(alice)
        assert values[("user alice", "daily_tokens")] == settled_total
        assert values[("key " + alice.prefix, "max_parallel")] == 0
