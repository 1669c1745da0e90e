"""API keys (each belongs to one Django user; the secret itself is never stored) and their limits."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from gateway_site.client_ip import parse_ip


def normalize_networks(items) -> list[str]:
    """IPs/CIDRs as given by an admin or a command -> their canonical CIDR texts ('10.1.2.3' ->
    '10.1.2.3/32', '10.1.2.0/24' kept, host bits of '10.1.2.3/24' refused as a likely typo).
    Raises ValidationError naming the bad entry."""
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, list | tuple):
        raise ValidationError('a list of IP addresses or CIDRs, e.g. ["203.0.113.7", "10.0.0.0/8"]')
    out: list[str] = []
    for item in items:
        text = str(item).strip()
        try:
            network = ipaddress.ip_network(text)
        except ValueError as exc:
            raise ValidationError(
                f"{text!r} is not an IP address or CIDR (e.g. 203.0.113.7 or 10.0.0.0/8): {exc}"
            ) from None
        mapped = parse_ip(str(network.network_address)) if network.version == 6 else None
        if mapped is not None and mapped.version == 4:  # ::ffff:a.b.c.d/128 means the IPv4 address
            network = ipaddress.ip_network(f"{mapped}/{max(network.prefixlen - 96, 0)}")
        if str(network) not in out:
            out.append(str(network))
    return out


def validate_networks(value) -> None:
    normalize_networks(value)


class ApiKey(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, help_text="Public part of the key, safe to show.")
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    allowed_models = models.JSONField(
        default=list, blank=True, help_text="Model aliases this key may use; empty means all."
    )
    allowed_ips = models.JSONField(
        "allowed client addresses",
        default=list,
        blank=True,
        validators=[validate_networks],
        help_text='IPs or CIDRs this key may be used from, e.g. ["203.0.113.7", "10.0.0.0/8"]; empty means any. '
        "The client address is the socket peer, or the forwarded client behind GATEWAY_TRUSTED_PROXIES.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="unique_key_name_per_user")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_usable(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def allows(self, model: str) -> bool:
        return not self.allowed_models or model in self.allowed_models


class Limits(models.Model):
    """Limits of one user, one key, or the default row (users without a row of their own).

    Empty fields mean "no limit of that kind". A user's row replaces the default row as a whole
    (an all-empty row exempts that user from the defaults); a key's row applies on top of its
    user's, so both are enforced. Out of the box there is no row at all: nothing is limited.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="limits"
    )
    api_key = models.OneToOneField(ApiKey, null=True, blank=True, on_delete=models.CASCADE, related_name="limits")
    is_default = models.BooleanField(default=False, help_text="The limits of every user without limits of their own.")
    rpm = models.PositiveIntegerField("requests per minute", null=True, blank=True, validators=[MinValueValidator(1)])
    tpm = models.PositiveBigIntegerField("tokens per minute", null=True, blank=True, validators=[MinValueValidator(1)])
    max_parallel = models.PositiveIntegerField(
        "requests in flight", null=True, blank=True, validators=[MinValueValidator(1)]
    )
    daily_tokens = models.PositiveBigIntegerField(
        "tokens per UTC day", null=True, blank=True, validators=[MinValueValidator(1)]
    )
    monthly_tokens = models.PositiveBigIntegerField(
        "tokens per UTC month", null=True, blank=True, validators=[MinValueValidator(1)]
    )
    budget_usd = models.DecimalField(
        "monthly budget (USD)",
        max_digits=12,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.0001"))],
    )
    updated_at = models.DateTimeField(auto_now=True)

    LIMIT_FIELDS = ("rpm", "tpm", "max_parallel", "daily_tokens", "monthly_tokens", "budget_usd")

    class Meta:
        verbose_name = "limits"
        verbose_name_plural = "limits"
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(user__isnull=False, api_key__isnull=True, is_default=False)
                    | models.Q(user__isnull=True, api_key__isnull=False, is_default=False)
                    | models.Q(user__isnull=True, api_key__isnull=True, is_default=True)
                ),
                name="limits_exactly_one_owner",
                violation_error_message="Limits belong to exactly one user, one key, or are the default.",
            ),
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True), name="limits_single_default"
            ),
        ]

    def __str__(self) -> str:
        return f"limits of {self.owner_label()}"

    def owner_label(self) -> str:
        if self.is_default:
            return "default"
        if self.user_id:
            return f"user {self.user}"
        return f"key {self.api_key}"

    def describe(self) -> str:
        """'rpm=60, budget_usd=10.00' (only the limits that are set), or 'no limits'."""
        parts = [f"{name}={self._text(name)}" for name in self.LIMIT_FIELDS if getattr(self, name) is not None]
        return ", ".join(parts) or "no limits"

    def _text(self, name: str) -> str:
        value = getattr(self, name)
        if name != "budget_usd":
            return str(value)
        whole, _, cents = f"{Decimal(value):f}".partition(".")
        return f"{whole}.{cents.rstrip('0').ljust(2, '0')}"  # 25.5000 -> 25.50, 0.0015 stays
