"""The admin as control room: dashboard figures and charts, key/user/limits/price admin, usage
filters, CSV export, and changelists that never count or scan the whole usage table."""

from __future__ import annotations

import csv
import io
import json
import re
import time
import warnings
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.limits import effective_limits_sync
from accounts.models import ApiKey, Limits
from proxy_app.ledger import reports as dashboard
from proxy_app.models import ModelPrice, UsageDaily, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime.now(UTC)
TODAY = NOW.date()


@pytest.fixture
def staff(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="pw-root-123")
    client.force_login(admin)
    return client


def record(user, key=None, *, when=None, model="gpt-4o", tokens=100, status=200, cost="0.01", **extra):
    return UsageRecord(
        created_at=when or NOW,
        request_id=extra.pop("request_id", "r"),
        user=user,
        api_key=key,
        key_prefix=key.prefix if key else "",
        dialect=extra.pop("dialect", "openai"),
        endpoint="chat.completions",
        requested_model=model,
        prompt_tokens=tokens // 2,
        completion_tokens=tokens - tokens // 2,
        total_tokens=tokens,
        status=status,
        error_code="" if status < 400 else "upstream_error",
        cost_usd=Decimal(cost),
        **extra,
    )


def streamed_body(response) -> bytes:
    with warnings.catch_warnings():  # the sync test client drains the async stream itself
        warnings.simplefilter("ignore")
        return b"".join(response)


# --- dashboard ---------------------------------------------------------------------------------


def test_dashboard_shows_quotas_top_users_error_rate_and_failures(staff, user, issue, django_user_model):
    issue(user, name="laptop")
    key = ApiKey.objects.get(name="laptop")
    bob = django_user_model.objects.create_user("bob")
    Limits.objects.create(user=user, daily_tokens=10_000, monthly_tokens=200_000, budget_usd=Decimal("5"))
    UsageRecord.objects.bulk_create(
        [
            record(user, key, tokens=1000, cost="0.25"),
            record(user, key, tokens=50, status=503, cost="0"),
            record(bob, tokens=300, model="gemini-2.5-flash", cost="1.5"),
        ]
    )
    body = staff.get("/admin/dashboard/").content.decode()
    quota = body.split('id="quota-table"')[1].split("</section>")[0]
    assert "alice" in quota and "1,050 of 10,000" in quota and "$0.2500 of $5.00" in quota
    assert "bob" in quota and "no limit" in quota
    top = body.split('id="top-users"')[1].split("</section>")[0]
    assert top.index("bob") < top.index("alice")  # most cost first
    failures = body.split('id="recent-failures"')[1].split("</section>")[0]
    assert "503" in failures and key.prefix in failures and "upstream_error" in failures
    assert "error rate 33.3%" in body
    assert '<script src="/static/gateway/vendor/chart.umd.js"' in body  # served locally, no CDN
    assert "cdn" not in body.lower()


def test_dashboard_chart_counts_requests_per_day_per_model(staff, user):
    UsageRecord.objects.bulk_create(
        [
            record(user, when=NOW - timedelta(days=2), model="gpt-4o"),
            record(user, when=NOW - timedelta(days=2), model="gpt-4o"),
            record(user, when=NOW, model="gemini-2.5-flash", status=500),
            record(user, when=NOW - timedelta(days=45), model="gpt-4o"),  # outside the 30 days
        ]
    )
    body = staff.get("/admin/dashboard/").content.decode()
    data = json.loads(re.search(r'id="dashboard-chart-data" type="application/json">(.*?)</script>', body).group(1))
    assert len(data["labels"]) == 30 and data["labels"][-1] == TODAY.isoformat()
    requests = {s["label"]: s["data"] for s in data["requests"]}
    assert requests["gpt-4o"][-3] == 2 and sum(requests["gpt-4o"]) == 2
    assert requests["gemini-2.5-flash"][-1] == 1
    assert data["errors"][-1] == 1


def test_dashboard_combines_rolled_up_history_with_raw_rows(staff, user):
    """Days whose raw rows were pruned come from UsageDaily, later days from the raw rows."""
    UsageDaily.objects.create(
        day=TODAY - timedelta(days=5),
        user=user,
        model="gpt-4o",
        requests=7,
        errors=2,
        total_tokens=700,
        cost_usd=Decimal("0.7"),
    )
    UsageRecord.objects.bulk_create([record(user, when=NOW, model="gpt-4o", tokens=10)])
    # A raw row on a rolled-up day is not counted twice: the roll-up is the source for that day.
    UsageRecord.objects.bulk_create([record(user, when=dashboard.day_start(TODAY - timedelta(days=5)), tokens=1)])
    data = dashboard.dashboard()
    assert data["chart"]["requests"][0]["data"][-6] == 7 and data["chart"]["requests"][0]["data"][-1] == 1
    assert data["totals"]["window"]["requests"] == 8 and data["totals"]["window"]["errors"] == 2
    assert data["totals"]["window"]["total_tokens"] == 710
    body = staff.get("/admin/dashboard/").content.decode()
    assert "8 requests" in body or "of 8 requests" in body


def test_dashboard_needs_staff(client, user):
    client.force_login(user)
    response = client.get("/admin/dashboard/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_admin_index_links_the_dashboard_and_default_limits(staff):
    body = staff.get("/admin/").content.decode()
    assert 'href="/admin/dashboard/"' in body and 'href="/admin/accounts/limits/default/"' in body
    assert "gateway/admin.css" in body


# --- keys, users, limits, prices -----------------------------------------------------------------


def test_key_list_and_page_show_last_use_and_usage(staff, user, issue):
    issue(user, name="laptop")
    issue(user, name="idle")
    key = ApiKey.objects.get(name="laptop")
    UsageRecord.objects.bulk_create([record(user, key, tokens=1234, cost="0.5") for _ in range(3)])
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=NOW)
    with CaptureQueriesContext(connection) as queries:
        body = staff.get("/admin/accounts/apikey/").content.decode()
    usage_queries = [q["sql"] for q in queries if "proxy_app_usagerecord" in q["sql"]]
    assert len(usage_queries) == 1 and "GROUP BY" in usage_queries[0]  # one grouped query per page
    row = body.split(f">{key.name}<")[1].split("</tr>")[0]
    assert ">3<" in row and "3,702" in row and "1.5000" in row and "active" in row
    page = staff.get(f"/admin/accounts/apikey/{key.pk}/change/").content.decode()
    assert 'id="key-usage"' in page and "3,702" in page and f"?key={key.pk}" in page
    assert "limits-TOTAL_FORMS" in page  # the key's limits inline


def test_key_limits_inline_saves_limits(staff, user, issue):
    issue(user, name="laptop")
    key = ApiKey.objects.get(name="laptop")
    data = {
        "name": "laptop",
        "allowed_models": "",
        "expires_at_0": "",
        "expires_at_1": "",
        "limits-TOTAL_FORMS": "1",
        "limits-INITIAL_FORMS": "0",
        "limits-MIN_NUM_FORMS": "0",
        "limits-MAX_NUM_FORMS": "1",
        "limits-0-id": "",
        "limits-0-rpm": "5",
        "limits-0-daily_tokens": "1000",
        "limits-0-api_key": key.pk,
    }
    response = staff.post(f"/admin/accounts/apikey/{key.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    limits = Limits.objects.get(api_key=key)
    assert (limits.rpm, limits.daily_tokens, limits.user_id) == (5, 1000, None)


def test_user_admin_has_limits_and_keys_inline(staff, user, issue):
    issue(user, name="laptop")
    body = staff.get(f"/admin/auth/user/{user.pk}/change/").content.decode()
    assert "limits-TOTAL_FORMS" in body and "Tokens per UTC day" in body
    assert "an all-empty row exempts the user" in body
    assert "laptop" in body and ApiKey.objects.get(name="laptop").prefix in body


def test_default_limits_page(staff, user):
    response = staff.get("/admin/accounts/limits/default/")
    default = Limits.objects.get(is_default=True)
    assert response.status_code == 302 and response["Location"].endswith(f"/admin/accounts/limits/{default.pk}/change/")
    data = {"is_default": "on", "user": "", "api_key": "", "daily_tokens": "5000", "budget_usd": "2.5"}
    response = staff.post(f"/admin/accounts/limits/{default.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    scopes = effective_limits_sync(user_id=user.pk).scopes
    assert scopes[0].limits.daily_tokens == 5000 and scopes[0].limits.budget_usd == Decimal("2.5")
    assert staff.get("/admin/accounts/limits/default/")["Location"].endswith(f"/{default.pk}/change/")  # still one


def test_limits_admin_refuses_a_row_with_two_owners(staff, user, issue):
    issue(user, name="laptop")
    key = ApiKey.objects.get(name="laptop")
    response = staff.post("/admin/accounts/limits/add/", {"user": user.pk, "api_key": key.pk, "rpm": "3"})
    assert response.status_code == 200 and "exactly one user, one key, or are the default" in response.content.decode()
    assert not Limits.objects.exists()


def test_model_prices_are_editable_in_the_list(staff):
    price = ModelPrice.objects.get_or_create(
        model="gemini-2.5-flash", defaults={"input_per_million": 1, "output_per_million": 2}
    )[0]
    rows = list(ModelPrice.objects.order_by("model"))
    data = {"form-TOTAL_FORMS": str(len(rows)), "form-INITIAL_FORMS": str(len(rows)), "_save": "Save"}
    for i, row in enumerate(rows):
        data |= {
            f"form-{i}-id": row.pk,
            f"form-{i}-input_per_million": row.input_per_million,
            f"form-{i}-output_per_million": row.output_per_million,
            f"form-{i}-cached_input_per_million": row.cached_input_per_million,
        }
        if row.pk == price.pk:
            data[f"form-{i}-input_per_million"] = "0.4"
    response = staff.post("/admin/proxy_app/modelprice/", data)
    assert response.status_code == 302
    price.refresh_from_db()
    assert price.input_per_million == Decimal("0.4")


# --- usage records: filters, totals, CSV -----------------------------------------------------------


@pytest.fixture
def ledger(user, issue, django_user_model):
    bob = django_user_model.objects.create_user("bob")
    issue(user, name="laptop")
    issue(bob, name="ci")
    laptop, ci = ApiKey.objects.get(name="laptop"), ApiKey.objects.get(name="ci")
    UsageRecord.objects.bulk_create(
        [
            record(user, laptop, when=NOW - timedelta(days=10), model="gpt-4o", tokens=10, request_id="old"),
            record(user, laptop, when=NOW, model="gpt-4o", tokens=20, request_id="a1"),
            record(user, laptop, when=NOW, model="gemini-2.5-flash", tokens=30, status=429, request_id="a2"),
            record(bob, ci, when=NOW, model="gpt-4o", tokens=40, status=502, request_id="b1", dialect="ollama"),
        ]
    )
    return {"alice": user, "bob": bob, "laptop": laptop, "ci": ci}


def ids(client, query: str) -> set[str]:
    body = client.get(f"/admin/proxy_app/usagerecord/?{query}").content.decode()
    return {r.request_id for r in UsageRecord.objects.all() if f"/usagerecord/{r.pk}/change/" in body}


def test_usage_filters(staff, ledger):
    assert ids(staff, f"user={ledger['bob'].pk}") == {"b1"}
    assert ids(staff, f"key={ledger['laptop'].pk}") == {"old", "a1", "a2"}
    assert ids(staff, "model=gemini-2.5-flash") == {"a2"}
    assert ids(staff, "status=errors") == {"a2", "b1"}
    assert ids(staff, "status=429") == {"a2"}
    assert ids(staff, "status=5xx") == {"b1"}
    assert ids(staff, "status=ok") == {"old", "a1"}
    assert ids(staff, "dialect=ollama") == {"b1"}
    old = (TODAY - timedelta(days=10)).isoformat()
    assert ids(staff, f"created_at_from={old}&created_at_to={old}") == {"old"}
    assert ids(staff, f"created_at_from={TODAY - timedelta(days=1)}") == {"a1", "a2", "b1"}
    assert ids(staff, f"created_at_to={TODAY - timedelta(days=1)}&model=gpt-4o") == {"old"}
    assert staff.get("/admin/proxy_app/usagerecord/?created_at_from=soon").status_code == 302  # ?e=1


def test_usage_filter_choices_and_totals(staff, ledger):
    body = staff.get(f"/admin/proxy_app/usagerecord/?user={ledger['alice'].pk}").content.decode()
    assert "laptop (" in body and "gemini-2.5-flash" in body and 'type="date"' in body
    totals = body.split('id="usage-totals"')[1].split("</p>")[0]
    assert "3 requests" in totals and "60 total tokens" in totals and "1 failed" in totals


def test_csv_export_streams_the_filtered_range(staff, ledger, monkeypatch):
    from proxy_app.admin import site as proxy_admin

    monkeypatch.setattr(proxy_admin, "CSV_BATCH", 2)  # several keyset batches
    extra = [
        record(ledger["alice"], ledger["laptop"], when=NOW - timedelta(minutes=n), request_id=f"x{n}") for n in range(5)
    ]
    UsageRecord.objects.bulk_create(extra)
    page = staff.get(f"/admin/proxy_app/usagerecord/?user={ledger['alice'].pk}").content.decode()
    export_url = re.search(r'href="([^"]*export\.csv[^"]*)"', page).group(1).replace("&amp;", "&")
    assert f"user={ledger['alice'].pk}" in export_url
    response = staff.get(f"{export_url}&created_at_from={TODAY}")
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(streamed_body(response).decode())))
    assert sorted(r["request_id"] for r in rows) == sorted(["a1", "a2", *(f"x{n}" for n in range(5))])
    assert [r["created_at"] for r in rows] == sorted((r["created_at"] for r in rows), reverse=True)
    assert rows[0]["user"] == "alice" and rows[0]["key_prefix"] == ledger["laptop"].prefix


def test_csv_export_needs_staff(client, user):
    client.force_login(user)
    assert client.get("/admin/proxy_app/usagerecord/export.csv").status_code == 302


# --- a big table --------------------------------------------------------------------------------------


ROWS = 50_000


@pytest.fixture
def big_ledger(user, issue):
    issue(user, name="laptop")
    key = ApiKey.objects.get(name="laptop")
    models = ["gpt-4o", "gemini-2.5-flash", "gemini-2.5-pro", "embed"]
    batch = [
        record(
            user,
            key,
            when=NOW - timedelta(minutes=3 * n),
            model=models[n % 4],
            status=200 if n % 9 else 500,
            request_id=f"req-{n}",
        )
        for n in range(ROWS)
    ]
    UsageRecord.objects.bulk_create(batch, batch_size=5000)
    return key


def unbounded_counts(queries) -> list[str]:
    """COUNT queries over the usage table bounded neither by a LIMIT (a capped count is COUNT(*)
    over a LIMITed subquery) nor by a created_at range."""
    found = []
    for q in queries:
        sql = q["sql"].upper()
        if "COUNT(" in sql and "PROXY_APP_USAGERECORD" in sql and "LIMIT" not in sql and '"CREATED_AT" >=' not in sql:
            found.append(q["sql"])
    return found


def timed_get(client, url):
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    return response, queries, (time.perf_counter() - started) * 1000


def test_pages_on_a_big_table_never_count_or_scan_the_whole_table(staff, big_ledger, user, capsys):
    staff.get("/admin/proxy_app/usagerecord/")  # warm up (session, content types)
    week_ago = TODAY - timedelta(days=7)
    report = []
    for query in [
        "",
        "status=errors",
        f"model=gpt-4o&user={user.pk}",
        "p=3",
        f"created_at_from={week_ago}",
        f"key={big_ledger.pk}&created_at_from={week_ago}&created_at_to={TODAY}",
    ]:
        response, queries, ms = timed_get(staff, f"/admin/proxy_app/usagerecord/?{query}")
        assert response.status_code == 200
        assert unbounded_counts(queries) == [], query
        usage_sql = [q["sql"] for q in queries if "proxy_app_usagerecord" in q["sql"]]
        assert len(queries) <= 14 and len(usage_sql) <= 6, [q["sql"] for q in queries]
        for sql in usage_sql:  # every read of the big table has a LIMIT or an indexed created_at range
            assert "LIMIT" in sql.upper() or '"created_at" >=' in sql, sql
        report.append(f"changelist ?{query or '(no filter)'}: {ms:.0f} ms, {len(queries)} queries")
    body = staff.get("/admin/proxy_app/usagerecord/").content.decode()
    assert "more than 10,000 usage records" in body and "today (" in body
    response, queries, ms = timed_get(staff, "/admin/dashboard/")
    assert response.status_code == 200 and unbounded_counts(queries) == [] and len(queries) <= 14
    report.append(f"dashboard: {ms:.0f} ms, {len(queries)} queries")
    response, queries, ms = timed_get(staff, "/admin/accounts/apikey/")
    assert response.status_code == 200 and unbounded_counts(queries) == []
    report.append(f"key list: {ms:.0f} ms, {len(queries)} queries")
    with capsys.disabled():
        print(f"\n  {ROWS} usage rows on {connection.vendor}:\n    " + "\n    ".join(report))
