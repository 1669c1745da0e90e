"""A person's path through the admin and the member page, in headless Chromium (Debian's package,
driven by Playwright) against the real gateway on a socket: log in, look at the dashboard, issue
a key in the admin (its secret shown once), use it with the openai SDK through the gateway, see
the usage in the dashboard and the usage list, then see it as the member on /account/.
Screenshots: test-artifacts/admin_dashboard.png, test-artifacts/member_page.png.
"""

from __future__ import annotations

import os
import shutil
from decimal import Decimal
from pathlib import Path

import openai
import pytest
from django.conf import settings
from django.core.management import call_command

from accounts.keys import hash_secret
from accounts.models import ApiKey
from proxy_app.core.writer import writer

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM = os.environ.get("GATEWAY_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def _skip(reason: str):
    print(f"\nSKIPPED the browser test: {reason}")
    pytest.skip(reason)


@pytest.fixture
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip("the playwright package is not installed (pip install -e '.[test]')")
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).exists()):
        _skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    manager = sync_playwright().start()
    try:
        chromium = manager.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    except Exception as exc:  # noqa: BLE001 - any launch failure means: cannot run here
        manager.stop()
        _skip(f"Chromium did not start: {exc}")
    yield chromium
    chromium.close()
    manager.stop()


@pytest.fixture
def static_served(_gateway_server):
    """The admin's CSS/JS and the vendored Chart.js, served by the running test gateway: collect
    them into STATIC_ROOT and add them to its ServeStatic layer (which indexed STATIC_ROOT when
    the session's server started, maybe before anything was collected)."""
    from servestatic.base import ServeStaticBase

    from gateway_site.asgi import application

    call_command("collectstatic", interactive=False, verbosity=0)
    app, seen = application, 0
    while not isinstance(app, ServeStaticBase) and seen < 10:
        mapping = getattr(app, "application_mapping", None)
        app = mapping["http"] if mapping else getattr(app, "app", None) or getattr(app, "application", None)
        seen += 1
    assert isinstance(app, ServeStaticBase), "no ServeStatic layer found in gateway_site.asgi.application"
    app.add_files(settings.STATIC_ROOT, prefix=settings.STATIC_URL)


@pytest.fixture
def people(user, django_user_model, mapping):
    from accounts.models import Limits

    django_user_model.objects.create_superuser("root", password="pw-root-123")
    Limits.objects.create(user=user, daily_tokens=10_000, monthly_tokens=100_000, budget_usd=Decimal("1"))
    mapping("gpt-4o", "gemini-2.5-flash")
    return user


@pytest.fixture
def sync_orm_beside_playwright(monkeypatch):
    """Playwright's sync API keeps an event loop in this thread; the test's ORM calls are plain
    sync code between its calls (Django's async-safety check cannot tell the difference)."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


# `browser` comes last: everything that touches the database is set up before it starts.
def test_admin_and_member_page_in_a_browser(
    static_served, gateway_url, fake_gemini, people, sync_orm_beside_playwright, browser
):
    user = people
    ARTIFACTS.mkdir(exist_ok=True)

    admin = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    problems = []
    admin.on("pageerror", lambda exc: problems.append(str(exc)))
    admin.on(
        "response", lambda r: r.status >= 400 and "favicon" not in r.url and problems.append(f"{r.status} {r.url}")
    )
    admin.goto(f"{gateway_url}/admin/login/?next=/admin/dashboard/")
    admin.fill("#id_username", "root")
    admin.fill("#id_password", "pw-root-123")
    admin.click("input[type=submit]")
    admin.wait_for_url("**/admin/dashboard/")
    assert admin.evaluate("getComputedStyle(document.querySelector('.gw-card')).borderRadius") == "10px"  # CSS loaded
    admin.wait_for_function("document.body.dataset.charts === 'drawn'")  # Chart.js (vendored) drew them
    assert admin.inner_text("#requests-today") == "0"

    # Issue a key in the admin: the secret is on the next page, once.
    admin.goto(f"{gateway_url}/admin/accounts/apikey/add/")
    admin.select_option("#id_user", label="alice")
    admin.fill("#id_name", "browser-key")
    admin.click("input[name=_save]")
    secret = admin.input_value("#new-api-key")
    key = ApiKey.objects.get(name="browser-key")
    assert hash_secret(secret) == key.secret_hash and key.user == user

    # Use it through the gateway like a member's tool would.
    client = openai.OpenAI(base_url=f"{gateway_url}/v1", api_key=secret, max_retries=0, timeout=20)
    reply = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello"}], max_tokens=100
    )
    client.close()
    tokens = reply.usage.total_tokens
    assert tokens > 0
    assert writer.flush(timeout=10)

    admin.goto(f"{gateway_url}/admin/dashboard/")
    admin.wait_for_function("document.body.dataset.charts === 'drawn'", timeout=10_000)
    assert not problems, problems
    assert admin.inner_text("#requests-today") == "1"
    assert admin.inner_text("#tokens-today") == f"{tokens:,}"
    assert f"{tokens:,} of 10,000" in admin.inner_text("#quota-table") and "alice" in admin.inner_text("#top-users")
    admin.screenshot(path=str(ARTIFACTS / "admin_dashboard.png"), full_page=True)

    admin.goto(f"{gateway_url}/admin/proxy_app/usagerecord/")
    listing = admin.inner_text("#result_list")
    assert key.prefix in listing and "gpt-4o" in listing and "alice" in listing
    assert "1 requests" in admin.inner_text("#usage-totals")
    admin.goto(f"{gateway_url}/admin/accounts/apikey/{key.pk}/change/")
    assert f"{tokens:,}" in admin.inner_text("#key-usage")
    assert secret not in admin.content()

    # The member, with their own Django account (not staff).
    member = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
    member.goto(f"{gateway_url}/account/")
    member.wait_for_url("**/accounts/login/?next=/account/")
    member.fill("#id_username", "alice")
    member.fill("#id_password", "pw-alice-123")
    member.click("button[type=submit]")
    member.wait_for_url("**/account/")
    assert member.inner_text("#tokens-today") == f"{tokens:,}"
    assert f"{10_000 - tokens:,}" in member.inner_text("#member-quota")  # remaining of 10,000 a day
    assert key.prefix in member.inner_text("#member-keys") and "gpt-4o" in member.inner_text("#member-models")
    assert secret not in member.content()
    member.screenshot(path=str(ARTIFACTS / "member_page.png"), full_page=True)

    # The member creates a key of their own (shown once) and revokes it again.
    member.fill("#key-name", "from-browser")
    member.click("#new-key-form button[type=submit]")
    own_secret = member.input_value("#new-api-key")
    assert hash_secret(own_secret) == ApiKey.objects.get(user=user, name="from-browser").secret_hash
    member.click("text=Done")
    member.once("dialog", lambda dialog: dialog.accept())
    member.click("tr:has-text('from-browser') button:has-text('Revoke')")
    member.wait_for_selector("text=is revoked")
    assert ApiKey.objects.get(name="from-browser").revoked_at is not None
    assert own_secret not in member.content()
