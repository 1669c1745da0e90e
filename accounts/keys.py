"""Making and hashing API key secrets.

A key looks like `gw-<prefix>_<random>`: the prefix is public (shown in the admin, usable with
`revoke_token`), the whole key is stored only as HMAC-SHA-256 under the server secret and looked
up by that hash through a unique index. Keys carry 256 random bits, so a slow password hasher
would add ~0.5 s per request and no security (libraries.md row 30).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

from django.conf import settings

KEY_PREFIX = "gw-"
_ALPHABET = string.ascii_lowercase + string.digits


def make_secret() -> tuple[str, str]:
    """Return (secret, visible prefix)."""
    prefix = KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(8))
    return f"{prefix}_{secrets.token_urlsafe(32)}", prefix


def hash_secret(secret: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), secret.encode(), hashlib.sha256).hexdigest()


def looks_like_key(secret: str) -> bool:
    return secret.startswith(KEY_PREFIX) and 20 <= len(secret) <= 200
