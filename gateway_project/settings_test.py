"""Test settings: the test suite's defaults for what production must set, then the real settings.

DATABASE_URL and REDIS_URL are left to the environment, so the same suite runs on
SQLite with in-process backends and on PostgreSQL + Redis (see .ci/run).

The development environment file (.env, written by `make run`) is not read: a developer's
DEBUG=1, DATABASE_URL or GATEWAY_CONFIG there must not change what the suite tests. To run the
suite with an env file on purpose, name it: `GATEWAY_ENV_FILE=.env make test` (the values set
below still win over it, as the real environment does).
"""

import os
import uuid

os.environ.setdefault("GATEWAY_ENV_FILE", os.devnull)
os.environ.setdefault("SECRET_KEY", "test-secret-key")
os.environ.setdefault("GATEWAY_ENCRYPTION_KEY", "test-encryption-passphrase")
os.environ.setdefault("GATEWAY_MASTER_KEY", "sk-master-test")
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
os.environ.setdefault("GATEWAY_SPEND_FLUSH_INTERVAL", "0.05")
os.environ.setdefault("GATEWAY_ROUTER_RETRY_BASE_DELAY", "0.01")  # retries back off, but tests need not wait
# A prefix of its own per run keeps parallel or leftover runs apart on a shared Redis.
os.environ.setdefault("GATEWAY_REDIS_PREFIX", f"gwtest:{uuid.uuid4().hex[:8]}:")
os.environ.pop("GATEWAY_CONFIG", None)

from gateway_project.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # One file per test run, so runs side by side never share a database.
    DATABASES["default"]["TEST"]["NAME"] = str(VAR_DIR / f"test-gateway-{os.getpid()}.sqlite3")  # noqa: F405
else:
    DATABASES["default"].setdefault("TEST", {})["NAME"] = f"test_gateway_{os.getpid()}"  # noqa: F405

# Serve static files (the admin's, the spend report's charts) straight from the finders, as
# `make run` does with DEBUG=1: the test servers run without DEBUG and without collectstatic.
WHITENOISE_USE_FINDERS = True
