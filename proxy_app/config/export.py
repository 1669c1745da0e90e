"""export_config: the database's configuration as the data apply_config reads (no secrets).

Upstreams (their API key only as `api_key_env`; a key stored encrypted is neither exported nor
touched by applying the file again), model mappings, prices, users (never passwords), limits and
settings; with `keys=True` also keys' metadata (never secrets or hashes) and keys' limits. Rows are
sorted by their identity and fields left at "none" are left out (TOML has no null), so the output
is stable: export → apply on an empty database → export gives the same text.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model

from accounts.models import ApiKey, Limits
from proxy_app.models import LogSettings, ModelPrice, PoolMember, Upstream, UsagePolicy


def number(value: Decimal) -> int | float:
    """A price or budget as a plain TOML/YAML number (at most 4 decimals, so float is exact enough)."""
    value = Decimal(value).normalize()
    return int(value) if value == value.to_integral_value() else float(value)


def export_data(*, keys: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {"settings": _settings()}
    sections = {
        "upstreams": [_upstream(u) for u in Upstream.objects.order_by("name")],
        "users": [_user(u) for u in get_user_model().objects.order_by("username")],
        "models": [_member(m) for m in _members()],
        "prices": [_price(p) for p in ModelPrice.objects.order_by("model")],
    }
    if keys:
        rows = ApiKey.objects.select_related("user").order_by("user__username", "name")
        sections["keys"] = [_key(k) for k in rows]
    limits = Limits.objects.select_related("user", "api_key__user")
    if not keys:
        limits = limits.filter(api_key__isnull=True)
    sections["limits"] = sorted((_limits(row) for row in limits), key=_limits_order)
    data.update({name: rows for name, rows in sections.items() if rows})
    return data


def _settings() -> dict[str, Any]:
    log = LogSettings.objects.first()
    found: dict[str, Any] = {"detailed_logging": bool(log and log.detailed_logging)}
    days = UsagePolicy.objects.filter(pk=1).values_list("retention_days", flat=True).first()
    if days is not None:
        found["usage_retention_days"] = days
    return found


def _upstream(row: Upstream) -> dict[str, Any]:
    found = {"name": row.name, "kind": row.kind, "base_url": row.base_url}
    if row.api_key_env:
        found["api_key_env"] = row.api_key_env
    found |= {"enabled": row.enabled, "detailed_logging": row.detailed_logging}
    return found | {f: getattr(row, f) for f in ("max_concurrent", "rpm", "tpm") if getattr(row, f) is not None}


def _user(row) -> dict[str, Any]:
    found = {"username": row.get_username()}
    for field in ("email", "first_name", "last_name"):
        if getattr(row, field):
            found[field] = getattr(row, field)
    return found | {"is_staff": row.is_staff, "is_superuser": row.is_superuser, "is_active": row.is_active}


def _members() -> list[PoolMember]:
    """Every pool member, by alias, then in the order the router tries them."""
    rows = PoolMember.objects.select_related("mapping", "upstream")
    return sorted(rows, key=lambda m: (m.mapping.alias, m.priority, -m.weight, m.upstream.name if m.upstream else ""))


def _member(row: PoolMember) -> dict[str, Any]:
    """One [[models]] entry per pool member; an alias with several members has several entries."""
    found = {"alias": row.mapping.alias}
    if row.upstream is not None:
        found["upstream"] = row.upstream.name
    found |= {"model": row.upstream_model, "priority": row.priority, "weight": row.weight}
    return found | {"hidden": row.mapping.hidden}


def _price(row: ModelPrice) -> dict[str, Any]:
    return {
        "model": row.model,
        "input_per_million": number(row.input_per_million),
        "output_per_million": number(row.output_per_million),
        "cached_input_per_million": number(row.cached_input_per_million),
    }


def _key(row: ApiKey) -> dict[str, Any]:
    found: dict[str, Any] = {"user": row.user.get_username(), "name": row.name}
    if row.allowed_models:
        found["models"] = list(row.allowed_models)
    if row.allowed_ips:
        found["allowed_ips"] = list(row.allowed_ips)
    if row.expires_at:
        found["expires_at"] = row.expires_at.replace(microsecond=0)
    return found | {"revoked": row.revoked_at is not None}


def _limits(row: Limits) -> dict[str, Any]:
    if row.is_default:
        found: dict[str, Any] = {"default": True}
    elif row.user_id:
        found = {"user": row.user.get_username()}
    else:
        found = {"key": f"{row.api_key.user.get_username()}/{row.api_key.name}"}
    for field in Limits.LIMIT_FIELDS:
        value = getattr(row, field)
        if value is not None:
            found[field] = number(value) if field == "budget_usd" else value
    return found


def _limits_order(entry: dict) -> tuple:
    return ("default" not in entry, "key" in entry, entry.get("user") or entry.get("key") or "")
