"""Production refuses to start without its secrets; the embedded default needs nothing."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_django(env_overrides: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in {"SECRET_KEY", "GATEWAY_ENCRYPTION_KEY", "DEBUG", "ALLOWED_HOSTS"}}
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
             "DJANGO_SETTINGS_MODULE": "gateway_project.settings", "SECRET_KEY": "x",
             "GATEWAY_ENCRYPTION_KEY": "y", **extra},
    )
    assert result.returncode == 0, result.stderr
    import json

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
