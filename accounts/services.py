"""The only writers of ApiKey and Limits rows: the admin, the member page, the chat page and the
commands all call these (tests/test_one_writer.py checks it).

Keys: issue_key / save_new_key, update_key, set_allowed_ips, find_key, revoke_key (by prefix or name) /
revoke_keys, delete_keys.
Limits: set_limits (the set_limits command), default_limits, save_limits, delete_limits.

Outside this module only the usage writer touches ApiKey, to bump `last_used_at`
(proxy_app.ledger.usage), and Django's deletion of a user cascades to its keys and limits.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.keys import hash_secret, make_secret
from accounts.models import ApiKey, Limits, normalize_networks


class KeyServiceError(Exception):
    """A user mistake (unknown user, duplicate name, ambiguous name); message is safe to show."""


def issue_key(
    user,
    *,
    name: str = "",
    models: list[str] | None = None,
    expires_days: int | None = None,
    expires_at: datetime | None = None,
    allowed_ips: list[str] | None = None,
) -> tuple[ApiKey, str]:
    """Create a key for `user`; return it with its secret, which is never retrievable again.

    Expiry: `expires_at` (timezone-aware, may be in the past: an already-expired key), or
    `expires_days` from now (0: expires now); neither: never. `allowed_ips`: IPs/CIDRs the key
    may be used from (empty: any)."""
    if expires_at is not None and expires_days is not None:
        raise KeyServiceError("give an expiry date or a number of days, not both")
    if expires_at is not None and timezone.is_naive(expires_at):
        raise KeyServiceError("the expiry must carry a timezone")
    key = ApiKey(user=user, name=name, allowed_models=list(models or []), allowed_ips=_networks(allowed_ips or []))
    if expires_days is not None:
        key.expires_at = timezone.now() + timedelta(days=expires_days)
    elif expires_at is not None:
        key.expires_at = expires_at
    secret = save_new_key(key)
    return key, secret


def save_new_key(key: ApiKey) -> str:
    """Give an unsaved key its secret and save it; return the secret (its only appearance)."""
    secret, key.prefix = make_secret()
    key.secret_hash = hash_secret(secret)
    key.name = key.name or f"key-{key.prefix[3:]}"
    if ApiKey.objects.filter(user=key.user, name=key.name).exists():
        raise KeyServiceError(f"user {key.user.username!r} already has a key named {key.name!r}")
    try:
        with transaction.atomic():
            key.save()
    except IntegrityError:
        raise KeyServiceError(f"user {key.user.username!r} already has a key named {key.name!r}") from None
    return secret


def get_or_create_user(username: str, *, create: bool):
    User = get_user_model()
    try:
        return User.objects.get(username=username)
    except User.DoesNotExist:
        if not create:
            raise KeyServiceError(f"no user named {username!r} (pass --create-user to create one)") from None
        return User.objects.create_user(username=username)


def revoke_key(prefix_or_name: str) -> list[ApiKey]:
    """Revoke the key with this prefix, or the keys with this name; return what was revoked."""
    keys = list(ApiKey.objects.filter(Q(prefix=prefix_or_name) | Q(name=prefix_or_name)))
    if not keys:
        raise KeyServiceError(f"no key with prefix or name {prefix_or_name!r}")
    owners = {k.user_id for k in keys}
    if len(owners) > 1:
        raise KeyServiceError(f"several users have a key named {prefix_or_name!r}; revoke it by prefix instead")
    now = timezone.now()
    for key in keys:
        if key.revoked_at is None:
            key.revoked_at = now
            key.save(update_fields=["revoked_at"])
    return keys


@transaction.atomic
def revoke_keys(keys) -> int:
    """Revoke the keys of the queryset `keys` not revoked yet, each with a conditional UPDATE (a key
    revoked meanwhile keeps its first revocation time), and put each revocation in the audit log
    (an UPDATE sends no save signal for django-auditlog to see); return how many were revoked now."""
    now, revoked = timezone.now(), 0
    for key in keys.filter(revoked_at__isnull=True):
        if ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=now):
            revoked += 1
            changes = {"revoked_at": [None, str(now)]}
            LogEntry.objects.log_create(key, action=LogEntry.Action.UPDATE, changes=changes)
    return revoked


def _networks(items: list[str]) -> list[str]:
    try:
        return normalize_networks(items)
    except ValidationError as exc:
        raise KeyServiceError(exc.messages[0]) from None


def find_key(prefix_or_name: str) -> ApiKey:
    """The one key with this prefix, or else this name (a name several users share is ambiguous)."""
    keys = list(ApiKey.objects.select_related("user").filter(prefix=prefix_or_name))
    keys = keys or list(ApiKey.objects.select_related("user").filter(name=prefix_or_name))
    if not keys:
        raise KeyServiceError(f"no key with prefix or name {prefix_or_name!r}")
    if len(keys) > 1:
        raise KeyServiceError(f"several keys are named {prefix_or_name!r}; name the key by its prefix instead")
    return keys[0]


def set_allowed_ips(key: ApiKey, allowed_ips: list[str]) -> ApiKey:
    """Replace the key's IP allow-list (empty: any address); applies within GATEWAY_KEY_CACHE_SECONDS."""
    key.allowed_ips = _networks(allowed_ips)
    key.save(update_fields=["allowed_ips"])
    return key


def update_key(key: ApiKey) -> None:
    """Save an existing key's edited fields (the admin's change form: name, models, IPs, expiry)."""
    key.save()


def delete_keys(keys) -> None:
    """Delete a key, or the keys of a queryset (their usage rows keep their prefix)."""
    keys.delete()


# --- limits ---------------------------------------------------------------------------------------


@transaction.atomic
def set_limits(target: dict, values: dict, clear: list[str] | None) -> Limits | None:
    """Apply `values` and clear the `clear` fields (all of them, row included, when empty) of the
    Limits row of `target` ({"user": u} / {"api_key": k} / {"is_default": True}); None: removed.
    Raises ValidationError for values the row refuses."""
    row = Limits.objects.select_for_update().filter(**target).first()
    if clear == [] and not values:
        if row is not None:
            row.delete()
        return None
    row = row or Limits(**target)
    for name in clear or ():
        setattr(row, name, None)
    for name, value in values.items():
        setattr(row, name, value)
    row.full_clean()
    row.save()
    return row


def default_limits() -> Limits:
    """The default limits row, created empty (limiting nothing) when there is none."""
    row, _ = Limits.objects.get_or_create(is_default=True)
    return row


def save_limits(row: Limits) -> None:
    """Save a Limits row an admin form has validated (the limits admin and the limits inlines)."""
    row.save()


def delete_limits(rows) -> None:
    """Delete a Limits row, or the rows of a queryset (the defaults apply again to their owners)."""
    rows.delete()
