"""Two gateway processes (the documented launcher, SQLite file, one Redis) share upstream cool-downs:
a member that one process saw fail with a Retry-After is skipped by the other, too. Two fake Gemini
upstreams run as processes. Needs Redis at TEST_REDIS_URL (skipped with the reason printed otherwise).
"""

from __future__ import annotations

import json
import time
import uuid

import openai
import pytest

from tests.fakes.harness import served
from tests.test_counters import TEST_REDIS_URL, redis_unavailable_reason
from tests.test_pools import KEY_A, KEY_B, Fake
from tests.test_server import Gateway, gateway_env, manage


@pytest.fixture
def redis_prefix():
    reason = redis_unavailable_reason()
    if reason:
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    prefix = f"gwpools-{uuid.uuid4().hex[:10]}"
    yield prefix
    import redis

    client = redis.Redis.from_url(TEST_REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_two_gateway_processes_share_the_cool_down(tmp_path, redis_prefix):
    with (
        served("tests.fakes.gemini", "--api-key", KEY_A) as url_a,
        served("tests.fakes.gemini", "--api-key", KEY_B) as url_b,
    ):
        a, b = Fake(url_a), Fake(url_b)
        env = gateway_env(
            tmp_path,
            REDIS_URL=TEST_REDIS_URL,
            GATEWAY_QUOTA_REDIS_PREFIX=redis_prefix,
            GATEWAY_ACCESS_LOG_STDOUT="false",
        )
        assert manage(env, "migrate", "--noinput").returncode == 0
        key = manage(env, "issue_token", "pat", "--create-user").stdout.strip().splitlines()[-1]
        for name, url, upstream_key, priority in (("ga", url_a, KEY_A, "0"), ("gb", url_b, KEY_B, "1")):
            added = manage(env, "add_upstream", name, "--kind", "gemini", "--base-url", url, "--api-key", upstream_key)
            assert added.returncode == 0, added.stderr
            mapped = manage(env, "map_model", "team", "gemini-2.5-flash", "--upstream", name, "--priority", priority)
            assert mapped.returncode == 0, mapped.stderr
        one, two = Gateway(env), Gateway(env)
        try:
            a.script("error", status=429, retry_delay="30s")
            for server in (one, two, one):
                client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=20)
                reply = client.chat.completions.create(model="team", messages=[{"role": "user", "content": "Hi"}])
                assert reply.choices[0].message.content.startswith("Hello from fake Gemini")
            # ga was asked once (by the first process); the second process knew it was cooling down
            assert (len(a.calls()), len(b.calls())) == (1, 3)
            time.sleep(1.5)  # attempt counts reach Redis once a second
            probe = (
                "import asyncio, json; from proxy_app.call import health; "
                "print(json.dumps([vars(h) for h in asyncio.run(health.report(['ga', 'gb']))]))"
            )
            result = manage(env, "shell", "-c", probe)
            assert result.returncode == 0, result.stderr
            ga, gb = json.loads(result.stdout.strip().splitlines()[-1])
        finally:
            one.stop()
            two.stop()
    assert (ga["requests"], ga["errors"], gb["requests"], gb["errors"]) == (1, 1, 3, 0)
    assert ga["last_error"]["status"] == 429 and 20 < ga["cool_until"] - time.time() <= 30
    assert gb["cool_until"] is None and gb["last_error"] is None
