"""OpenID Connect login for the admin and member pages (mozilla-django-oidc), on when GATEWAY_OIDC_ISSUER is set.

The provider's endpoints come from GATEWAY_OIDC_*_ENDPOINT when given, else from its discovery
document (`<issuer>/.well-known/openid-configuration`), read once, on the first login, so a provider
that is down never stops the gateway starting or serving API keys. A login creates the Django user
(username from `preferred_username`, else the email's local part) or links the existing one with the
same email; at every login the claim GATEWAY_OIDC_GROUPS_CLAIM decides the role: containing
GATEWAY_OIDC_STAFF_GROUP makes the user an admin (staff and superuser), otherwise a member (the
member page and chat only).
"""

from __future__ import annotations

import threading

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings
from mozilla_django_oidc.views import OIDCAuthenticationRequestView

DISCOVERED = {  # our setting -> the discovery document's field
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}
_discovery: dict | None = None
_lock = threading.Lock()


def setting(attr: str, *default):
    """mozilla-django-oidc's settings, with the endpoints not configured taken from discovery."""
    if attr in DISCOVERED and not getattr(settings, attr, ""):
        return discovery()[DISCOVERED[attr]]
    return import_from_settings(attr, *default)


def discovery() -> dict:
    global _discovery
    with _lock:
        if _discovery is None:
            url = settings.OIDC_ISSUER.rstrip("/") + "/.well-known/openid-configuration"
            try:
                response = requests.get(url, timeout=10)
                response.raise_for_status()
                _discovery = response.json()
            except (requests.RequestException, ValueError) as exc:
                raise ImproperlyConfigured(f"OpenID Connect discovery failed at {url}: {exc}") from exc
        return _discovery


class Backend(OIDCAuthenticationBackend):
    @staticmethod
    def get_settings(attr, *args):
        return setting(attr, *args)

    def verify_claims(self, claims) -> bool:
        return bool(claims.get("email") or claims.get("preferred_username"))

    def filter_users_by_claims(self, claims):
        email = claims.get("email")
        if email and claims.get("email_verified", True):
            return self.UserModel.objects.filter(email__iexact=email)
        return self.UserModel.objects.none()

    def create_user(self, claims):
        # No password given: create_user stores an unusable one (setting another here, unsaved,
        # would change the session's auth hash and log the user straight out again).
        user = self.UserModel.objects.create_user(_free_username(self.UserModel, claims), claims.get("email", ""))
        return self.update_user(user, claims)

    def update_user(self, user, claims):
        staff = settings.OIDC_STAFF_GROUP in _groups(claims.get(settings.OIDC_GROUPS_CLAIM))
        user.is_staff = user.is_superuser = staff
        user.save(update_fields=["is_staff", "is_superuser"])
        return user


class Authenticate(OIDCAuthenticationRequestView):
    """The redirect to the provider (its authorization endpoint possibly from discovery)."""

    @staticmethod
    def get_settings(attr, *args):
        return setting(attr, *args)


def _groups(value) -> list[str]:
    if isinstance(value, str):
        return value.replace(",", " ").split()
    return [str(v) for v in value or ()]


def _free_username(model, claims) -> str:
    base = (claims.get("preferred_username") or claims.get("email", "").split("@")[0] or "sso-user")[:140]
    name, n = base, 1
    while model.objects.filter(username=name).exists():
        n += 1
        name = f"{base}-{n}"
    return name
