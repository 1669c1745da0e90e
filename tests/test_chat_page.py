"""The chat page (/chat/): login, model list, and a real headless Chromium chatting over the
WebSocket with streamed text; a screenshot lands in test-artifacts/chat_page.png."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest
from django.test import Client

from accounts.models import ApiKey
from proxy_app.models import ChatSession

pytestmark = pytest.mark.django_db(transaction=True)
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    """Debian's chromium (or GATEWAY_TEST_CHROMIUM); Playwright downloads no browser here."""
    candidates = (os.environ.get("GATEWAY_TEST_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium")
    return next((p for p in candidates if p and Path(p).exists()), None)


def skip(reason: str) -> None:
    print(f"SKIP: {reason}")
    pytest.skip(reason)


def test_chat_page_needs_a_login(gateway_url):
    resp = httpx.get(f"{gateway_url}/chat/")
    assert resp.status_code == 302 and resp.headers["location"] == "/accounts/login/?next=/chat/"
    login = httpx.get(f"{gateway_url}/accounts/login/?next=/chat/")
    assert login.status_code == 200 and 'name="csrfmiddlewaretoken"' in login.text


def test_chat_page_lists_chat_models_and_issues_a_hidden_web_key(user, fake_gemini, mapping, drain_usage):
    mapping("gpt-4o", "gemini-2.5-flash")
    mapping("text-embedding-3-small", "gemini-embedding-001")
    client = Client()
    client.force_login(user)
    page = client.get("/chat/")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<option value="gpt-4o">' in html and "text-embedding-3-small" not in html
    assert '<option value="gemini-2.5-flash">' in html and "gemini-embedding-001" not in html
    web_key = ApiKey.objects.get(user=user, name="web-chat")
    assert web_key.prefix not in html  # the page never shows the key, not even its prefix
    assert client.get("/chat/").status_code == 200 and ApiKey.objects.filter(user=user).count() == 1  # reused


def test_chromium_logs_in_picks_a_model_and_sees_streamed_text(gateway_url, user, fake_gemini, mapping, usage_rows):
    executable = chromium_path()
    if executable is None:
        skip("Chromium not found (apt-get install -y chromium)")
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip("the playwright package is not installed (pip install -e '.[test]')")

    mapping("gpt-4o", "gemini-2.5-flash")
    fake_gemini.chunk_delay = 0.25
    fake_gemini.script("text", chunks=["Streaming ", "answer ", "arrives ", "word ", "by ", "word."])
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except PlaywrightError as exc:
            skip(f"Chromium at {executable} did not start: {exc}")
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 700})
            page.goto(f"{gateway_url}/chat/")
            assert "/accounts/login/" in page.url
            page.fill("#id_username", "alice")
            page.fill("#id_password", "pw-alice-123")
            page.click("button[type=submit]")
            page.wait_for_url(f"{gateway_url}/chat/")
            page.wait_for_function("document.getElementById('status').textContent === 'connected as alice'")
            page.select_option("#model", "gpt-4o")
            page.fill("#system", "Answer in one line.")
            page.fill("#input", "Hello from the browser")
            page.click("#send")
            # Part of the answer is on screen while the rest is still being produced.
            page.wait_for_function(
                "(() => { const m = document.querySelector('.msg.model.streaming');"
                " return m && m.textContent.startsWith('Streaming answer'); })()"
            )
            assert not page.locator(".msg.model .meta").count()
            page.wait_for_selector(".msg.model:not(.streaming) .meta", timeout=15_000)
            answer = page.locator(".msg.model").inner_text()
            assert answer.startswith("Streaming answer arrives word by word.") and "completion tokens" in answer
            assert page.locator("#chat-id").inner_text().startswith("chat_")
            page.screenshot(path=str(ARTIFACTS / "chat_page.png"), full_page=True)
        finally:
            browser.close()

    sent = fake_gemini.requests_to("streamGenerateContent")[-1]
    assert sent["path"] == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert sent["json"]["systemInstruction"] == {"parts": [{"text": "Answer in one line."}]}
    (session,) = ChatSession.objects.all()
    assert session.model == "gpt-4o" and session.api_key.name == "web-chat"
    assert session.history[-1] == {"role": "model", "text": "Streaming answer arrives word by word."}
    (row,) = usage_rows()
    assert (row.dialect, row.endpoint, row.status, row.user_id) == ("sessions", "ws.message", 200, user.pk)
    assert (ARTIFACTS / "chat_page.png").stat().st_size > 10_000
