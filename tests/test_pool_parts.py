"""The parts of upstream pools on their own: the health store on both backends (in process and
Redis), the member order (priorities, smooth weighted round-robin, cool-downs), which errors fail
over, and the mapping admin with its member inlines."""

from __future__ import annotations

import time

import pytest

from proxy_app.call import failover, health
from proxy_app.call.routing import Member, Route
from proxy_app.core.errors import InvalidRequest, RateLimited, UpstreamError
from proxy_app.upstreams.base import UpstreamConfig
from proxy_app.upstreams.gemini.codec import parse_error
from tests.test_counters import backend  # noqa: F401  (the memory/redis fixture)


@pytest.fixture(autouse=True)
def _fresh_health():
    health.reset()
    failover._turns.clear()
    yield
    health.reset()


async def test_cool_downs_strikes_origins_and_report(backend, settings):  # noqa: F811
    settings.POOL_COOLDOWN_BASE_SECONDS, settings.POOL_COOLDOWN_MAX_SECONDS = 2, 5
    now = time.time()
    last = {"at": now, "status": 503, "code": "service_unavailable", "message": "overloaded"}
    assert await health.failed("a", None, last, now) == now + 2  # exponential: 2, 4, then capped at 5
    assert await health.failed("a", None, last, now) == now + 4
    assert await health.failed("a", None, last, now) == now + 5
    assert await health.failed("b", 37, last, now) == now + 37  # the upstream's own wait wins
    health.remember_soon(health.digest("c2lnbmVk"), "b", now)
    await health.settled()
    snap = await health.snapshot(["a", "b", "c"], health.digest("c2lnbmVk"), now + 4.5)
    assert snap.cooling == {"a": now + 5, "b": now + 37} and snap.strikes == {"a": 3, "b": 1}
    assert snap.origin == "b"
    await health.recovered("a")
    assert (await health.snapshot(["a"], None, now + 6)) == health.Snapshot()
    for failed in (True, False, False, False):
        health.count("a", failed, now)
    await health.settled()
    a, c = await health.report(["a", "c"], now)
    assert (a.requests, a.errors, a.error_rate, a.last_error["code"]) == (4, 1, 0.25, "service_unavailable")
    assert (c.requests, c.cool_until, c.last_error, c.error_rate) == (0, None, None, None)


def test_the_digest_reads_both_base64_alphabets():
    raw = bytes(range(250, 256)) * 3
    import base64

    assert health.digest(base64.b64encode(raw).decode()) == health.digest(base64.urlsafe_b64encode(raw).decode())
    assert health.digest("not base64!") != health.digest("not base64?")


def member(name: str, priority: int = 0, weight: int = 1) -> Member:
    return Member(UpstreamConfig(name, "gemini", "http://x", "k"), "m", priority, weight)


def test_order_by_priority_then_smooth_weighted_round_robin():
    route = Route((member("a", 0, 2), member("b", 0, 1), member("c", 1)), alias="t")
    firsts = [failover.ordered(route, health.Snapshot())[0].upstream.name for _ in range(6)]
    assert firsts == ["a", "b", "a", "a", "b", "a"]  # 2:1, interleaved
    assert [m.upstream.name for m in failover.ordered(route, health.Snapshot())] == ["a", "b", "c"]  # the cycle again
    cooling = health.Snapshot(cooling={"a": time.time() + 10})
    assert [m.upstream.name for m in failover.ordered(route, cooling)] == ["b", "c"]


@pytest.mark.parametrize(
    "status, body, worth",
    [
        (429, {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}, True),
        (500, {"error": {"code": 500, "message": "internal", "status": "INTERNAL"}}, True),
        (503, {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}, True),
        (400, {"error": {"code": 400, "message": "bad field", "status": "INVALID_ARGUMENT"}}, False),
        (403, {"error": {"code": 403, "message": "denied", "status": "PERMISSION_DENIED"}}, False),
        (404, {"error": {"code": 404, "message": "no model", "status": "NOT_FOUND"}}, False),
    ],
)
def test_which_upstream_replies_fail_over(status, body, worth):
    err = parse_error(status, body)
    assert err.upstream_status == status and failover.worth_another(err) is worth


def test_retry_hints_only_when_the_upstream_named_a_wait():
    body = {"error": {"code": 429, "message": "q", "details": [{"@type": "google.rpc.RetryInfo", "retryDelay": "7s"}]}}
    assert parse_error(429, body).retry_hint == 7 and parse_error(503, {}, "12").retry_hint == 12
    assert parse_error(429, {"error": {"code": 429, "message": "q"}}).retry_hint is None
    assert not failover.worth_another(InvalidRequest("x")) and not failover.worth_another(RateLimited("ours"))
    unreachable = UpstreamError("dropped")
    unreachable.unreachable = True
    assert failover.worth_another(unreachable) and failover.outcome(unreachable) == "unreachable"


def test_the_mapping_admin_edits_pool_members_as_inlines(admin_client, transactional_db):
    from proxy_app.models import ModelMapping, Upstream

    up = Upstream.objects.create(name="second", kind="gemini", base_url="http://x")
    assert admin_client.get("/admin/proxy_app/modelmapping/add/").status_code == 200
    form = {
        "alias": "team",
        "members-TOTAL_FORMS": "2",
        "members-INITIAL_FORMS": "0",
        "members-MIN_NUM_FORMS": "1",
        "members-MAX_NUM_FORMS": "1000",
        "members-0-upstream": "",
        "members-0-upstream_model": "gemini-2.5-flash",
        "members-0-priority": "0",
        "members-0-weight": "3",
        "members-1-upstream": str(up.pk),
        "members-1-upstream_model": "gemini-2.5-pro",
        "members-1-priority": "1",
        "members-1-weight": "1",
    }
    assert admin_client.post("/admin/proxy_app/modelmapping/add/", form).status_code == 302
    members = ModelMapping.objects.get(alias="team").members.all()
    assert [(m.upstream, m.upstream_model, m.priority, m.weight) for m in members] == [
        (None, "gemini-2.5-flash", 0, 3),
        (up, "gemini-2.5-pro", 1, 1),
    ]
    listing = admin_client.get("/admin/proxy_app/modelmapping/").content.decode()
    assert "0: gemini-2.5-flash on default ×3, 1: gemini-2.5-pro on second ×1" in listing


async def test_per_upstream_token_limit_reserves_the_worst_case_and_settles_to_use(backend):  # noqa: F811
    from proxy_app.ledger import upstream_limits

    config = UpstreamConfig("metered", "gemini", "http://x", "k", tpm=150, max_concurrent=2)
    now = 1_773_489_630.0  # well inside a minute
    first = await upstream_limits.acquire(config, 100, "r1", now=now)
    with pytest.raises(upstream_limits.UpstreamBusy, match="limit of 150 tokens per minute") as busy:
        await upstream_limits.acquire(config, 100, "r2", now=now)
    assert busy.value.status == 429 and busy.value.retry_after == 30
    await upstream_limits.release(first, 20, now=now)  # it used 20 of the 100 it reserved
    second = await upstream_limits.acquire(config, 100, "r3", now=now)
    third = await upstream_limits.acquire(config, 30, "r4", now=now)
    with pytest.raises(upstream_limits.UpstreamBusy, match="limit of 2 calls open at once"):
        await upstream_limits.acquire(config, 0, "r5", now=now)
    for hold in (second, third):
        await upstream_limits.release(hold, 0, now=now)
    assert await upstream_limits.acquire(UpstreamConfig("free", "gemini", "http://x", "k"), 10**9, "r6") is None
