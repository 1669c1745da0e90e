"""The only writers of keys: issue and revoke. The admin and the commands both call these."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.keys import hash_secret, make_secret
from accounts.models import ApiKey


class KeyServiceError(Exception):
    """A user mistake (unknown user, duplicate name, ambiguous name); message is safe to show."""


def issue_key(
    user,
    *,
    name: str = "",
    models: list[str] | None = None,
    expires_days: int | None = None,
) -> tuple[ApiKey, str]:
    """Create a key for `user`; return it with its secret, which is never retrievable again."""
    key = ApiKey(user=user, name=name, allowed_models=list(models or []))
    if expires_days:
        key.expires_at = timezone.now() + timedelta(days=expires_days)
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
