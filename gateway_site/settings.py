"""The gateway's only configuration: every knob is an environment variable (README table).

Bad values fail at import time with a message naming the variable, so a misconfigured
process never starts serving.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("GATEWAY_VAR_DIR", BASE_DIR / "var"))


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    raw = env_str(name)
    if not raw:
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false)")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = env_str(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be >= {minimum}")
    return value


def env_float(name: str, default: float) -> float:
    raw = env_str(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise ImproperlyConfigured(f"{name}={value} must be > 0")
    return value


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_url(name: str, default: str, schemes: tuple[str, ...]) -> str:
    raw = env_str(name, default)
    parsed = urlparse(raw)
    if parsed.scheme not in schemes or not parsed.netloc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a valid {'/'.join(schemes)} URL")
    return raw.rstrip("/")


def env_networks(name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [ipaddress.ip_network(item, strict=False) for item in env_list(name)]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


def _secret_key() -> str:
    """DJANGO_SECRET_KEY, else one generated once and kept in var/ (API key hashes depend on it)."""
    key = env_str("DJANGO_SECRET_KEY")
    if key:
        if len(key) < 32:
            raise ImproperlyConfigured("DJANGO_SECRET_KEY must be at least 32 characters")
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# Served over HTTPS (usually a TLS-terminating proxy that sets X-Forwarded-Proto): the admin's and
# member page's session and CSRF cookies are then Secure, and Django trusts the proxy's scheme.
HTTPS = env_bool("GATEWAY_HTTPS", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SECURE_HSTS_SECONDS = env_int("GATEWAY_HSTS_SECONDS", 0, minimum=0)  # e.g. 31536000 once HTTPS is for good
SESSION_COOKIE_HTTPONLY = True
# Reverse proxies whose X-Forwarded-For is believed (IPs/CIDRs; empty: none). The real client
# address (gateway_site/client_ip.py) feeds the access log, /metrics, login lockouts and key IP allow-lists.
TRUSTED_PROXIES = env_networks("GATEWAY_TRUSTED_PROXIES")
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "channels",
    "axes",
    "auditlog",
    "accounts",
    "proxy_app",
]

# The audit log (django-auditlog): every change of these rows, by the admin, the member page or a
# command, with who, when and each field's before → after. Secrets never reach it: a key's hash and
# an upstream's encrypted key are recorded only as "(set)" / "(none)" (accounts.audit.hide_secret),
# so a replaced upstream key shows as a change without either value; `last_used_at` (bumped by the
# usage writer) and `updated_at` are left out.
_SECRET = {"mask_callable": "accounts.audit.hide_secret"}
AUDITLOG_INCLUDE_TRACKING_MODELS = (
    {"model": "accounts.apikey", "exclude_fields": ["last_used_at"], "mask_fields": ["secret_hash"], **_SECRET},
    {"model": "accounts.limits", "exclude_fields": ["updated_at"]},
    {"model": "proxy_app.upstream", "mask_fields": ["api_key_encrypted"], **_SECRET},
    "proxy_app.modelmapping",
    "proxy_app.poolmember",
    {"model": "proxy_app.modelprice", "exclude_fields": ["updated_at"]},
    "proxy_app.logsettings",
    {"model": "proxy_app.usagepolicy", "exclude_fields": ["updated_at"]},
)
AUDITLOG_STORE_JSON_CHANGES = True  # before/after keep their types (None, numbers) in `changes`
AUDITLOG_USE_FK_STRING_REPRESENTATION = True  # a mapping's upstream by name, not by id

# Proxy routes skip the admin-only middlewares entirely (no thread hops on the hot path,
# libraries.md finding 2); see gateway_site/middleware.py.
MIDDLEWARE = [
    "gateway_site.middleware.admin_only_security",
    "gateway_site.middleware.admin_only_sessions",
    "gateway_site.middleware.admin_only_common",
    "gateway_site.middleware.admin_only_csrf",
    "gateway_site.middleware.admin_only_auth",
    "gateway_site.middleware.admin_only_messages",
    "gateway_site.middleware.audit_actor",  # who made a change, for the audit log
    "gateway_site.middleware.admin_only_clickjacking",
    "gateway_site.middleware.admin_only_axes",  # last, as django-axes asks
]

# Password logins (admin, member page) lock out after repeated failures (django-axes): a username
# from one IP address gets GATEWAY_LOGIN_FAILURE_LIMIT tries, then 429 for
# GATEWAY_LOGIN_LOCKOUT_MINUTES. API keys are not passwords and are not counted here.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("GATEWAY_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env_float("GATEWAY_LOGIN_LOCKOUT_MINUTES", 15.0) / 60  # hours, as axes reads a number
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AXES_CLIENT_IP_CALLABLE = "gateway_site.client_ip.request_ip"  # the real client, never a forged header

# Single sign-on (accounts/sso.py, mozilla-django-oidc): OpenID Connect login beside the password one,
# on when GATEWAY_OIDC_ISSUER is set. Endpoints not given here are read from the issuer's discovery
# document at the first login. The groups claim decides admin (staff group) or member at each login.
OIDC_ISSUER = env_str("GATEWAY_OIDC_ISSUER")
OIDC_ENABLED = bool(OIDC_ISSUER)
OIDC_STAFF_GROUP = env_str("GATEWAY_OIDC_STAFF_GROUP", "gateway-admins")
OIDC_GROUPS_CLAIM = env_str("GATEWAY_OIDC_GROUPS_CLAIM", "groups")
if OIDC_ENABLED:
    try:
        import mozilla_django_oidc  # noqa: F401
    except ImportError:
        raise ImproperlyConfigured(
            "GATEWAY_OIDC_ISSUER is set but the sso extra is not installed: pip install -e '.[sso]'"
        ) from None
    OIDC_RP_CLIENT_ID = env_str("GATEWAY_OIDC_CLIENT_ID")
    OIDC_RP_CLIENT_SECRET = env_str("GATEWAY_OIDC_CLIENT_SECRET")
    if not OIDC_RP_CLIENT_ID or not OIDC_RP_CLIENT_SECRET:
        raise ImproperlyConfigured("GATEWAY_OIDC_ISSUER needs GATEWAY_OIDC_CLIENT_ID and GATEWAY_OIDC_CLIENT_SECRET")
    OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("GATEWAY_OIDC_AUTHORIZATION_ENDPOINT")
    OIDC_OP_TOKEN_ENDPOINT = env_str("GATEWAY_OIDC_TOKEN_ENDPOINT")
    OIDC_OP_USER_ENDPOINT = env_str("GATEWAY_OIDC_USERINFO_ENDPOINT")
    OIDC_OP_JWKS_ENDPOINT = env_str("GATEWAY_OIDC_JWKS_ENDPOINT")
    OIDC_RP_SIGN_ALGO = env_str("GATEWAY_OIDC_SIGN_ALGO", "RS256")
    OIDC_RP_SCOPES = env_str("GATEWAY_OIDC_SCOPES", "openid email profile groups")
    OIDC_USE_PKCE = True
    OIDC_AUTHENTICATE_CLASS = "accounts.sso.Authenticate"
    LOGIN_REDIRECT_URL_FAILURE = "/accounts/login/?sso=failed"
    INSTALLED_APPS.insert(INSTALLED_APPS.index("accounts"), "mozilla_django_oidc")
    AUTHENTICATION_BACKENDS.append("accounts.sso.Backend")

# The admin's checks look for the session/auth/messages middlewares by name; they are there,
# wrapped by admin_only_* above (as is axes' middleware, which axes.W002 looks for).
SILENCED_SYSTEM_CHECKS = ["admin.E408", "admin.E409", "admin.E410", "axes.W002"]

ROOT_URLCONF = "gateway_site.urls"
ASGI_APPLICATION = "gateway_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def _database() -> dict:
    default = f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
    url = env_str("DATABASE_URL", default)
    try:
        db = dj_database_url.parse(url, conn_max_age=0)
    except Exception as exc:  # dj-database-url raises several types for bad URLs
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
    if db["ENGINE"] == "django.db.backends.sqlite3":
        if db["NAME"] != ":memory:":
            Path(db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        # Tests use a file too (an in-memory shared-cache DB ignores the busy timeout across
        # threads), unique per process so no stale -wal file of an earlier run can meet it.
        db["TEST"] = {"NAME": str(Path(tempfile.gettempdir()) / f"gateway-test-{os.getpid()}.sqlite3")}
        db["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    elif db["ENGINE"] == "django.db.backends.postgresql":
        # A short pool timeout: when the database is down, /health must say so quickly (503).
        db["OPTIONS"] = {"pool": {"min_size": 1, "max_size": 8, "timeout": 5}, "connect_timeout": 3}
    return db


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL and urlparse(REDIS_URL).scheme not in {"redis", "rediss", "unix"}:
    raise ImproperlyConfigured(f"REDIS_URL={REDIS_URL!r} must start with redis://, rediss:// or unix://")

CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

# --- Gateway ---------------------------------------------------------------------------
GEMINI_API_KEY = env_str("GEMINI_API_KEY")
GEMINI_BASE_URL = env_url("GEMINI_BASE_URL", "https://generativelanguage.googleapis.com", ("http", "https"))

MAX_BODY_BYTES = env_int("GATEWAY_MAX_BODY_BYTES", 20 * 1024 * 1024, minimum=1024)
MAX_HEADER_BYTES = env_int("GATEWAY_MAX_HEADER_BYTES", 64 * 1024, minimum=1024)
# Django's own cap must not fire first: the proxy views enforce MAX_BODY_BYTES themselves (413).
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_BODY_BYTES + 1
# A client that stops sending its body for this long gets 408 (a stalled body holds nothing longer).
BODY_READ_TIMEOUT = env_float("GATEWAY_BODY_READ_TIMEOUT", 30.0)

UPSTREAM_CONNECT_TIMEOUT = env_float("GATEWAY_UPSTREAM_CONNECT_TIMEOUT", 10.0)
UPSTREAM_READ_TIMEOUT = env_float("GATEWAY_UPSTREAM_READ_TIMEOUT", 300.0)
# From sending a request until the upstream's answer starts (status line and headers): an upstream
# that accepts and then says nothing is given up on after this, not after the read timeout.
UPSTREAM_FIRST_BYTE_TIMEOUT = env_float("GATEWAY_UPSTREAM_FIRST_BYTE_TIMEOUT", 120.0)
# Upstream calls open at once per process (streams included); past it a call gets 503 at once.
UPSTREAM_MAX_CONNECTIONS = env_int("GATEWAY_UPSTREAM_MAX_CONNECTIONS", 4000, minimum=1)
UPSTREAM_TRANSPORT = env_str("GATEWAY_UPSTREAM_TRANSPORT", "aiohttp")
if UPSTREAM_TRANSPORT not in ("aiohttp", "httpx"):
    raise ImproperlyConfigured(f"GATEWAY_UPSTREAM_TRANSPORT must be 'aiohttp' or 'httpx', not {UPSTREAM_TRANSPORT!r}")

# Upstream pools (proxy_app/call/failover.py): no new attempt starts this long after the request did;
# a failed member cools down for its Retry-After, else BASE * 2^(failures in a row - 1) up to MAX seconds.
POOL_FAILOVER_SECONDS = env_float("GATEWAY_POOL_FAILOVER_SECONDS", 60.0)
POOL_COOLDOWN_BASE_SECONDS = env_float("GATEWAY_POOL_COOLDOWN_BASE_SECONDS", 1.0)
POOL_COOLDOWN_MAX_SECONDS = env_float("GATEWAY_POOL_COOLDOWN_MAX_SECONDS", 300.0)
# How long the gateway remembers which upstream made a Gemini thought signature (conversation affinity).
POOL_AFFINITY_SECONDS = env_int("GATEWAY_POOL_AFFINITY_SECONDS", 86400, minimum=60)

KEY_CACHE_SECONDS = env_float("GATEWAY_KEY_CACHE_SECONDS", 1.0)
MAPPING_CACHE_SECONDS = env_float("GATEWAY_MAPPING_CACHE_SECONDS", 2.0)
MODEL_LIST_CACHE_SECONDS = env_float("GATEWAY_MODEL_LIST_CACHE_SECONDS", 300.0)

USAGE_FLUSH_SECONDS = env_float("GATEWAY_USAGE_FLUSH_SECONDS", 0.25)
USAGE_BATCH_SIZE = env_int("GATEWAY_USAGE_BATCH_SIZE", 200, minimum=1)

IMAGE_FETCH_MAX_BYTES = env_int("GATEWAY_IMAGE_FETCH_MAX_BYTES", 10 * 1024 * 1024, minimum=1)
IMAGE_FETCH_TIMEOUT = env_float("GATEWAY_IMAGE_FETCH_TIMEOUT", 10.0)
# Networks image URLs may resolve to despite being private/loopback/link-local (SSRF guard).
IMAGE_FETCH_ALLOWED_NETWORKS = env_networks("GATEWAY_IMAGE_FETCH_ALLOWED_NETWORKS")

# Detailed request logs (proxy_app/ops/detail_log.py): off unless switched on in the admin, globally
# or per upstream, or for everything with GATEWAY_DETAIL_LOG_ALL.
DETAIL_LOG_ALL = env_bool("GATEWAY_DETAIL_LOG_ALL", False)
DETAIL_LOG_DIR = Path(env_str("GATEWAY_DETAIL_LOG_DIR") or VAR_DIR / "detail-logs")
DETAIL_LOG_MAX_BYTES = env_int("GATEWAY_DETAIL_LOG_MAX_BYTES", 200 * 1024 * 1024, minimum=1024)

# Quotas and rate limits (accounts.Limits, proxy_app.ledger.quota): counters in process memory, or in
# Redis when REDIS_URL is set. If Redis cannot be reached: "closed" refuses with 503 (default),
# "open" admits without counting.
QUOTA_REDIS_FAILURE = env_str("GATEWAY_QUOTA_REDIS_FAILURE", "closed")
if QUOTA_REDIS_FAILURE not in {"closed", "open"}:
    raise ImproperlyConfigured(f"GATEWAY_QUOTA_REDIS_FAILURE={QUOTA_REDIS_FAILURE!r} must be 'closed' or 'open'")
QUOTA_DEFAULT_MAX_TOKENS = env_int("GATEWAY_QUOTA_DEFAULT_MAX_TOKENS", 4096, minimum=1)
QUOTA_LEASE_SECONDS = env_int("GATEWAY_QUOTA_LEASE_SECONDS", 900, minimum=10)
QUOTA_REDIS_TIMEOUT = env_float("GATEWAY_QUOTA_REDIS_TIMEOUT", 0.5)
QUOTA_REDIS_MAX_CONNECTIONS = env_int("GATEWAY_QUOTA_REDIS_MAX_CONNECTIONS", 50, minimum=1)
QUOTA_REDIS_PREFIX = env_str("GATEWAY_QUOTA_REDIS_PREFIX", "gwq")
LIMITS_CACHE_SECONDS = env_float("GATEWAY_LIMITS_CACHE_SECONDS", 2.0)
PRICE_CACHE_SECONDS = env_float("GATEWAY_PRICE_CACHE_SECONDS", 30.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("GATEWAY_LOG_LEVEL", "INFO").upper()},
    # One line per upstream call at INFO is noise (daphne logs each request already) and costs CPU.
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
}

# --- Observability: JSON access log and /metrics (proxy_app/ops/observability.py) -----------------
# One JSON line per proxied request on stdout and/or a rotating file. RotatingFileHandler is not
# safe for several processes sharing one file: put `{pid}` in the name to give each its own.
ACCESS_LOG_STDOUT = env_bool("GATEWAY_ACCESS_LOG_STDOUT", True)
ACCESS_LOG_FILE = env_str("GATEWAY_ACCESS_LOG_FILE").replace("{pid}", str(os.getpid()))
ACCESS_LOG_MAX_BYTES = env_int("GATEWAY_ACCESS_LOG_MAX_BYTES", 100 * 1024 * 1024, minimum=1024)
ACCESS_LOG_BACKUPS = env_int("GATEWAY_ACCESS_LOG_BACKUPS", 5, minimum=0)
# Peers allowed to read /metrics (the address daphne sees: a reverse proxy counts as the peer).
METRICS_ALLOWED_NETWORKS = env_networks("GATEWAY_METRICS_ALLOWED_IPS") or [
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
]
# Read by prometheus-client itself (multiprocess mode); checked here so a typo fails at start.
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR")
if PROMETHEUS_MULTIPROC_DIR and not Path(PROMETHEUS_MULTIPROC_DIR).is_dir():
    raise ImproperlyConfigured(f"PROMETHEUS_MULTIPROC_DIR={PROMETHEUS_MULTIPROC_DIR!r} is not a directory")

LOGGING["formatters"]["json_line"] = {"()": "proxy_app.ops.observability.JsonLineFormatter"}
_access_handlers = []
if ACCESS_LOG_STDOUT:
    LOGGING["handlers"]["access_stdout"] = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stdout",
        "formatter": "json_line",
    }
    _access_handlers.append("access_stdout")
if ACCESS_LOG_FILE:
    Path(ACCESS_LOG_FILE).parent.mkdir(parents=True, exist_ok=True)
    LOGGING["handlers"]["access_file"] = {
        "class": "logging.handlers.RotatingFileHandler",
        "filename": ACCESS_LOG_FILE,
        "formatter": "json_line",
        "maxBytes": ACCESS_LOG_MAX_BYTES,
        "backupCount": ACCESS_LOG_BACKUPS,
        "encoding": "utf-8",
        "delay": True,
    }
    _access_handlers.append("access_file")
LOGGING["loggers"]["gateway.access"] = {"handlers": _access_handlers, "level": "INFO", "propagate": False}

# --- Tracing (proxy_app/ops/tracing.py): OpenTelemetry, on only when an OTLP endpoint is given. The
# SDK reads the other OTEL_* variables itself (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, OTEL_SERVICE_NAME...).
OTEL_ENABLED = bool(env_str("OTEL_EXPORTER_OTLP_ENDPOINT")) and not env_bool("OTEL_SDK_DISABLED", False)
if OTEL_ENABLED:
    try:
        import opentelemetry.exporter.otlp.proto.http  # noqa: F401
        import opentelemetry.sdk  # noqa: F401
    except ImportError:
        raise ImproperlyConfigured(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed: pip install -e '.[otel]'"
        ) from None

# --- Chat sessions (the earlier session proxies' /start_chat, /v1/sessions, ws/chat/: proxy_app/chat/sessions.py)
# History entries (one user message or one answer each) kept per session; older ones are dropped
# first, the system instruction always stays.
SESSION_MAX_TURNS = env_int("GATEWAY_SESSION_MAX_TURNS", 50, minimum=2)
# How long one message may hold its session (one answer at a time) before another process may take
# the session over, e.g. after a crash mid-answer.
SESSION_LOCK_SECONDS = env_int("GATEWAY_SESSION_LOCK_SECONDS", 900, minimum=10)

# --- Admin dashboard, member page, usage roll-up (proxy_app/ledger/reports.py, proxy_app/pages/member.py,
# proxy_app/ledger/rollup.py)
# Members (any active Django account) see their keys and usage at /account/; when this is true
# they may also create (up to MEMBERS_MAX_KEYS active) and revoke their own keys there.
MEMBERS_MANAGE_KEYS = env_bool("GATEWAY_MEMBERS_MANAGE_KEYS", True)
MEMBERS_MAX_KEYS = env_int("GATEWAY_MEMBERS_MAX_KEYS", 10, minimum=1)
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/account/"
# `rollup_usage` deletes raw usage rows older than this many days once rolled up (0: keep
# forever); the admin's *Usage retention* value wins when set.
USAGE_RETENTION_DAYS = env_int("GATEWAY_USAGE_RETENTION_DAYS", 90, minimum=0)
# Stored /v1/responses answers (for previous_response_id) older than this many days read as unknown,
# and `prune_responses` deletes them (0: keep forever). OpenAI keeps them 30 days.
RESPONSES_RETENTION_DAYS = env_int("GATEWAY_RESPONSES_RETENTION_DAYS", 30, minimum=0)
