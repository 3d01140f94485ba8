"""Production refuses to start without its secrets; the embedded default needs nothing."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_django(env_overrides: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "GATEWAY_ENCRYPTION_KEY", "DEBUG"}}
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


def test_debug_runs_on_the_embedded_defaults(tmp_path):
    result = run_django({"DEBUG": "1", "GATEWAY_VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
