"""Upstream pools end to end: two fake Gemini upstreams running as real processes (plus a closed
port), the gateway on a real socket, driven by the official openai and google-genai SDKs.

Failover before the first byte (503, 429, refused connection), weighted spreading, cool-downs that
honour Retry-After, every member failing (the dialect's own error), one usage row per request with
its attempt count, user quotas counted once, per-upstream limits, signature affinity.
"""

from __future__ import annotations

import base64
import time

import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from proxy_app.call import failover, health
from tests.fakes.harness import served
from tests.test_counters import closed_port

pytestmark = pytest.mark.django_db(transaction=True)
KEY_A, KEY_B = "key-of-project-a", "key-of-project-b"
GENERATE = ("generateContent", "streamGenerateContent")


class Fake:
    """A served fake Gemini, scripted and inspected over its /_fake/ endpoints."""

    def __init__(self, url: str) -> None:
        self.url = url

    def script(self, kind: str, times: int = 1, **kw) -> None:
        for _ in range(times):
            httpx.post(f"{self.url}/_fake/script", json={"kind": kind, **kw}).raise_for_status()

    def calls(self) -> list[dict]:
        return [r for r in httpx.get(f"{self.url}/_fake/requests").json() if r["action"] in GENERATE]

    def reset(self) -> None:
        httpx.post(f"{self.url}/_fake/reset").raise_for_status()


@pytest.fixture(scope="module")
def fakes():
    with served("tests.fakes.gemini", "--api-key", KEY_A) as a, served("tests.fakes.gemini", "--api-key", KEY_B) as b:
        yield Fake(a), Fake(b)


@pytest.fixture
def pool(fakes, mapping, settings):
    """pool(alias, (upstream name, priority, weight), ...): upstreams ga / gb are the two fakes,
    `closed` a port nobody listens on; members map to gemini-2.5-flash unless a model is given."""
    from proxy_app.models import Upstream

    settings.POOL_COOLDOWN_BASE_SECONDS = 30  # a failed member stays out for the rest of the test
    for fake in fakes:
        fake.reset()
    health.reset()
    failover._turns.clear()
    for name, url, key in (
        ("ga", fakes[0].url, KEY_A),
        ("gb", fakes[1].url, KEY_B),
        ("closed", f"http://127.0.0.1:{closed_port()}", "k"),
    ):
        upstream = Upstream(name=name, kind="gemini", base_url=url)
        upstream.set_api_key(key)
        upstream.save()

    def _pool(alias: str, *members: tuple, model: str = "gemini-2.5-flash") -> None:
        for name, priority, weight in members:
            mapping(alias, model, upstream=name, priority=priority, weight=weight)

    yield _pool
    health.reset()


@pytest.fixture
def oai(gateway_url, api_key):
    client = openai.OpenAI(base_url=f"{gateway_url}/v1", api_key=api_key, max_retries=0, timeout=20)
    yield client
    client.close()


@pytest.fixture
def google(gateway_url, api_key):
    return genai.Client(api_key=api_key, http_options=types.HttpOptions(base_url=gateway_url, timeout=20_000))


def chat(client, model: str = "team", stream: bool = False, **kw) -> str:
    messages = kw.pop("messages", [{"role": "user", "content": "Hello"}])
    if not stream:
        return client.chat.completions.create(model=model, messages=messages, **kw).choices[0].message.content
    chunks = client.chat.completions.create(model=model, messages=messages, stream=True, **kw)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_openai_sdk_fails_over_a_503_to_the_next_member(pool, fakes, oai, usage_rows, stream):
    pool("team", ("ga", 0, 1), ("gb", 1, 1))
    fakes[0].script("error", status=503)
    assert chat(oai, stream=stream).startswith("Hello from fake Gemini")
    assert len(fakes[0].calls()) == 1 and len(fakes[1].calls()) == 1
    [row] = usage_rows()
    assert (row.status, row.upstream_name, row.attempts, row.streamed) == (200, "gb", 2, stream)
    # ga cools down (no Retry-After: exponential, from GATEWAY_POOL_COOLDOWN_BASE_SECONDS): skipped now
    chat(oai, stream=stream)
    assert len(fakes[0].calls()) == 1 and len(fakes[1].calls()) == 2
    assert usage_rows()[-1].attempts == 1


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_genai_sdk_fails_over_a_429_to_the_next_member(pool, fakes, google, usage_rows, stream):
    pool("team", ("ga", 0, 1), ("gb", 0, 1))  # equal priority: the round-robin starts at ga
    fakes[0].script("error", status=429)
    if stream:
        text = "".join(c.text or "" for c in google.models.generate_content_stream(model="team", contents="Hi"))
    else:
        text = google.models.generate_content(model="team", contents="Hi").text
    assert text.startswith("Hello from fake Gemini")
    assert fakes[1].calls()[0]["headers"]["x-goog-api-key"] == KEY_B  # each member its own key
    [row] = usage_rows()
    assert (row.status, row.upstream_name, row.attempts) == (200, "gb", 2)


def test_weights_one_to_one_spread_the_traffic(pool, fakes, oai, usage_rows):
    pool("team", ("ga", 0, 1), ("gb", 0, 1))
    for _ in range(40):
        chat(oai)
    a, b = len(fakes[0].calls()), len(fakes[1].calls())
    print(f"40 requests over weights 1:1 -> ga {a}, gb {b}")
    assert a + b == 40 and a >= 10 and b >= 10
    assert {r.upstream_name for r in usage_rows()} == {"ga", "gb"}


def test_weights_three_to_one(pool, fakes, oai):
    pool("team", ("ga", 0, 3), ("gb", 0, 1))
    for _ in range(20):
        chat(oai)
    assert (len(fakes[0].calls()), len(fakes[1].calls())) == (15, 5)  # smooth round-robin: exact shares


def test_a_closed_port_fails_over(pool, fakes, oai, usage_rows, gateway_url):
    pool("team", ("closed", 0, 1), ("ga", 1, 1))
    assert chat(oai).startswith("Hello")
    [row] = usage_rows()
    assert (row.upstream_name, row.attempts) == ("ga", 2)
    metrics = httpx.get(f"{gateway_url}/metrics").text
    assert 'gateway_upstream_attempts_total{outcome="unreachable",upstream="closed"}' in metrics


def test_every_member_failing_gives_the_last_error_in_the_dialect_shape(pool, fakes, oai, google, usage_rows):
    pool("team", ("ga", 0, 1), ("gb", 1, 1))
    fakes[0].script("error", status=503)
    fakes[1].script("error", status=503)
    with pytest.raises(openai.InternalServerError) as caught:
        chat(oai)
    assert caught.value.status_code == 503
    assert caught.value.body == {
        "message": "The model is overloaded. Please try again later.",
        "type": "server_error",
        "param": None,
        "code": "service_unavailable",
    }
    [row] = usage_rows()
    assert (row.status, row.upstream_name, row.attempts, row.error_code) == (503, "gb", 2, "service_unavailable")

    pool("duo", ("ga", 0, 1), ("gb", 1, 1))  # ga and gb cool down now: a new alias on fresh state
    health.reset()
    fakes[0].script("error", status=429, retry_delay="7s")
    fakes[1].script("error", status=429, retry_delay="9s")
    with pytest.raises(genai_errors.ClientError) as refused:
        google.models.generate_content(model="duo", contents="Hi")
    assert refused.value.code == 429 and refused.value.status == "RESOURCE_EXHAUSTED"
    # both are cooling now: answered at once, without calling either, with the soonest end
    with pytest.raises(openai.InternalServerError) as cooling:
        chat(oai, model="duo")
    assert cooling.value.body["code"] == "upstream_cooling_down"
    assert 1 <= int(cooling.value.response.headers["retry-after"]) <= 7
    assert len(fakes[0].calls()) == 2 and len(fakes[1].calls()) == 2


def test_cool_down_honours_retry_after(pool, fakes, oai, usage_rows, settings):
    pool("team", ("ga", 0, 1), ("gb", 1, 1))
    fakes[0].script("error", status=429, retry_delay="2s")  # Google's RetryInfo, its Retry-After
    started = time.monotonic()
    chat(oai)
    chat(oai)  # within the 2 s: ga is not asked
    assert len(fakes[0].calls()) == 1 and len(fakes[1].calls()) == 2
    time.sleep(max(0.0, 2.2 - (time.monotonic() - started)))
    chat(oai)  # the cool-down is over (30 s of exponential back-off would still hold it)
    assert len(fakes[0].calls()) == 2
    assert [(r.upstream_name, r.attempts) for r in usage_rows()] == [("gb", 2), ("gb", 1), ("ga", 1)]


def test_a_400_is_the_answer_not_a_reason_to_fail_over(pool, fakes, oai, usage_rows):
    pool("team", ("ga", 0, 1), ("gb", 1, 1))
    fakes[0].script("error", status=400, message="* GenerateContentRequest.contents: bad")
    with pytest.raises(openai.BadRequestError):
        chat(oai)
    assert len(fakes[1].calls()) == 0
    assert usage_rows()[0].attempts == 1


def test_failover_counts_once_against_the_user_quota(pool, fakes, oai, user):
    from accounts.services import set_limits

    set_limits({"user": user}, {"rpm": 5}, None)
    pool("team", ("ga", 0, 1), ("gb", 1, 1))
    fakes[0].script("error", status=503)
    raw = oai.chat.completions.with_raw_response.create(model="team", messages=[{"role": "user", "content": "Hi"}])
    assert raw.headers["x-ratelimit-remaining-requests"] == "4"  # two upstream calls, one request
    raw = oai.chat.completions.with_raw_response.create(model="team", messages=[{"role": "user", "content": "Hi"}])
    assert raw.headers["x-ratelimit-remaining-requests"] == "3"


def test_per_upstream_rpm_sends_the_burst_to_the_next_member(pool, fakes, oai, usage_rows):
    from proxy_app.models import Upstream

    Upstream.objects.filter(name="ga").update(rpm=2)
    pool("team", ("ga", 0, 1), ("gb", 1, 1))
    for _ in range(4):
        chat(oai)
    assert (len(fakes[0].calls()), len(fakes[1].calls())) == (2, 2)
    assert [r.upstream_name for r in usage_rows()] == ["ga", "ga", "gb", "gb"]


def test_per_upstream_concurrency_cap_of_a_single_member_is_a_429(pool, fakes, gateway_url, api_key):
    import asyncio

    from proxy_app.models import Upstream

    Upstream.objects.filter(name="ga").update(max_concurrent=1)
    pool("solo", ("ga", 0, 1))
    fakes[0].script("slow", delay=1.0)

    async def both():
        async with httpx.AsyncClient(timeout=20) as client:
            body = {"model": "solo", "messages": [{"role": "user", "content": "Hi"}]}
            headers = {"authorization": f"Bearer {api_key}"}
            first = asyncio.ensure_future(client.post(f"{gateway_url}/v1/chat/completions", json=body, headers=headers))
            await asyncio.sleep(0.4)
            second = await client.post(f"{gateway_url}/v1/chat/completions", json=body, headers=headers)
            return await first, second

    first, second = asyncio.run(both())
    assert first.status_code == 200 and second.status_code == 429
    assert second.json()["error"]["code"] == "upstream_limit" and second.headers["retry-after"] == "1"
    assert "upstream 'ga' is at its limit of 1 calls open at once" in second.json()["error"]["message"]


def test_a_signed_conversation_stays_on_its_key_then_moves_with_the_skip_value(pool, fakes, google):
    pool("team3", ("ga", 0, 1), ("gb", 0, 1), model="gemini-3-flash-preview")
    signed_by_a = base64.b64encode(b"signature made with key A").decode()
    fakes[0].script("tool_calls", calls=[("get_weather", {"city": "Oslo"})], signature=signed_by_a)
    tool = types.Tool(function_declarations=[types.FunctionDeclaration(name="get_weather", description="Weather")])
    config = types.GenerateContentConfig(tools=[tool])
    first = google.models.generate_content(model="team3", contents="Oslo?", config=config)  # round-robin: ga
    history = [
        types.Content(role="user", parts=[types.Part(text="Oslo?")]),
        first.candidates[0].content,
        types.Content(role="user", parts=[types.Part.from_function_response(name="get_weather", response={"t": 1})]),
    ]
    for _ in range(3):  # the round-robin alone would alternate; the signature keeps it on ga
        google.models.generate_content(model="team3", contents=history, config=config)
    assert (len(fakes[0].calls()), len(fakes[1].calls())) == (4, 0)
    sent = fakes[0].calls()[-1]["json"]["contents"][1]["parts"][0]["thoughtSignature"]
    assert base64.urlsafe_b64decode(sent) == b"signature made with key A"

    fakes[0].script("error", status=503)  # ga fails: the conversation must move to gb's key
    google.models.generate_content(model="team3", contents=history, config=config)
    moved = fakes[1].calls()[-1]["json"]["contents"][1]["parts"][0]
    assert moved["thoughtSignature"] == "skip_thought_signature_validator"


def test_the_admin_shows_each_upstreams_health(pool, fakes, oai, admin_client):
    import re

    pool("team", ("ga", 0, 1), ("gb", 1, 1))
    fakes[0].script("error", status=503)
    chat(oai)
    chat(oai)
    page = admin_client.get("/admin/proxy_app/upstream/").content.decode()
    table = page[page.index('id="upstream-health"') : page.index("</table>", page.index('id="upstream-health"'))]
    rows = {
        cells[0]: cells[1:]
        for cells in (
            [re.sub(r"\s+", " ", c).strip() for c in re.findall(r"<td>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)
        )
        if cells
    }
    requests, rate, cooling, last = rows["ga"]
    assert (requests, rate) == ("1", "100.0%") and cooling != "–"
    assert "503 service_unavailable — The model is overloaded" in last
    assert rows["gb"] == ["2", "0.0%", "–", "–"]
    assert rows["closed"] == ["0", "–", "–", "–"]


def test_a_stream_that_started_fails_in_band_without_failover(pool, fakes, oai, usage_rows):
    pool("team", ("ga", 0, 1), ("gb", 1, 1))
    fakes[0].script("break_midstream", after=1)
    chunks = oai.chat.completions.create(model="team", messages=[{"role": "user", "content": "Hi"}], stream=True)
    with pytest.raises(openai.APIError):
        for _ in chunks:
            pass
    assert len(fakes[1].calls()) == 0  # the client had its first bytes: never a second answer
    [row] = usage_rows()
    assert (row.upstream_name, row.attempts, row.status) == ("ga", 1, 502)


def test_failed_attempts_are_in_the_detailed_log(pool, fakes, oai, usage_rows, settings, tmp_path):
    import json

    from proxy_app.ops import detail_log

    settings.DETAIL_LOG_DIR, settings.DETAIL_LOG_ALL = tmp_path / "detail", True
    detail_log.clear_cache()
    pool("team", ("closed", 0, 1), ("ga", 1, 1), ("gb", 2, 1))
    fakes[0].script("error", status=429, retry_delay="5s")
    try:
        chat(oai)
    finally:
        settings.DETAIL_LOG_ALL = False
        detail_log.clear_cache()
    [row] = usage_rows()
    assert (row.upstream_name, row.attempts, row.detailed) == ("gb", 3, True)
    [path] = sorted((tmp_path / "detail").glob("*/*.json"))
    log = json.loads(path.read_text())
    failed = [(a["upstream"], a["status"], a["code"]) for a in log["failed_attempts"]]
    assert failed == [("closed", 503, "service_unavailable"), ("ga", 429, "rate_limit_exceeded")]
    assert log["failed_attempts"][1]["upstream_response"]["status"] == 429
    assert log["upstream_request"]["url"].startswith(fakes[1].url) and log["upstream_response"]["status"] == 200
    assert KEY_A not in path.read_text()


def test_a_gemini_primary_falls_back_to_an_openai_compatible_server(pool, fakes, google, oai, usage_rows, mapping):
    from proxy_app.models import Upstream

    with served("tests.fakes.openai_compat", "--api-key", "deepseek-key", banner="/v1") as url:
        deepseek = Upstream(name="deepseek", kind="openai", base_url=f"{url}/v1")
        deepseek.set_api_key("deepseek-key")
        deepseek.save()
        pool("mixed", ("ga", 0, 1))
        mapping("mixed", "gpt-4o-mini", upstream="deepseek", priority=1)
        fakes[0].script("error", status=503, times=2)
        # a mixed pool is translated for every client, so each member can take any request
        assert google.models.generate_content(model="mixed", contents="Hi").text
        assert chat(oai, model="mixed")
    assert [(r.upstream_name, r.upstream_model, r.attempts) for r in usage_rows()] == [
        ("deepseek", "gpt-4o-mini", 2),
        ("deepseek", "gpt-4o-mini", 1),  # ga cooling down: not asked again
    ]
