"""The chat page (/chat/): login, model list, remaining quota, and a real headless Chromium chatting
over the WebSocket with streamed text rendered as Markdown, with no HTML of the model's or the
user's getting into the page; screenshots land in test-artifacts/chat_page.png and chat_markdown.png."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest
from django.test import Client

from accounts.models import ApiKey
from proxy_app.models import ChatSession
from tests.test_admin_browser import static_served  # noqa: F401  (a fixture: collected static files served)

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
    """Holds whether or not the static files are served yet (without the Markdown renderer, answers are plain text)."""
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


ANSWER_CHUNKS = [
    "Here is a list:\n\n- one\n- two\n\n",
    "```python\nprint('hi')\n```\n\n",
    'Danger: <img src=x onerror="window.__pwned=1"> and <script>window.__pwned=2</script> ',
    "and [a link](javascript:window.__pwned=3).",
]
NO_INJECTION = (
    "() => !document.querySelector('#transcript img, #transcript script, #transcript a[href^=\"javascript\"]')"
    " && window.__pwned === undefined"
)


def test_the_chat_page_quota_panel_and_its_json(user, fake_gemini, mapping, drain_usage):
    from accounts.models import Limits

    Limits.objects.create(user=user, daily_tokens=10_000, budget_usd=5)
    client = Client()
    client.force_login(user)
    html = client.get("/chat/").content.decode()
    assert "tokens today: 10,000 tokens left of 10,000 tokens" in html
    assert "budget this month: $5.00 left of $5.00" in html
    assert 'id="recent-none"' in html  # no chat yet: the placeholder the page script removes on "started"
    assert client.get("/chat/quota/").json() == {
        "quotas": [
            {
                "kind": "daily_tokens",
                "label": "tokens today",
                "remaining_text": "10,000 tokens",
                "limit_text": "10,000 tokens",
                "percent": 0,
            },
            {
                "kind": "budget_usd",
                "label": "budget this month",
                "remaining_text": "$5.00",
                "limit_text": "$5.00",
                "percent": 0,
            },
        ]
    }
    assert Client().get("/chat/quota/").status_code == 302  # members only


def test_chromium_renders_markdown_safely_lists_the_open_chat_and_shows_the_quota(
    static_served, gateway_url, user, fake_gemini, mapping, usage_rows, monkeypatch
):
    executable = chromium_path()
    if executable is None:
        skip("Chromium not found (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    from accounts.models import Limits

    Limits.objects.create(user=user, daily_tokens=10_000)
    mapping("gpt-4o", "gemini-2.5-flash")
    fake_gemini.chunk_delay = 0.1
    fake_gemini.script("text", chunks=ANSWER_CHUNKS)
    ARTIFACTS.mkdir(exist_ok=True)
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # sync ORM below, beside Playwright's loop
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            page.goto(f"{gateway_url}/accounts/login/?next=/chat/")
            page.fill("#id_username", "alice")
            page.fill("#id_password", "pw-alice-123")
            page.click("button[type=submit]")
            page.wait_for_function("document.getElementById('status').textContent === 'connected as alice'")
            assert page.locator("#recent").inner_text().strip() == "none yet"
            page.select_option("#model", "gpt-4o")
            page.fill("#input", 'Show me <img src=x onerror="window.__pwned=4"> please')
            page.click("#send")
            page.wait_for_selector(".msg.model:not(.streaming) .meta", timeout=15_000)
            assert page.evaluate(NO_INJECTION)
            model = page.locator(".msg.model .body")
            assert model.locator("ul li").all_inner_texts() == ["one", "two"]
            assert model.locator("pre code").inner_text().strip() == "print('hi')"
            assert '<img src=x onerror="window.__pwned=1">' in model.inner_text()
            assert "<script>window.__pwned=2</script>" in model.inner_text()
            assert page.locator(".msg.user").inner_text() == 'Show me <img src=x onerror="window.__pwned=4"> please'
            chat_id = page.locator("#chat-id").inner_text()
            listed = page.locator(f'#recent button[data-chat-id="{chat_id}"]')
            assert listed.inner_text().startswith("gpt-4o · 2 turns") and not page.locator("#recent-none").count()

            (row,) = usage_rows()
            left = f"tokens today: {10_000 - row.total_tokens:,} tokens left of 10,000 tokens"
            page.wait_for_function(
                f"document.getElementById('quota-list').innerText.trim() === {left!r}", timeout=10_000
            )
            page.screenshot(path=str(ARTIFACTS / "chat_markdown.png"), full_page=True)
            page.reload()
            page.wait_for_function("document.getElementById('status').textContent === 'connected as alice'")
            assert page.locator("#quota-list").inner_text().strip() == left  # and from the server
            page.click(f'#recent button[data-chat-id="{chat_id}"]')  # resume: the history renders again
            page.wait_for_selector(".msg.model .body pre code")
            assert page.evaluate(NO_INJECTION)
            assert page.locator(".msg.model .body ul li").all_inner_texts() == ["one", "two"]
        finally:
            browser.close()
