"""Usage totals have one home: proxy_app/ledger/reports.py sums usage rows for every reader (the
dashboard, the usage changelist, the key admin, the member page, usage_report, the quota seeds)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOTALS_HOME = Path("proxy_app/ledger/reports.py")
AGGREGATES = {"Sum", "Count", "Avg"}


def _sources():
    for package in ("accounts", "proxy_app", "gateway_site"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path.relative_to(ROOT)


def _aggregates_used(tree: ast.AST) -> set[str]:
    """Aggregate functions imported from django.db.models (or used as models.Sum and the like)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("django.db.models"):
            found |= {alias.name for alias in node.names} & AGGREGATES
        elif isinstance(node, ast.Attribute) and node.attr in AGGREGATES and isinstance(node.value, ast.Name):
            found.add(node.attr)
    return found


def test_only_the_reports_module_sums_usage():
    offenders = {}
    for path in _sources():
        used = _aggregates_used(ast.parse((ROOT / path).read_text(), str(path)))
        if used and path != TOTALS_HOME:
            offenders[str(path)] = sorted(used)
    assert offenders == {}, "usage totals belong in proxy_app/ledger/reports.py"


def test_the_reports_module_offers_what_the_readers_use():
    from proxy_app.ledger import reports, usage

    for name in ("report", "totals", "raw_totals", "quota_usage", "daily_totals", "member_usage", "key_usage"):
        assert callable(getattr(reports, name)), name
    assert not hasattr(usage, "report") and not hasattr(usage, "totals")  # usage.py records, it does not sum
