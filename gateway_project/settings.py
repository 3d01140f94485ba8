"""Gateway settings.

Every value that comes from the environment is read here and nowhere else (the development
environment file, `.env`, included: env_file_load below).
The embedded default (`make run`: DEBUG=1 and generated secrets from .env) is SQLite under var/,
in-process cache and counters, and Celery tasks run eagerly.
"""

import json
import os
from pathlib import Path

import dj_database_url
import dotenv
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_file_load() -> Path | None:
    """Fill in, from the development environment file, what the real environment leaves unset.

    The file is `.env` at the repository root (`make run` writes one with fresh secrets and
    DEBUG=1), read when it exists; GATEWAY_ENV_FILE names another (relative to the repository
    root; it must exist) or /dev/null for none. A variable already in the environment is never
    overridden, so an operator's exports always win. Production has no such file.
    """
    named = os.environ.get("GATEWAY_ENV_FILE")
    if named:
        path = Path(named) if os.path.isabs(named) else BASE_DIR / named
        if not path.exists():
            raise ImproperlyConfigured(f"GATEWAY_ENV_FILE {named}: no such file.")
    else:
        path = BASE_DIR / ".env"
        if not path.is_file():
            return None
    dotenv.load_dotenv(path, override=False)
    return path


GATEWAY_ENV_FILE = env_file_load()
VAR_DIR = Path(os.environ.get("GATEWAY_VAR_DIR", BASE_DIR / "var"))


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return float(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from exc


def env_int(name: str, default: int) -> int:
    return int(env_float(name, default))


DEBUG = env_bool("DEBUG", False)

_DEV_SECRET_KEY = "dev-only-insecure-secret-key-do-not-use-in-production"
SECRET_KEY = env_str("SECRET_KEY")
if SECRET_KEY is None:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY for production, or DEBUG=1 for a development run."
        )
    SECRET_KEY = _DEV_SECRET_KEY

# Credentials at rest are encrypted with this (Fernet; a passphrase is stretched into a key).
# Several comma-separated values allow rotation: the first encrypts, all decrypt.
GATEWAY_ENCRYPTION_KEY = env_str("GATEWAY_ENCRYPTION_KEY")
if GATEWAY_ENCRYPTION_KEY is None:
    if not DEBUG:
        raise ImproperlyConfigured(
            "GATEWAY_ENCRYPTION_KEY is not set: provider credentials are encrypted at rest with it."
        )
    GATEWAY_ENCRYPTION_KEY = SECRET_KEY

GATEWAY_MASTER_KEY = env_str("GATEWAY_MASTER_KEY")
GATEWAY_CONFIG = env_str("GATEWAY_CONFIG")
GATEWAY_ADMIN_USER = env_str("GATEWAY_ADMIN_USER")
GATEWAY_ADMIN_PASSWORD = env_str("GATEWAY_ADMIN_PASSWORD")

# The host names the control plane answers to (the admin, the management API). Required outside
# DEBUG: "*" would let any Host header through (DNS rebinding, poisoned password-reset links).
_allowed_hosts = env_str("ALLOWED_HOSTS")
if _allowed_hosts is None and not DEBUG:
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS is not set: name the host names the gateway is reached by (comma-separated), "
        "or DEBUG=1 for a development run."
    )
ALLOWED_HOSTS = [h.strip() for h in (_allowed_hosts or "*").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in env_str("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

# Behind a TLS-terminating proxy: the header it sets, e.g. "X-Forwarded-Proto" (its value https
# then marks a request secure). Unset: requests are secure only when served over TLS here.
_proxy_ssl_header = env_str("SECURE_PROXY_SSL_HEADER")
if _proxy_ssl_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https")
# Outside DEBUG the session and CSRF cookies are sent over HTTPS only, and secure answers carry
# HSTS (Django's SecurityMiddleware adds it to requests that are secure only).
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "apps.management.apps.GatewayAdminConfig",  # django.contrib.admin, with the gateway's dashboard
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "ninja",
    "apps.core",
    "apps.teams",
    "apps.customers",
    "apps.keys",
    "apps.providers",
    "apps.routing",
    "apps.spend",
    "apps.billing",
]

# The control plane only (/admin, management API). The /v1 data plane never runs
# middleware: gateway_project.asgi sends it down a lean path.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "apps.core.audit.AuditContextMiddleware",  # the admin's changes are its user's (the audit log)
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "gateway_project.urls"
DATA_PLANE_URLCONF = "apps.routing.urls"

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
                "apps.management.admin_sso.sso_login_context",  # the admin login page's SSO button
            ],
        },
    },
]

ASGI_APPLICATION = "gateway_project.asgi.application"

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'gateway.sqlite3'}")
# A read replica of DATABASE_URL (PostgreSQL streaming replication): the spend reports and log lists
# and the rollup rebuild read there (apps.core.db_router); everything else uses the primary.
DATABASE_REPLICA_URL = env_str("DATABASE_REPLICA_URL")
# The database URLs name PgBouncer in transaction mode: no server-side cursors (a cursor would outlive
# its transaction's server connection), and PgBouncer pools in place of Django's pool.
DATABASE_PGBOUNCER = env_bool("DATABASE_PGBOUNCER", False)


def _database(url: str) -> dict:
    database = dj_database_url.parse(url, conn_max_age=0)
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database["OPTIONS"] = {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
        # A file, not :memory:, so the server threads in tests see the same database.
        database["TEST"] = {"NAME": str(VAR_DIR / "test-gateway.sqlite3")}
    elif database["ENGINE"] == "django.db.backends.postgresql":
        if DATABASE_PGBOUNCER:
            database["DISABLE_SERVER_SIDE_CURSORS"] = True  # .iterator() fetches in chunks client-side
        else:
            # Django's native psycopg pool; CONN_MAX_AGE stays 0 as the pool owns reuse.
            database.setdefault("OPTIONS", {})["pool"] = {
                "min_size": 1,
                "max_size": env_int("DATABASE_POOL_MAX_SIZE", 10),
            }
    return database


DATABASES = {"default": _database(DATABASE_URL)}
if DATABASE_PGBOUNCER and DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_PGBOUNCER is set but DATABASE_URL is not a PostgreSQL URL.")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = _database(DATABASE_REPLICA_URL)
    if DATABASES["replica"]["ENGINE"] != DATABASES["default"]["ENGINE"]:
        raise ImproperlyConfigured("DATABASE_REPLICA_URL must name a database of the same kind as DATABASE_URL.")
    # Tests use no second server: the replica alias reads the test database through its own connection.
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["apps.core.db_router.PrimaryReplicaRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

def env_list(name: str) -> list[str]:
    return [item.strip() for item in (os.environ.get(name) or "").split(",") if item.strip()]


# Redis, in one of three shapes (apps.core.redis): one server (REDIS_URL); a Redis Cluster
# (REDIS_CLUSTER_NODES=host:port,... or REDIS_URL with REDIS_CLUSTER=1; every Lua script's keys share
# a hash tag); or a master found through Sentinel (REDIS_SENTINELS=host:port,... and
# REDIS_SENTINEL_MASTER). With none of them, every process keeps its own state.
REDIS_URL = env_str("REDIS_URL")
REDIS_CLUSTER_NODES = env_list("REDIS_CLUSTER_NODES")
REDIS_SENTINELS = env_list("REDIS_SENTINELS")
REDIS_SENTINEL_MASTER = env_str("REDIS_SENTINEL_MASTER", "mymaster")
REDIS_SENTINEL_PASSWORD = env_str("REDIS_SENTINEL_PASSWORD")
if REDIS_SENTINELS:
    REDIS_MODE = "sentinel"
elif REDIS_CLUSTER_NODES or (REDIS_URL and env_bool("REDIS_CLUSTER")):
    REDIS_MODE = "cluster"
else:
    REDIS_MODE = "standalone" if REDIS_URL else ""
# A command that loses its connection is retried this many times, backing off exponentially
# up to REDIS_RETRY_BACKOFF_MAX seconds (a Sentinel failover or a cluster slot move takes a few).
REDIS_RETRIES = env_int("REDIS_RETRIES", 3)
REDIS_RETRY_BACKOFF_MAX = env_float("REDIS_RETRY_BACKOFF_MAX", 1.0)
REDIS_SOCKET_TIMEOUT = env_float("REDIS_SOCKET_TIMEOUT", 5.0)
# When Redis cannot be reached even after the retries: refuse with a 503 (false, the default:
# no request escapes its rate limit or budget) or serve without counting (true).
GATEWAY_LIMITS_FAIL_OPEN = env_bool("GATEWAY_LIMITS_FAIL_OPEN", False)
# Every Redis key and channel of this deployment starts with this, so several
# gateways (or test runs) can share one server.
GATEWAY_REDIS_PREFIX = env_str("GATEWAY_REDIS_PREFIX", "gw:")

if REDIS_MODE == "standalone":
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": GATEWAY_REDIS_PREFIX + "cache",
        }
    }
elif REDIS_MODE:
    # django-redis speaks to neither a cluster nor Sentinel the way the data plane does: this
    # backend goes through the same client (apps.core.redis.sync_redis).
    CACHES = {
        "default": {
            "BACKEND": "apps.core.cache_backend.GatewayRedisCache",
            "KEY_PREFIX": GATEWAY_REDIS_PREFIX + "cache",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL is None
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
# Daily spend rollups (reports read them): today and yesterday are rebuilt this often (seconds).
GATEWAY_ROLLUP_INTERVAL = env_float("GATEWAY_ROLLUP_INTERVAL", 300.0)
# Budget spend counters are checked against the rollups this often; a difference above the
# tolerance (USD) is recorded as drift (admin: Spend counter drifts) and logged.
GATEWAY_RECONCILE_INTERVAL = env_float("GATEWAY_RECONCILE_INTERVAL", 900.0)
GATEWAY_RECONCILE_TOLERANCE = env_str("GATEWAY_RECONCILE_TOLERANCE", "0.000001")
# Budget alerts (a soft budget crossed, a budget exhausted): posted to a Slack incoming webhook
# (LiteLLM's SLACK_WEBHOOK_URL) and/or as JSON to a webhook of yours; logged either way.
SLACK_WEBHOOK_URL = env_str("SLACK_WEBHOOK_URL", "")
GATEWAY_ALERT_WEBHOOK_URL = env_str("GATEWAY_ALERT_WEBHOOK_URL", "")
# GET /metrics (Prometheus) asks scrapers for this bearer token when set; open otherwise, as LiteLLM's.
GATEWAY_METRICS_TOKEN = env_str("GATEWAY_METRICS_TOKEN", "")
CELERY_BEAT_SCHEDULE = {
    # New budget periods in the database (enforcement itself derives periods without it).
    "budget-periods-roll": {"task": "spend.budget_periods_roll", "schedule": 60.0, "options": {"expires": 55}},
    "spend-daily-rollup": {"task": "spend.daily_rollup_recent", "schedule": GATEWAY_ROLLUP_INTERVAL,
                           "options": {"expires": max(GATEWAY_ROLLUP_INTERVAL - 5.0, 5.0)}},
    "spend-counters-reconcile": {"task": "spend.counters_reconcile", "schedule": GATEWAY_RECONCILE_INTERVAL,
                                 "options": {"expires": max(GATEWAY_RECONCILE_INTERVAL - 5.0, 5.0)}},
    "responses-purge": {"task": "routing.stored_responses_purge", "schedule": 3600.0, "options": {"expires": 3000}},
    "month-partitions": {"task": "core.month_partitions_ensure", "schedule": 6 * 3600.0,
                         "options": {"expires": 3000}},
}
# Each spend record is journaled in Redis before its answer is released, until its batch is written
# (apps.spend.journal): a killed process loses none. Records older than RECOVER_AFTER seconds there
# are a dead process's, written by the beat task.
GATEWAY_SPEND_JOURNAL = env_bool("GATEWAY_SPEND_JOURNAL", True)
GATEWAY_SPEND_JOURNAL_RECOVER_AFTER = env_float("GATEWAY_SPEND_JOURNAL_RECOVER_AFTER", 30.0)
CELERY_BEAT_SCHEDULE["spend-journal-recover"] = {"task": "spend.journal_recover", "schedule": 15.0,
                                                 "options": {"expires": 14}}
# On PostgreSQL spend logs, billing events and audit rows live in month tables (apps.core.partitions):
# this many months ahead of the current one are made by the beat task (a row beyond them waits in the
# default partition).
GATEWAY_PARTITIONS_AHEAD = env_int("GATEWAY_PARTITIONS_AHEAD", 2)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # also makes var/ for the SQLite default
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = DEBUG

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}

# Slow or idle clients (apps.core.server): headers must arrive within GATEWAY_HEADER_TIMEOUT seconds,
# a body may pause at most GATEWAY_BODY_TIMEOUT between reads, a kept-alive connection waits
# GATEWAY_KEEPALIVE_TIMEOUT for its next request, and past GATEWAY_MAX_IDLE_CONNECTIONS connections
# not being served (per process) the longest idle is closed.
GATEWAY_HEADER_TIMEOUT = env_float("GATEWAY_HEADER_TIMEOUT", 10.0)
GATEWAY_BODY_TIMEOUT = env_float("GATEWAY_BODY_TIMEOUT", 30.0)
GATEWAY_KEEPALIVE_TIMEOUT = env_float("GATEWAY_KEEPALIVE_TIMEOUT", 5.0)
GATEWAY_MAX_IDLE_CONNECTIONS = env_int("GATEWAY_MAX_IDLE_CONNECTIONS", 1000)
# On SIGTERM `manage.py serve` stops accepting connections and lets the requests in flight (streams
# included) run for at most this many seconds; what still runs then is cut. A supervisor's kill
# deadline must be longer (Kubernetes: terminationGracePeriodSeconds, deploy/kubernetes/).
GATEWAY_SHUTDOWN_DRAIN_SECONDS = env_float("GATEWAY_SHUTDOWN_DRAIN_SECONDS", 30.0)
# Largest request body accepted by the control plane (admin, management API, webhooks).
GATEWAY_MAX_CONTROL_BODY_BYTES = env_int("GATEWAY_MAX_CONTROL_BODY_BYTES", 2_621_440)
DATA_UPLOAD_MAX_MEMORY_SIZE = GATEWAY_MAX_CONTROL_BODY_BYTES
# JSON bodies of the management API nested deeper than this are refused before they are stored.
GATEWAY_MAX_JSON_DEPTH = env_int("GATEWAY_MAX_JSON_DEPTH", 32)

# --- the data plane -------------------------------------------------------
# Largest request body accepted on /v1 (image payloads are big).
GATEWAY_MAX_BODY_BYTES = env_int("GATEWAY_MAX_BODY_BYTES", 32 * 1024 * 1024)
# Key contexts and deployments are cached in-process; invalidations come over
# Redis pub/sub. The TTL is only a backstop for a missed message.
GATEWAY_KEY_CACHE_TTL = env_float("GATEWAY_KEY_CACHE_TTL", 60.0)
GATEWAY_NEGATIVE_KEY_CACHE_TTL = env_float("GATEWAY_NEGATIVE_KEY_CACHE_TTL", 5.0)
# How long a credential minted by the admin's playground (/admin/playground/) works, in seconds.
GATEWAY_PLAYGROUND_CREDENTIAL_TTL = env_float("GATEWAY_PLAYGROUND_CREDENTIAL_TTL", 900.0)
# Spend records are written in batches: every interval, or sooner when a batch fills.
GATEWAY_SPEND_FLUSH_INTERVAL = env_float("GATEWAY_SPEND_FLUSH_INTERVAL", 1.0)
GATEWAY_SPEND_BATCH_SIZE = env_int("GATEWAY_SPEND_BATCH_SIZE", 500)
# Backpressure: past this many records waiting for the writer, an answer waits (at most
# GATEWAY_SPEND_BACKPRESSURE_WAIT seconds) until the writer has made room, so a writer slower than
# the requests (SQLite at ~1,000 req/s) paces them instead of growing the process without bound.
GATEWAY_SPEND_BUFFER_MAX = env_int("GATEWAY_SPEND_BUFFER_MAX", 20_000)
GATEWAY_SPEND_BACKPRESSURE_WAIT = env_float("GATEWAY_SPEND_BACKPRESSURE_WAIT", 1.0)
# A server process's young-generation collection threshold (Python's default: 700). The count is
# of container objects made and not yet freed: at 700, the objects of the requests in flight set
# off collection after collection at concurrency 32, each finding next to nothing to free
# (3-4% of the process's CPU, perf). Cyclic garbage still triggers one once it reaches this many
# objects (a few MB). 0: the interpreter's default.
GATEWAY_GC_GEN0_THRESHOLD = env_int("GATEWAY_GC_GEN0_THRESHOLD", 20_000)
# Stored /v1/responses (for GET and previous_response_id) are deleted this many seconds after
# their creation by the hourly purge task (0: kept until deleted). OpenAI keeps them 30 days.
GATEWAY_RESPONSES_RETENTION = env_float("GATEWAY_RESPONSES_RETENTION", 30 * 86400.0)
# A request that names no max_tokens reserves this many output tokens against budgets.
GATEWAY_RESERVED_OUTPUT_TOKENS = env_int("GATEWAY_RESERVED_OUTPUT_TOKENS", 4096)
# Storing each request's messages and answer in its spend log: off unless a key or team opts in,
# or this default (else general_settings.store_prompts_in_spend_logs of GATEWAY_CONFIG) says so.
GATEWAY_STORE_PROMPTS = env_bool("GATEWAY_STORE_PROMPTS") if os.environ.get("GATEWAY_STORE_PROMPTS") else None
# A stored prompt or answer larger than this (bytes of JSON) is cut, and marked so.
GATEWAY_STORED_PROMPT_MAX_BYTES = env_int("GATEWAY_STORED_PROMPT_MAX_BYTES", 256 * 1024)
# The client's `metadata` kept with each spend log, at most this many bytes of JSON.
GATEWAY_SPEND_METADATA_MAX_BYTES = env_int("GATEWAY_SPEND_METADATA_MAX_BYTES", 8 * 1024)
GATEWAY_UPSTREAM_TIMEOUT = env_float("GATEWAY_UPSTREAM_TIMEOUT", 600.0)
GATEWAY_UPSTREAM_CONNECT_TIMEOUT = env_float("GATEWAY_UPSTREAM_CONNECT_TIMEOUT", 10.0)
GATEWAY_UPSTREAM_POOL_SIZE = env_int("GATEWAY_UPSTREAM_POOL_SIZE", 1000)
# Whole (non-streamed) upstream answers through the lean HTTP/1.1 client (apps.providers.http1);
# off: every call through aiohttp, as streams always go.
GATEWAY_UPSTREAM_LEAN_CLIENT = env_bool("GATEWAY_UPSTREAM_LEAN_CLIENT", True)

# Optional JWT auth: tokens signed by an identity provider whose keys are published at a JWKS URL.
GATEWAY_JWT_JWKS_URL = env_str("GATEWAY_JWT_JWKS_URL")
GATEWAY_JWT_AUDIENCE = env_str("GATEWAY_JWT_AUDIENCE")
GATEWAY_JWT_ISSUER = env_str("GATEWAY_JWT_ISSUER")
GATEWAY_JWT_ALGORITHMS = env_str("GATEWAY_JWT_ALGORITHMS", "RS256,ES256").split(",")
GATEWAY_JWT_USER_CLAIM = env_str("GATEWAY_JWT_USER_CLAIM", "sub")
GATEWAY_JWT_TEAM_CLAIM = env_str("GATEWAY_JWT_TEAM_CLAIM", "team_id")
GATEWAY_JWT_ORGANIZATION_CLAIM = env_str("GATEWAY_JWT_ORGANIZATION_CLAIM", "org_id")
GATEWAY_JWT_KEYS_TTL = env_float("GATEWAY_JWT_KEYS_TTL", 600.0)

# --- single sign-on for the admin: OpenID Connect (apps/management/admin_sso.py, mozilla-django-oidc) ---
# On when an issuer is set. Its endpoints come from its discovery document, fetched on the first
# sign-in (never here, never on /v1); the operator names only the issuer and the client.
GATEWAY_SSO_ISSUER = (env_str("GATEWAY_SSO_ISSUER") or "").rstrip("/") or None
GATEWAY_SSO_NAME = env_str("GATEWAY_SSO_NAME", "SSO")  # the login button: "Sign in with <name>"
GATEWAY_ADMIN_PASSWORD_LOGIN = env_bool("GATEWAY_ADMIN_PASSWORD_LOGIN", True)
_SSO_ROLES_FORMAT = ('{"claim": "groups", "proxy_admin": ["value", ...], "org_admin": {"Organization name": '
                     '["value", ...]}, "viewer": {"Organization name": ["value", ...]}}')


def _sso_roles(value: str | None) -> dict:
    """GATEWAY_SSO_ROLES: which claim holds the user's groups or roles, and which of its values make
    a proxy admin (superuser), an organization's admin, or its viewer (README, Single sign-on)."""
    if value is None:
        return {}
    try:
        roles = json.loads(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"GATEWAY_SSO_ROLES is not JSON ({exc}): {_SSO_ROLES_FORMAT}") from exc

    def strings(items) -> bool:
        return isinstance(items, list) and all(isinstance(item, str) for item in items)

    valid = (
        isinstance(roles, dict) and set(roles) <= {"claim", "proxy_admin", "org_admin", "viewer"}
        and isinstance(roles.get("claim", "groups"), str) and strings(roles.get("proxy_admin", []))
        and all(isinstance(roles.get(role, {}), dict) and all(strings(v) for v in roles.get(role, {}).values())
                for role in ("org_admin", "viewer"))
    )
    if not valid:
        raise ImproperlyConfigured(f"GATEWAY_SSO_ROLES must be {_SSO_ROLES_FORMAT}")
    return {"claim": roles.get("claim", "groups"), "proxy_admin": roles.get("proxy_admin", []),
            "org_admin": roles.get("org_admin", {}), "viewer": roles.get("viewer", {})}


GATEWAY_SSO_ROLES = _sso_roles(env_str("GATEWAY_SSO_ROLES"))
if GATEWAY_SSO_ISSUER:
    _missing = [name for name in ("GATEWAY_SSO_CLIENT_ID", "GATEWAY_SSO_CLIENT_SECRET", "GATEWAY_SSO_ROLES")
                if not env_str(name)]
    if _missing:
        raise ImproperlyConfigured(f"GATEWAY_SSO_ISSUER is set: {', '.join(_missing)} must be set too.")
    if not GATEWAY_SSO_ISSUER.startswith("https://") and not DEBUG:
        raise ImproperlyConfigured("GATEWAY_SSO_ISSUER must be an https:// URL (its keys sign the logins).")
elif not GATEWAY_ADMIN_PASSWORD_LOGIN:
    raise ImproperlyConfigured("GATEWAY_ADMIN_PASSWORD_LOGIN is off and no GATEWAY_SSO_ISSUER is set: "
                               "nobody could sign in to the admin.")
# Password sign-in off: without ModelBackend no password is accepted, and sessions it opened end.
AUTHENTICATION_BACKENDS = (
    ["django.contrib.auth.backends.ModelBackend"] if GATEWAY_ADMIN_PASSWORD_LOGIN else []
) + (["apps.management.admin_sso.SsoBackend"] if GATEWAY_SSO_ISSUER else [])
# mozilla-django-oidc's own settings (the endpoints are filled from discovery by apps.management.admin_sso).
OIDC_RP_CLIENT_ID = env_str("GATEWAY_SSO_CLIENT_ID")
OIDC_RP_CLIENT_SECRET = env_str("GATEWAY_SSO_CLIENT_SECRET")
OIDC_RP_SIGN_ALGO = "RS256"
# Okta sends groups only for the "groups" scope; Keycloak and Entra put them in by their own config.
OIDC_RP_SCOPES = env_str("GATEWAY_SSO_SCOPES", "openid email profile")
OIDC_USE_PKCE = True
OIDC_TIMEOUT = env_float("GATEWAY_SSO_TIMEOUT", 10.0)
OIDC_AUTHENTICATE_CLASS = "apps.management.admin_sso.SsoAuthenticateView"
OIDC_CALLBACK_CLASS = "apps.management.admin_sso.SsoCallbackView"
LOGIN_REDIRECT_URL = "/admin/"
LOGIN_REDIRECT_URL_FAILURE = "/admin/login/"  # where a refused sign-in's message is shown

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
# "plain" (human-readable, the default) or "json": one JSON object a line, for log shippers.
GATEWAY_LOG_FORMAT = env_str("GATEWAY_LOG_FORMAT", "plain")
if GATEWAY_LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured("GATEWAY_LOG_FORMAT must be plain or json.")
# One log line per /v1 request (logger gateway.requests): ids, model, deployment, status, timings,
# tokens and cost; never a prompt, an answer or a key.
GATEWAY_REQUEST_LOG = env_bool("GATEWAY_REQUEST_LOG", False)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"()": "apps.core.logs.BackgroundHandler", "output": GATEWAY_LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# --- usage billing through Lago (apps/billing) --------------------------------------------
# Off unless LAGO_API_BASE is set: then nothing is queued, no beat entry runs and the request
# path pays nothing. Names follow LiteLLM's Lago integration where it has them.
from decimal import Decimal as _Decimal, InvalidOperation as _InvalidOperation  # noqa: E402

# The Lago server's root URL (https://api.getlago.com, http://lago:3000); the client appends /api/v1/.
LAGO_API_BASE = env_str("LAGO_API_BASE")
LAGO_API_KEY = env_str("LAGO_API_KEY", "")
# The billable metric code every usage event carries.
LAGO_API_EVENT_CODE = env_str("LAGO_API_EVENT_CODE", "llm_usage")
# HMAC-signed webhooks: the Lago organization's HMAC key. JWT-signed ones need no setting
# (the public key comes from Lago's /api/v1/webhooks/json_public_key).
LAGO_WEBHOOK_SECRET = env_str("LAGO_WEBHOOK_SECRET", "")
# The plan `manage.py lago_sync_customers` subscribes new subscriptions to (none: it creates no subscription).
LAGO_PLAN_CODE = env_str("LAGO_PLAN_CODE", "")
LAGO_TIMEOUT = env_float("LAGO_TIMEOUT", 10.0)
# Who is billed: each organization, or each team, as its Lago customer and subscription.
BILLING_ENTITY = env_str("BILLING_ENTITY", "organization")
if BILLING_ENTITY not in ("organization", "team"):
    raise ImproperlyConfigured(f"BILLING_ENTITY must be 'organization' or 'team', got {BILLING_ENTITY!r}")
# USD cost -> the virtual currency the events carry: name, rate, decimal places and rounding.
BILLING_CREDITS_NAME = env_str("BILLING_CREDITS_NAME", "credits")
try:
    BILLING_CREDITS_PER_USD = _Decimal(env_str("BILLING_CREDITS_PER_USD", "1000"))
except _InvalidOperation as _exc:
    raise ImproperlyConfigured("BILLING_CREDITS_PER_USD must be a decimal number") from _exc
BILLING_CREDITS_DECIMALS = env_int("BILLING_CREDITS_DECIMALS", 6)
BILLING_CREDITS_ROUNDING = "ROUND_" + env_str("BILLING_CREDITS_ROUNDING", "HALF_UP").upper().removeprefix("ROUND_")
if BILLING_CREDITS_ROUNDING not in ("ROUND_UP", "ROUND_DOWN", "ROUND_CEILING", "ROUND_FLOOR", "ROUND_HALF_UP",
                                    "ROUND_HALF_DOWN", "ROUND_HALF_EVEN", "ROUND_05UP"):
    raise ImproperlyConfigured(f"BILLING_CREDITS_ROUNDING: unknown rounding {BILLING_CREDITS_ROUNDING!r}")
# When the wallet state cannot be had from Lago: serve (and alert), or refuse with 503.
BILLING_FAIL_OPEN = env_bool("BILLING_FAIL_OPEN", True)
# Wallet balances are refreshed from Lago this often (seconds), into Redis (or process memory).
BILLING_WALLET_REFRESH_INTERVAL = env_float("BILLING_WALLET_REFRESH_INTERVAL", 30.0)
# A wallet state older than this means Lago is unreachable: BILLING_FAIL_OPEN decides.
BILLING_WALLET_STALE_AFTER = env_float("BILLING_WALLET_STALE_AFTER", 120.0)
# How long each server process keeps a wallet state it read from Redis (webhooks update it at once).
BILLING_WALLET_CACHE_TTL = env_float("BILLING_WALLET_CACHE_TTL", 1.0)
# A webhook makes the gateway re-read the customer's wallets from Lago, at most once per this
# many seconds per customer (one more read follows at the interval's end if more webhooks came).
BILLING_WEBHOOK_REFRESH_INTERVAL = env_float("BILLING_WEBHOOK_REFRESH_INTERVAL", 1.0)
# Usage events are sent every this many seconds, at most 100 a batch (Lago's limit).
BILLING_OUTBOX_INTERVAL = env_float("BILLING_OUTBOX_INTERVAL", 5.0)
BILLING_BATCH_SIZE = max(1, min(env_int("BILLING_BATCH_SIZE", 100), 100))
# A sender's claim on a batch; a sender killed mid-batch gives its rows back after this.
BILLING_CLAIM_LEASE = env_float("BILLING_CLAIM_LEASE", 120.0)
# Retries after network errors, 5xx and 429: exponential from the base, jittered, capped.
BILLING_RETRY_BASE_DELAY = env_float("BILLING_RETRY_BASE_DELAY", 2.0)
BILLING_RETRY_MAX_DELAY = env_float("BILLING_RETRY_MAX_DELAY", 600.0)
# Delivered usage events and handled webhooks are deleted after these many seconds (an hourly
# beat task); pending events and dead letters are kept until delivered or replayed.
BILLING_SENT_RETENTION = env_float("BILLING_SENT_RETENTION", 30 * 86400.0)
BILLING_WEBHOOK_RETENTION = env_float("BILLING_WEBHOOK_RETENTION", 30 * 86400.0)
if LAGO_API_BASE:
    CELERY_BEAT_SCHEDULE.update({
        "billing-events-send": {"task": "billing.events_send", "schedule": BILLING_OUTBOX_INTERVAL,
                                "options": {"expires": max(BILLING_OUTBOX_INTERVAL - 0.5, 1.0)}},
        "billing-wallets-refresh": {"task": "billing.wallets_refresh", "schedule": BILLING_WALLET_REFRESH_INTERVAL,
                                    "options": {"expires": max(BILLING_WALLET_REFRESH_INTERVAL - 1.0, 1.0)}},
        "billing-records-purge": {"task": "billing.records_purge", "schedule": 3600.0, "options": {"expires": 3000}},
    })

# --- routing (apps/routing): retries and deployment health checks ---------------------------
# Retrying the same deployment waits base × 2^(n-1) seconds (jittered), at most the max, and at
# least the upstream's Retry-After. Failing over to another deployment does not wait.
GATEWAY_ROUTER_RETRY_BASE_DELAY = env_float("GATEWAY_ROUTER_RETRY_BASE_DELAY", 0.5)
GATEWAY_ROUTER_RETRY_MAX_DELAY = env_float("GATEWAY_ROUTER_RETRY_MAX_DELAY", 8.0)
# The beat task checking every deployment with a minimal request (GET /health lists the results).
GATEWAY_HEALTH_CHECK_INTERVAL = env_float("GATEWAY_HEALTH_CHECK_INTERVAL", 300.0)
GATEWAY_HEALTH_CHECK_TIMEOUT = env_float("GATEWAY_HEALTH_CHECK_TIMEOUT", 30.0)
# Deployments whose last health check failed are left out of routing (unless every deployment
# of the group failed), until a check passes or 3 check intervals go by without one.
GATEWAY_HEALTH_CHECK_ROUTING = env_bool("GATEWAY_HEALTH_CHECK_ROUTING", True)
# --- the audit log (apps/core/audit.py) ---
# Seconds an audit entry is kept before the daily purge deletes it; 0 keeps them. Default: 400 days.
GATEWAY_AUDIT_RETENTION = env_int("GATEWAY_AUDIT_RETENTION", 400 * 86400)
CELERY_BEAT_SCHEDULE["audit-logs-purge"] = {
    "task": "core.audit_logs_purge", "schedule": 86400.0, "options": {"expires": 3600},
}

# --- OpenTelemetry traces (apps/routing/tracing.py): on when an OTLP endpoint is configured ---
# The exporter reads the standard variables itself (OTEL_EXPORTER_OTLP_*, OTEL_BSP_*, OTEL_SERVICE_NAME).
GATEWAY_TRACING = bool(
    env_str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env_str("OTEL_EXPORTER_OTLP_ENDPOINT")
) and not env_bool("OTEL_SDK_DISABLED", False)

# --- logging callbacks (apps/spend/callbacks.py): config.yaml's litellm_settings.callbacks, plus these ---
# The exact response cache (apps.routing.response_cache): off, local, redis or redis+local.
GATEWAY_CACHE = env_str("GATEWAY_CACHE", "")
if GATEWAY_CACHE not in ("", "off", "local", "redis", "redis+local"):
    raise ImproperlyConfigured("GATEWAY_CACHE must be off, local, redis or redis+local.")
GATEWAY_CACHE_TTL = env_float("GATEWAY_CACHE_TTL", 600.0)
GATEWAY_CACHE_MEMORY_BYTES = env_int("GATEWAY_CACHE_MEMORY_BYTES", 64 * 1024 * 1024)
GATEWAY_CACHE_MAX_ENTRY_BYTES = env_int("GATEWAY_CACHE_MAX_ENTRY_BYTES", 1024 * 1024)
GATEWAY_CACHE_SHARED = env_bool("GATEWAY_CACHE_SHARED", False)  # entries shared by every team
GATEWAY_CACHE_CHARGE_BUDGETS = env_bool("GATEWAY_CACHE_CHARGE_BUDGETS", False)  # a hit costs what it saved
GATEWAY_CACHE_BILL_HITS = env_bool("GATEWAY_CACHE_BILL_HITS", False)  # a hit is a Lago event (its saved cost)
GATEWAY_CACHE_HITS_COUNT_RATE_LIMITS = env_bool("GATEWAY_CACHE_HITS_COUNT_RATE_LIMITS", True)
# The semantic cache (apps.routing.semantic_cache): off unless asked for.
GATEWAY_SEMANTIC_CACHE = env_bool("GATEWAY_SEMANTIC_CACHE", False)
GATEWAY_SEMANTIC_CACHE_THRESHOLD = env_float("GATEWAY_SEMANTIC_CACHE_THRESHOLD", 0.9)
GATEWAY_SEMANTIC_CACHE_EMBEDDING_MODEL = env_str("GATEWAY_SEMANTIC_CACHE_EMBEDDING_MODEL", "local")
GATEWAY_QDRANT_URL = env_str("GATEWAY_QDRANT_URL", "")  # empty: Qdrant embedded in each process, in memory
GATEWAY_QDRANT_API_KEY = env_str("GATEWAY_QDRANT_API_KEY", "")
# A guardrail that fails (raises) lets the request through instead of refusing it with a 503.
GATEWAY_GUARDRAIL_FAIL_OPEN = env_bool("GATEWAY_GUARDRAIL_FAIL_OPEN", False)
GATEWAY_CALLBACKS = env_str("GATEWAY_CALLBACKS", "")
GATEWAY_CALLBACK_FLUSH_INTERVAL = env_float("GATEWAY_CALLBACK_FLUSH_INTERVAL", 1.0)
# Hosts (names or addresses, comma-separated) a team's or key's own callbacks may send to even
# though they are on the gateway's network (an in-house Langfuse, say). Others must be public.
GATEWAY_CALLBACK_ALLOWED_HOSTS = env_str("GATEWAY_CALLBACK_ALLOWED_HOSTS", "")

# --- request-path metrics (apps/routing/metrics.py), at /metrics ---
GATEWAY_REQUEST_METRICS = env_bool("GATEWAY_REQUEST_METRICS", True)
# Label combinations kept before new ones count under "other" (bounds memory and scrape size).
GATEWAY_METRICS_MAX_SERIES = env_int("GATEWAY_METRICS_MAX_SERIES", 5000)
# Seconds between two flushes of the counted requests into /metrics (what a scrape may trail by).
GATEWAY_METRICS_FLUSH_INTERVAL = env_float("GATEWAY_METRICS_FLUSH_INTERVAL", 1.0)
# "" (no key label), "alias" (the key's alias, else its hash prefix) or "hash_prefix".
GATEWAY_METRICS_KEY_LABEL = env_str("GATEWAY_METRICS_KEY_LABEL", "")
if GATEWAY_METRICS_KEY_LABEL not in ("", "alias", "hash_prefix"):
    raise ImproperlyConfigured("GATEWAY_METRICS_KEY_LABEL must be empty, alias or hash_prefix.")

# Running /v1/batches are polled upstream this often; an ended one is priced and settled.
GATEWAY_BATCH_POLL_INTERVAL = env_float("GATEWAY_BATCH_POLL_INTERVAL", 60.0)
CELERY_BEAT_SCHEDULE["routing-batches-poll"] = {
    "task": "routing.batches_poll",
    "schedule": GATEWAY_BATCH_POLL_INTERVAL,
    "options": {"expires": max(GATEWAY_BATCH_POLL_INTERVAL - 5.0, 5.0)},
}
# Stored responses, files and batches a dead server process left in Redis, written to the database.
CELERY_BEAT_SCHEDULE["routing-owned-records-recover"] = {
    "task": "routing.owned_records_recover", "schedule": 60.0, "options": {"expires": 55},
}
CELERY_BEAT_SCHEDULE["routing-deployments-health-check"] = {
    "task": "routing.deployments_health_check",
    "schedule": GATEWAY_HEALTH_CHECK_INTERVAL,
    "options": {"expires": max(GATEWAY_HEALTH_CHECK_INTERVAL - 5.0, 5.0)},
}
