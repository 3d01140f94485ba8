"""Production refuses to start without its secrets; the embedded default needs nothing; the
development environment file (.env) fills in what the environment leaves unset, and never
reaches the test settings unless named."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_django(env_overrides: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in {"SECRET_KEY", "GATEWAY_ENCRYPTION_KEY", "DEBUG", "ALLOWED_HOSTS"}}
    env["GATEWAY_ENV_FILE"] = os.devnull  # production: no development environment file
    env.update(env_overrides)
    env["DJANGO_SETTINGS_MODULE"] = "gateway_project.settings"
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('ok')"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )


def test_production_without_secret_key_refuses_to_start():
    result = run_django({})
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_production_without_encryption_key_refuses_to_start():
    result = run_django({"SECRET_KEY": "x"})
    assert result.returncode != 0
    assert "GATEWAY_ENCRYPTION_KEY is not set" in result.stderr


def test_production_without_allowed_hosts_refuses_to_start():
    result = run_django({"SECRET_KEY": "x", "GATEWAY_ENCRYPTION_KEY": "y"})
    assert result.returncode != 0
    assert "ALLOWED_HOSTS is not set" in result.stderr


def _production_settings(extra: dict) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", "import json, django; django.setup(); from django.conf import settings as s; "
         "print(json.dumps({n: getattr(s, n, None) for n in ('SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', "
         "'SECURE_HSTS_SECONDS', 'SECURE_PROXY_SSL_HEADER', 'ALLOWED_HOSTS', 'DEBUG')}))"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**{k: v for k, v in os.environ.items() if k not in {"DEBUG", "ALLOWED_HOSTS"}},
             "GATEWAY_ENV_FILE": os.devnull,
             "DJANGO_SETTINGS_MODULE": "gateway_project.settings", "SECRET_KEY": "x",
             "GATEWAY_ENCRYPTION_KEY": "y", **extra},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_production_defaults_are_safe():
    values = _production_settings({"ALLOWED_HOSTS": "gw.example.com"})
    assert values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"]
    assert values["SECURE_HSTS_SECONDS"] >= 31_536_000
    assert values["ALLOWED_HOSTS"] == ["gw.example.com"] and values["SECURE_PROXY_SSL_HEADER"] is None
    behind_proxy = _production_settings({"ALLOWED_HOSTS": "gw", "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto"})
    assert behind_proxy["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_debug_runs_on_the_embedded_defaults(tmp_path):
    result = run_django({"DEBUG": "1", "GATEWAY_VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# --- the development environment file -------------------------------------------------------

ENV_NAMES = ("DEBUG", "SECRET_KEY", "GATEWAY_ENCRYPTION_KEY", "GATEWAY_MASTER_KEY", "DATABASE_URL",
             "GATEWAY_CONFIG", "ALLOWED_HOSTS", "GATEWAY_ENV_FILE", "GATEWAY_VAR_DIR")
DEV_ENV = (
    "# a developer's .env\n"
    "DEBUG=1\n"
    "SECRET_KEY=secret-from-the-file\n"
    "GATEWAY_ENCRYPTION_KEY=encryption-from-the-file\n"
    "GATEWAY_MASTER_KEY=sk-from-the-file\n"
    "DATABASE_URL=postgresql://nobody@db.invalid:5432/theirs\n"
    "GATEWAY_CONFIG=config.yaml\n"
)


@pytest.fixture
def checkout(tmp_path):
    """A copy of the settings package at the root of a checkout of its own, so a .env can sit
    beside it (settings read <repository root>/.env) without touching this one's."""
    shutil.copytree(ROOT / "gateway_project", tmp_path / "gateway_project",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def settings_of(checkout: Path, module: str, env: dict) -> dict:
    """The settings a process started with exactly `env` (beyond PATH) sees."""
    base = {k: v for k, v in os.environ.items() if k not in ENV_NAMES and not k.startswith("DJANGO_")}
    result = subprocess.run(
        [sys.executable, "-c", f"import json, {module} as s; print(json.dumps({{n: str(getattr(s, n, None)) "
         f"for n in {ENV_NAMES + ('DATABASES',)!r}}}))"],
        cwd=checkout, capture_output=True, text=True, timeout=60,
        env={**base, "PYTHONPATH": str(checkout), "GATEWAY_VAR_DIR": str(checkout / "var"), **env},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_env_file_fills_in_what_the_environment_leaves_unset(checkout):
    (checkout / ".env").write_text(DEV_ENV)
    values = settings_of(checkout, "gateway_project.settings", {})
    assert values["DEBUG"] == "True" and values["SECRET_KEY"] == "secret-from-the-file"
    assert values["GATEWAY_ENCRYPTION_KEY"] == "encryption-from-the-file"
    assert values["GATEWAY_MASTER_KEY"] == "sk-from-the-file" and "db.invalid" in values["DATABASES"]
    assert values["GATEWAY_ENV_FILE"] == str(checkout / ".env")


def test_the_environment_wins_over_the_env_file(checkout):
    (checkout / ".env").write_text(DEV_ENV)
    values = settings_of(checkout, "gateway_project.settings", {
        "SECRET_KEY": "secret-from-the-environment", "GATEWAY_MASTER_KEY": "sk-from-the-environment",
        "DATABASE_URL": "sqlite:///env.sqlite3",
    })
    assert values["SECRET_KEY"] == "secret-from-the-environment"
    assert values["GATEWAY_MASTER_KEY"] == "sk-from-the-environment"
    assert "env.sqlite3" in values["DATABASES"] and "db.invalid" not in values["DATABASES"]
    assert values["GATEWAY_ENCRYPTION_KEY"] == "encryption-from-the-file"  # what the environment left unset


def test_gateway_env_file_names_another_file_or_none(checkout):
    (checkout / ".env").write_text(DEV_ENV)
    (checkout / "staging.env").write_text("DEBUG=1\nSECRET_KEY=secret-from-staging\n")
    named = settings_of(checkout, "gateway_project.settings", {"GATEWAY_ENV_FILE": "staging.env"})
    assert named["SECRET_KEY"] == "secret-from-staging" and named["GATEWAY_MASTER_KEY"] == "None"
    refused = subprocess.run([sys.executable, "-c", "import gateway_project.settings"], cwd=checkout,
                             capture_output=True, text=True, timeout=60,
                             env={"PATH": os.environ["PATH"], "PYTHONPATH": str(checkout),
                                  "GATEWAY_ENV_FILE": "missing.env"})
    assert refused.returncode != 0 and "GATEWAY_ENV_FILE missing.env: no such file" in refused.stderr
    # /dev/null reads none: production's refusal holds even beside a development .env.
    none = subprocess.run([sys.executable, "-c", "import gateway_project.settings"], cwd=checkout,
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ["PATH"], "PYTHONPATH": str(checkout),
                               "GATEWAY_ENV_FILE": os.devnull, "GATEWAY_VAR_DIR": str(checkout / "var")})
    assert none.returncode != 0 and "SECRET_KEY is not set" in none.stderr


def test_the_test_settings_read_no_env_file_unless_named(checkout):
    """A developer's .env (DEBUG, a DATABASE_URL, a GATEWAY_CONFIG of theirs) does not change what
    `make test` tests; naming it with GATEWAY_ENV_FILE reads it, the test settings' own values winning."""
    (checkout / ".env").write_text(DEV_ENV)
    values = settings_of(checkout, "gateway_project.settings_test", {})
    assert values["GATEWAY_ENV_FILE"] == os.devnull and values["DEBUG"] == "False"
    assert values["GATEWAY_CONFIG"] == "None" and "sqlite3" in values["DATABASES"]
    assert values["SECRET_KEY"] == "test-secret-key" and values["GATEWAY_MASTER_KEY"] == "sk-master-test"
    named = settings_of(checkout, "gateway_project.settings_test", {"GATEWAY_ENV_FILE": ".env"})
    assert named["DEBUG"] == "True" and "db.invalid" in named["DATABASES"]
    assert named["SECRET_KEY"] == "test-secret-key" and named["GATEWAY_MASTER_KEY"] == "sk-master-test"
