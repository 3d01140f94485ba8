"""Gateway settings.

Every value that comes from the environment is read here and nowhere else.
The embedded default (no variables set, DEBUG=1) is SQLite under var/, in-process
cache and counters, and Celery tasks run eagerly.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
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

ALLOWED_HOSTS = [h.strip() for h in env_str("ALLOWED_HOSTS", "*").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in env_str("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "ninja",
    "apps.core",
    "apps.teams",
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
            ],
        },
    },
]

ASGI_APPLICATION = "gateway_project.asgi.application"

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'gateway.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not :memory:, so the server threads in tests see the same database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-gateway.sqlite3")}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's native psycopg pool; CONN_MAX_AGE stays 0 as the pool owns reuse.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": env_int("DATABASE_POOL_MAX_SIZE", 10),
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
# Every Redis key and channel of this deployment starts with this, so several
# gateways (or test runs) can share one server.
GATEWAY_REDIS_PREFIX = env_str("GATEWAY_REDIS_PREFIX", "gw:")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
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
CELERY_BEAT_SCHEDULE = {
    # New budget periods in the database (enforcement itself derives periods without it).
    "budget-periods-roll": {"task": "spend.budget_periods_roll", "schedule": 60.0, "options": {"expires": 55}},
}

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

# --- the data plane -------------------------------------------------------
# Largest request body accepted on /v1 (image payloads are big).
GATEWAY_MAX_BODY_BYTES = env_int("GATEWAY_MAX_BODY_BYTES", 32 * 1024 * 1024)
# Key contexts and deployments are cached in-process; invalidations come over
# Redis pub/sub. The TTL is only a backstop for a missed message.
GATEWAY_KEY_CACHE_TTL = env_float("GATEWAY_KEY_CACHE_TTL", 60.0)
GATEWAY_NEGATIVE_KEY_CACHE_TTL = env_float("GATEWAY_NEGATIVE_KEY_CACHE_TTL", 5.0)
# Spend records are written in batches: every interval, or sooner when a batch fills.
GATEWAY_SPEND_FLUSH_INTERVAL = env_float("GATEWAY_SPEND_FLUSH_INTERVAL", 1.0)
GATEWAY_SPEND_BATCH_SIZE = env_int("GATEWAY_SPEND_BATCH_SIZE", 500)
# A request that names no max_tokens reserves this many output tokens against budgets.
GATEWAY_RESERVED_OUTPUT_TOKENS = env_int("GATEWAY_RESERVED_OUTPUT_TOKENS", 4096)
GATEWAY_UPSTREAM_TIMEOUT = env_float("GATEWAY_UPSTREAM_TIMEOUT", 600.0)
GATEWAY_UPSTREAM_CONNECT_TIMEOUT = env_float("GATEWAY_UPSTREAM_CONNECT_TIMEOUT", 10.0)
GATEWAY_UPSTREAM_POOL_SIZE = env_int("GATEWAY_UPSTREAM_POOL_SIZE", 1000)

# Optional JWT auth: tokens signed by an identity provider whose keys are published at a JWKS URL.
GATEWAY_JWT_JWKS_URL = env_str("GATEWAY_JWT_JWKS_URL")
GATEWAY_JWT_AUDIENCE = env_str("GATEWAY_JWT_AUDIENCE")
GATEWAY_JWT_ISSUER = env_str("GATEWAY_JWT_ISSUER")
GATEWAY_JWT_ALGORITHMS = env_str("GATEWAY_JWT_ALGORITHMS", "RS256,ES256").split(",")
GATEWAY_JWT_USER_CLAIM = env_str("GATEWAY_JWT_USER_CLAIM", "sub")
GATEWAY_JWT_TEAM_CLAIM = env_str("GATEWAY_JWT_TEAM_CLAIM", "team_id")
GATEWAY_JWT_ORGANIZATION_CLAIM = env_str("GATEWAY_JWT_ORGANIZATION_CLAIM", "org_id")
GATEWAY_JWT_KEYS_TTL = env_float("GATEWAY_JWT_KEYS_TTL", 600.0)

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
