"""Detailed logging: off by default; on per upstream or globally; four stages; secrets and media
redacted; streams assembled; size cap; linked from the usage record."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from proxy_app.ops import detail_log
from tests.test_api_openai import PNG_1PX

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def log_dir(settings, tmp_path):
    settings.DETAIL_LOG_DIR = tmp_path / "detail"
    detail_log.clear_cache()
    yield settings.DETAIL_LOG_DIR
    detail_log.clear_cache()


def files(root: Path) -> list[Path]:
    return sorted(root.glob("*/*.json"))


def switch_on_globally():
    from proxy_app.models import LogSettings

    LogSettings.objects.create(detailed_logging=True)
    detail_log.clear_cache()


def test_off_by_default(openai_client, fake_gemini, log_dir, usage_rows):
    openai_client.chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}])
    assert not usage_rows()[0].detailed and files(log_dir) == []


def test_four_stages_with_secrets_and_media_redacted(openai_client, fake_gemini, log_dir, usage_rows, api_key):
    switch_on_globally()
    openai_client.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_1PX}"}},
                ],
            }
        ],
    )
    (row,) = usage_rows()
    assert row.detailed
    (path,) = files(log_dir)
    text = path.read_text()
    log = json.loads(text)
    assert set(log) == {"request_id", "client_request", "upstream_request", "upstream_response", "client_response"}
    assert log["request_id"] == row.request_id
    assert log["client_request"]["body"]["messages"][0]["content"][0]["text"] == "what is this?"
    assert log["upstream_request"]["url"].endswith("/v1beta/models/gemini-2.5-flash:generateContent")
    assert "characters redacted" in json.dumps(log["upstream_request"]["body"])
    assert log["upstream_response"]["status"] == 200 and log["client_response"]["status"] == 200
    for secret in (api_key, api_key.split("_", 1)[1], "test-upstream-key", PNG_1PX):
        assert secret not in text


def test_per_upstream_switch_and_streams_assembled(
    openai_client, fake_gemini, fake_openai, mapping, log_dir, usage_rows
):
    from proxy_app.models import Upstream

    mapping("compat-model", "gpt-4o-mini", upstream="compat")
    Upstream.objects.filter(name="compat").update(detailed_logging=True)
    detail_log.clear_cache()
    openai_client.chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "not logged"}]
    )
    list(
        openai_client.chat.completions.create(
            model="compat-model", messages=[{"role": "user", "content": "logged"}], stream=True
        )
    )
    rows = usage_rows()
    assert [r.detailed for r in rows] == [False, True]
    (path,) = files(log_dir)
    log = json.loads(path.read_text())
    assert log["upstream_response"]["events"] and log["client_response"]["stream"].rstrip().endswith("data: [DONE]")
    assert log["upstream_request"]["headers"]["authorization"] == "[redacted]"


def test_directory_is_capped(openai_client, fake_gemini, log_dir, settings, usage_rows):
    switch_on_globally()
    settings.DETAIL_LOG_MAX_BYTES = 6000
    for i in range(8):
        openai_client.chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": f"n{i}"}])
    usage_rows()
    assert 0 < len(files(log_dir)) < 8
    assert sum(p.stat().st_size for p in files(log_dir)) <= 6000


def test_redaction_rules():
    body = {
        "contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "A" * 500}}]}],
        "images": ["B" * 300],
        "text": "short",
    }
    red = detail_log.redact(body)
    assert red["contents"][0]["parts"][0]["inlineData"]["data"] == "[500 base64 characters redacted]"
    assert red["images"] == ["[300 base64 characters redacted]"] and red["text"] == "short"
    assert detail_log.redact_url("/v1beta/models?key=secret&pageSize=5") == "/v1beta/models?key=[redacted]&pageSize=5"
    short = base64.b64encode(b"x").decode()
    assert detail_log.redact({"data": short}) == {"data": short}  # too short to be media: kept


def test_admin_link_serves_the_file_to_staff_only(
    openai_client, fake_gemini, log_dir, usage_rows, client, django_user_model
):
    switch_on_globally()
    openai_client.chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}])
    (row,) = usage_rows()
    url = f"/admin/detail-log/{row.request_id}/"
    assert client.get(url).status_code == 302  # to the admin login
    client.force_login(django_user_model.objects.create_superuser("root", password="pw-root-123"))
    resp = client.get(url)
    assert resp.status_code == 200 and json.loads(b"".join(resp.streaming_content))["request_id"] == row.request_id
    assert client.get("/admin/detail-log/nope/").status_code == 404


def test_global_switch_in_the_admin(client, django_user_model, log_dir):
    from proxy_app.models import LogSettings

    client.force_login(django_user_model.objects.create_superuser("root", password="pw-root-123"))
    resp = client.post("/admin/proxy_app/logsettings/add/", {"detailed_logging": "on"})
    assert resp.status_code == 302 and LogSettings.objects.get().detailed_logging
    assert client.get("/admin/proxy_app/logsettings/add/").status_code == 403  # one row only
