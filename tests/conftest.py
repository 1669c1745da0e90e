"""Shared fixtures: users and keys, the fake Gemini upstream, and the gateway on a real socket.

The only fake is the external upstream (tests/fakes/gemini.py), reached through the one shared
outbound client's transport; everything of ours runs for real.
"""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
import uvicorn

from accounts import authentication
from proxy_app.call import routing, signatures
from proxy_app.core.writer import writer
from proxy_app.upstreams import http as upstream_http
from tests.fakes.gemini import FakeGemini

UPSTREAM_KEY = "test-upstream-key"
GEMINI_URL = "http://gemini.test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def _fresh_caches():
    authentication.clear_cache()
    routing.clear_cache()
    signatures.clear_cache()
    yield
    authentication.clear_cache()
    routing.clear_cache()
    signatures.clear_cache()


@pytest.fixture
def web_images() -> dict[str, tuple[bytes, str]]:
    """Path -> (bytes, content type) served to the gateway for any non-Gemini host (image URLs)."""
    return {}


@pytest.fixture
def upstream_hosts(web_images):
    """Host name -> fake handler; every outbound request of the gateway goes through this table."""
    hosts: dict = {}

    async def dispatch(request: httpx.Request) -> httpx.Response:
        if request.url.host in hosts:
            return await hosts[request.url.host](request)
        if request.url.path in web_images:
            data, content_type = web_images[request.url.path]
            return httpx.Response(200, content=data, headers={"content-type": content_type})
        return httpx.Response(404, text="not found")

    upstream_http.set_transport(httpx.MockTransport(dispatch))
    yield hosts
    upstream_http.set_transport(None)


@pytest.fixture
def fake_gemini(settings, upstream_hosts):
    """The fake Gemini upstream, wired in as the default Gemini upstream (GEMINI_API_KEY)."""
    fake = FakeGemini(api_key=UPSTREAM_KEY)
    settings.GEMINI_API_KEY = UPSTREAM_KEY
    settings.GEMINI_BASE_URL = GEMINI_URL
    upstream_hosts["gemini.test"] = fake.handler
    routing.clear_cache()
    return fake


@pytest.fixture
def fake_openai(upstream_hosts, transactional_db):
    """A fake OpenAI-compatible server, registered as the upstream 'compat' (kind openai)."""
    from proxy_app.models import Upstream
    from tests.fakes.openai_compat import FakeOpenAI

    fake = FakeOpenAI(api_key="test-openai-key")
    upstream = Upstream(name="compat", kind="openai", base_url="http://openai.test/v1")
    upstream.set_api_key("test-openai-key")
    upstream.save()
    upstream_hosts["openai.test"] = fake.handler
    routing.clear_cache()
    return fake


@pytest.fixture
def user(transactional_db, django_user_model):
    return django_user_model.objects.create_user(username="alice", password="pw-alice-123")


@pytest.fixture
def issue(transactional_db):
    """issue(user, **kwargs) -> secret, through the same service the admin and commands use."""
    from accounts.services import issue_key

    def _issue(owner, **kwargs) -> str:
        return issue_key(owner, **kwargs)[1]

    return _issue


@pytest.fixture
def api_key(user, issue) -> str:
    return issue(user, name="laptop")


@pytest.fixture
def drain_usage(transactional_db):
    """Write every queued usage row before the test's database goes away."""
    yield
    writer.flush(timeout=10)


@pytest.fixture
def usage_rows(drain_usage):
    """Call to flush the usage writer and get every UsageRecord, oldest first."""
    from proxy_app.models import UsageRecord

    def _rows():
        assert writer.flush(timeout=10), "usage writer did not flush in time"
        return list(UsageRecord.objects.order_by("id"))

    return _rows


class _Server:
    def __init__(self, app) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off", proxy_headers=False
        )  # as gateway_site.serve: X-Forwarded-For is judged by the app (gateway_site/client_ip.py)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("gateway test server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def _gateway_server():
    from gateway_site.asgi import application

    server = _Server(application)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def gateway_url(_gateway_server, drain_usage) -> str:
    """Base URL of the real gateway (ASGI app under uvicorn on a real socket)."""
    return _gateway_server.url


@pytest.fixture
def openai_client(gateway_url, api_key, fake_gemini):
    import openai

    client = openai.OpenAI(base_url=f"{gateway_url}/v1", api_key=api_key, max_retries=0, timeout=20)
    yield client
    client.close()


@pytest.fixture
def mapping(transactional_db):
    """mapping(alias, upstream_model, upstream=None, priority=0, weight=1, hidden=False): add a pool member
    for `alias` (the default Gemini upstream unless `upstream` names one), creating the ModelMapping first."""
    from proxy_app.models import ModelMapping, PoolMember

    def _map(
        alias: str,
        upstream_model: str = "gemini-2.5-flash",
        upstream: str | None = None,
        *,
        priority: int = 0,
        weight: int = 1,
        **kwargs,
    ):
        from proxy_app.models import Upstream

        m, _ = ModelMapping.objects.get_or_create(alias=alias, defaults=kwargs)
        target = Upstream.objects.get(name=upstream) if upstream else None
        PoolMember.objects.create(
            mapping=m, upstream=target, upstream_model=upstream_model, priority=priority, weight=weight
        )
        routing.clear_cache()
        return m

    return _map


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    """Close the shared PostgreSQL pool (used by server and writer threads) before the test
    database is dropped; otherwise its open sessions block the drop."""
    yield
    from django.db import connections

    for conn in connections.all():
        if getattr(conn, "close_pool", None):
            conn.close_pool()


@pytest.fixture
def ollama_client(gateway_url, api_key, fake_gemini):
    import ollama

    return ollama.Client(host=gateway_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=20)


@pytest.fixture
def genai_client(gateway_url, api_key, fake_gemini):
    """The official google-genai SDK pointed at the gateway, with the member's gateway key."""
    from google import genai
    from google.genai import types

    return genai.Client(api_key=api_key, http_options=types.HttpOptions(base_url=gateway_url, timeout=20_000))
