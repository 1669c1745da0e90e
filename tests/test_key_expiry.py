"""Key expiry from the command line (`issue_token --expires-days 0 | --expires-at`): an already
expired key is refused with 401 in each dialect's shape, and the admin key list shows the expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import httpx
import openai
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from accounts.models import ApiKey

pytestmark = pytest.mark.django_db(transaction=True)
CHAT = [{"role": "user", "content": "hi"}]


def issue(*args: str) -> tuple[ApiKey, str]:
    out = StringIO()
    call_command("issue_token", "alice", *args, stdout=out)
    secret = out.getvalue().strip().splitlines()[-1]
    return ApiKey.objects.get(prefix=secret.split("_")[0]), secret


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2026-12-31", datetime(2027, 1, 1, tzinfo=UTC)),  # a date: the end of that UTC day
        ("2026-12-31T18:30:00", datetime(2026, 12, 31, 18, 30, tzinfo=UTC)),  # no offset: UTC
        ("2026-12-31T18:30:00+01:00", datetime(2026, 12, 31, 17, 30, tzinfo=UTC)),
        ("2026-12-31T18:30:00Z", datetime(2026, 12, 31, 18, 30, tzinfo=UTC)),
        ("2020-01-01 00:00", datetime(2020, 1, 1, tzinfo=UTC)),  # in the past: already expired
    ],
)
def test_expires_at_forms(user, given, expected):
    key, _ = issue("--expires-at", given)
    assert key.expires_at == expected


def test_expires_days_zero_expires_now_and_mistakes_are_refused(user):
    before = timezone.now()
    key, _ = issue("--expires-days", "0", "--name", "now")
    assert before <= key.expires_at <= timezone.now() and not key.is_usable(timezone.now())
    with pytest.raises(CommandError, match="0 \\(expires now\\) or more"):
        issue("--expires-days", "-1")
    with pytest.raises(CommandError, match="not an ISO date"):
        issue("--expires-at", "next tuesday")
    with pytest.raises(CommandError, match="not allowed with"):
        issue("--expires-at", "2030-01-01", "--expires-days", "3")
    assert issue("--name", "forever")[0].expires_at is None


def test_expired_key_is_401_in_every_dialect(gateway_url, fake_gemini, user, usage_rows):
    _, secret = issue("--expires-at", (timezone.now() - timedelta(minutes=1)).isoformat())
    client = openai.OpenAI(base_url=f"{gateway_url}/v1", api_key=secret, max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="expired") as info:
        client.chat.completions.create(model="gemini-2.5-flash", messages=CHAT)
    assert info.value.status_code == 401 and info.value.body["type"] == "invalid_request_error"
    gemini = httpx.post(
        f"{gateway_url}/v1beta/models/gemini-2.5-flash:generateContent",
        headers={"x-goog-api-key": secret},
        json={"contents": [{"parts": [{"text": "hi"}]}]},
    )
    assert gemini.status_code == 401
    assert gemini.json()["error"]["code"] == 401 and gemini.json()["error"]["status"] == "UNAUTHENTICATED"
    ollama = httpx.post(
        f"{gateway_url}/api/chat",
        headers={"authorization": f"Bearer {secret}"},
        json={"model": "gemini-2.5-flash", "messages": CHAT, "stream": False},
    )
    assert ollama.status_code == 401 and "expired" in ollama.json()["error"]
    _, now_secret = issue("--expires-days", "0", "--name", "zero")
    zero = openai.OpenAI(base_url=f"{gateway_url}/v1", api_key=now_secret, max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="expired"):
        zero.chat.completions.create(model="gemini-2.5-flash", messages=CHAT)
    assert [r.status for r in usage_rows()] == [401] * 4


def test_admin_key_list_shows_the_expiry(client, django_user_model, user):
    key, _ = issue("--expires-at", "2020-06-30", "--name", "old")
    client.force_login(django_user_model.objects.create_superuser("root", password="pw-root-123"))
    page = client.get("/admin/accounts/apikey/").content.decode()
    assert "column-expires_at" in page and "July 1, 2020" in page
    marker = f'<td class="field-prefix">{key.prefix}</td>'
    row = page.split(marker)[1].split("</tr>")[0]
    assert '<td class="field-status">expired</td>' in row and "July 1, 2020" in row
