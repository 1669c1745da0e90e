"""Upstreams, model mappings and the per-request usage ledger."""

from __future__ import annotations

import os

from django.conf import settings
from django.db import models

from proxy_app import crypto


class Upstream(models.Model):
    class Kind(models.TextChoices):
        GEMINI = "gemini", "Google Gemini (native REST)"
        OPENAI = "openai", "OpenAI-compatible"

    name = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.GEMINI)
    base_url = models.URLField(max_length=300)
    api_key_encrypted = models.TextField(blank=True, editable=False)
    api_key_env = models.CharField(
        max_length=100, blank=True, help_text="Name of an environment variable holding the key."
    )
    enabled = models.BooleanField(default=True)
    detailed_logging = models.BooleanField(
        default=False, help_text="Write every request's four stages to the detail log (debugging translations)."
    )
    max_concurrent = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most calls open at once on this upstream's key (empty: no cap)."
    )
    rpm = models.PositiveIntegerField(
        "requests per minute", null=True, blank=True, help_text="Calls per minute on this upstream's key."
    )
    tpm = models.PositiveIntegerField(
        "tokens per minute", null=True, blank=True, help_text="Tokens per minute on this upstream's key."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name

    def set_api_key(self, plaintext: str) -> None:
        self.api_key_encrypted = crypto.encrypt(plaintext)

    def api_key(self) -> str:
        if self.api_key_env:
            return os.environ.get(self.api_key_env, "")
        return crypto.decrypt(self.api_key_encrypted)

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key_env or self.api_key_encrypted)


class ModelMapping(models.Model):
    """An alias clients send; where it goes is its pool of members (PoolMember, at least one)."""

    alias = models.CharField(max_length=200, unique=True, help_text="The name clients send, e.g. gpt-4o.")
    hidden = models.BooleanField(default=False, help_text="Routable, but left out of model lists.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["alias"]

    def __str__(self) -> str:
        return self.alias


class PoolMember(models.Model):
    """One upstream (and its model) an alias may be sent to. Lower priority numbers are tried
    first; members of equal priority share the traffic by weight; the others are failovers."""

    mapping = models.ForeignKey(ModelMapping, on_delete=models.CASCADE, related_name="members")
    upstream = models.ForeignKey(
        Upstream,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        help_text="Empty means the default Gemini upstream (GEMINI_API_KEY).",
    )
    upstream_model = models.CharField(max_length=200, help_text="e.g. gemini-2.5-flash")
    priority = models.PositiveSmallIntegerField(default=0, help_text="Lower is tried first.")
    weight = models.PositiveSmallIntegerField(default=1, help_text="Share of traffic among equal priorities.")

    class Meta:
        ordering = ["priority", "-weight", "id"]
        constraints = [
            models.UniqueConstraint(fields=["mapping", "upstream"], name="pool_member_one_per_upstream"),
            models.UniqueConstraint(
                fields=["mapping"], condition=models.Q(upstream__isnull=True), name="pool_member_one_default"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.mapping.alias} → {self.upstream_model} on {self.upstream or 'default Gemini'}"


class UsageRecord(models.Model):
    class TokenSource(models.TextChoices):
        REPORTED = "reported"
        ESTIMATED = "estimated"

    created_at = models.DateTimeField(db_index=True)
    request_id = models.CharField(max_length=128)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    api_key = models.ForeignKey("accounts.ApiKey", null=True, on_delete=models.SET_NULL)
    key_prefix = models.CharField(max_length=16, blank=True)
    dialect = models.CharField(max_length=16)
    endpoint = models.CharField(max_length=64)
    requested_model = models.CharField(max_length=200, blank=True)
    upstream_name = models.CharField(max_length=64, blank=True)
    upstream_model = models.CharField(max_length=200, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    token_source = models.CharField(max_length=16, choices=TokenSource.choices, default=TokenSource.REPORTED)
    status = models.PositiveSmallIntegerField()
    error_code = models.CharField(max_length=64, blank=True)
    streamed = models.BooleanField(default=False)
    client_disconnected = models.BooleanField(default=False)
    latency_ms = models.PositiveIntegerField(default=0)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    detailed = models.BooleanField(default=False, help_text="A detail log was written for this request.")
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    attempts = models.PositiveSmallIntegerField(
        default=0,
        help_text="Upstream calls made for this request (more than one after failover; 0: none, "
        "or a row from before upstream pools).",
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "created_at"]),
            models.Index(fields=["requested_model", "created_at"]),
            models.Index(fields=["status", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.requested_model} {self.status}"


class ThoughtSignature(models.Model):
    """Gemini 3 thought signatures by tool call id (mapping.md §5.3), for clients that drop
    `extra_content` from tool calls they send back. Shared by every gateway process."""

    tool_call_id = models.CharField(max_length=128, unique=True)
    signature = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)


class ModelPrice(models.Model):
    """USD per million tokens for the models whose name starts with `model` (longest prefix wins).

    Built-in defaults for current Gemini models live in proxy_app/ledger/pricing.py (and are copied
    here by a migration so they can be edited); a row overrides the default of the same name.
    """

    model = models.CharField(
        max_length=200,
        unique=True,
        help_text="A model name or name prefix, e.g. gemini-2.5-flash (also prices gemini-2.5-flash-001); "
        "the longest matching prefix wins; * prices every model nothing else matches.",
    )
    input_per_million = models.DecimalField("input $/M tokens", max_digits=10, decimal_places=4)
    output_per_million = models.DecimalField(
        "output $/M tokens", max_digits=10, decimal_places=4, help_text="Includes reasoning (thinking) tokens."
    )
    cached_input_per_million = models.DecimalField(
        "cached input $/M tokens", max_digits=10, decimal_places=4, default=0
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]

    def __str__(self) -> str:
        return f"{self.model}: ${self.input_per_million}/${self.output_per_million} per M tokens"


class UsageDaily(models.Model):
    """Totals of one UTC day for one user and one requested model, rolled up from UsageRecord by
    `manage.py rollup_usage`, so raw rows can be pruned while reports keep their history.

    A day is rolled up only once it is complete, and re-rolling it replaces its rows, so running
    the command twice (or from two crons at once: it takes a lock) changes nothing.
    """

    day = models.DateField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    model = models.CharField(max_length=200, blank=True, help_text="The requested model (alias).")
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0, help_text="Requests answered with status 400 or above.")
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    total_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    rolled_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "daily usage"
        verbose_name_plural = "daily usage"
        ordering = ["-day", "user", "model"]
        constraints = [models.UniqueConstraint(fields=["day", "user", "model"], name="usage_daily_one_row")]
        indexes = [models.Index(fields=["user", "day"])]

    def __str__(self) -> str:
        return f"{self.day} {self.user_id} {self.model}"


class UsagePolicy(models.Model):
    """The one row of admin-editable usage housekeeping (a singleton: pk 1)."""

    retention_days = models.PositiveIntegerField(
        "keep raw usage rows (days)",
        null=True,
        blank=True,
        help_text="rollup_usage deletes raw usage rows older than this many days, after rolling them up "
        "into daily totals. Empty: the GATEWAY_USAGE_RETENTION_DAYS setting (default 90). 0: keep them forever.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "usage retention"
        verbose_name_plural = "usage retention"

    def __str__(self) -> str:
        return "usage retention"

    def save(self, *args, **kwargs):
        self.pk = 1  # a singleton
        super().save(*args, **kwargs)


def new_chat_id() -> str:
    import secrets

    return f"chat_{secrets.token_urlsafe(18)}"


class ChatSession(models.Model):
    """A stateful chat (the earlier session proxies' /start_chat, /v1/sessions, the WebSocket): the history lives here,
    so any gateway process can answer its next message, and a restart loses nothing.

    Written only by proxy_app/chat/sessions.py. `history` is a list of {"role": "user"|"model", "text"}
    (plus "partial": true on an answer cut short by cancel or disconnect), capped at
    GATEWAY_SESSION_MAX_TURNS entries. One message at a time: `locked_until`/`lock_token` are a
    lease taken with one conditional UPDATE while an answer is produced (no transaction stays open
    during the upstream call); a crashed process's lease simply expires.
    """

    public_id = models.CharField(max_length=40, unique=True, default=new_chat_id, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_sessions")
    api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="chat_sessions"
    )
    model = models.CharField(max_length=200, help_text="The model name as the client gave it (alias).")
    generation_config = models.JSONField(default=dict, blank=True)
    system_instruction = models.TextField(blank=True)
    history = models.JSONField(default=list, blank=True)
    turns_dropped = models.PositiveIntegerField(default=0, help_text="Oldest entries removed by the history cap.")
    locked_until = models.DateTimeField(null=True, blank=True, editable=False)
    lock_token = models.CharField(max_length=32, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "chat session"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "ended_at", "created_at"])]

    def __str__(self) -> str:
        return self.public_id


class StoredResponse(models.Model):
    """A finished /v1/responses answer kept for `previous_response_id`, GET and DELETE (responses.md §6).

    Written only by proxy_app/dialects/responses/store.py. `response` is the Response object as sent;
    `input_items` the expanded input the upstream saw (the previous response's items, then this
    request's input), each with an `id`. Owner-scoped: another user's id reads as unknown.
    """

    response_id = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="stored_responses")
    api_key = models.ForeignKey("accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model = models.CharField(max_length=200)
    response = models.JSONField(default=dict)
    input_items = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "stored response"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.response_id


class LogSettings(models.Model):
    """The gateway-wide logging switches, edited in the admin (one row)."""

    detailed_logging = models.BooleanField(
        default=False,
        help_text="Write the four stages of every request (client request, upstream request, upstream "
        "response, client response) to the detail log, secrets and inline media redacted.",
    )

    class Meta:
        verbose_name = verbose_name_plural = "log settings"

    def __str__(self) -> str:
        return "Log settings"
