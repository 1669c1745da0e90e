"""What the OpenAI-compatible upstream tests share: a hub request builder and the `fake`
and `client` fixtures (imported by each module, so pytest finds them there).
"""

from __future__ import annotations

import httpx
import pytest

from proxy_app.core import hub
from proxy_app.upstreams import http as upstream_http
from proxy_app.upstreams.base import UpstreamConfig
from proxy_app.upstreams.openai_compat.client import OpenAICompatClient
from tests.fakes.openai_compat import FakeOpenAI

KEY = "test-openai-key"
BASE = "http://openai.test/v1"


def user(text: str) -> hub.Message:
    return hub.Message("user", [hub.Part("text", text=text)])


def chat_request(text: str = "hi there", **kw) -> hub.ChatRequest:
    return hub.ChatRequest(model="alias", messages=[user(text)], upstream_model="gpt-4o-mini", **kw)


@pytest.fixture
def fake():
    fake = FakeOpenAI(api_key=KEY)
    upstream_http.set_transport(httpx.MockTransport(fake.handler))
    yield fake
    upstream_http.set_transport(None)


@pytest.fixture
def client(fake) -> OpenAICompatClient:
    return OpenAICompatClient(UpstreamConfig(name="oa", kind="openai", base_url=BASE, api_key=KEY))
