"""`manage.py serve` as operators run it: a real server process, GATEWAY_CONFIG loaded at start
(deployments and master key), the admin user created from the environment, and the spend
buffer flushed on SIGTERM."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.fakes.replica import database_url_of_test_db
from tests.fakes.server import free_socket

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db(transaction=True)
def test_serve_loads_the_config_creates_the_admin_and_flushes_spend_on_sigterm(
    tmp_path, fake_openai, settings
):
    from apps.providers.models import ModelDeployment
    from apps.spend.models import SpendLog

    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
model_list:
  - model_name: served-model
    litellm_params:
      model: openai/gpt-served
      api_base: {fake_openai.base_url}
      api_key: os.environ/SERVE_TEST_UPSTREAM_KEY
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
general_settings:
  master_key: sk-master-from-config
"""
    )
    with free_socket() as sock:
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in {"GATEWAY_MASTER_KEY", "DJANGO_SETTINGS_MODULE"}}
    env.update(
        DATABASE_URL=database_url_of_test_db(),
        GATEWAY_CONFIG=str(config),
        SERVE_TEST_UPSTREAM_KEY="sk-upstream-from-env",
        GATEWAY_ADMIN_USER="operator",
        GATEWAY_ADMIN_PASSWORD="a-long-admin-password",
        GATEWAY_SPEND_FLUSH_INTERVAL="3600",  # only the shutdown flush can write
        SECRET_KEY="serve-test",
        GATEWAY_ENCRYPTION_KEY=settings.GATEWAY_ENCRYPTION_KEY,
    )
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/health/liveliness").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)

        client = openai.OpenAI(base_url=url + "/v1", api_key="sk-master-from-config", max_retries=0)
        for _ in range(3):
            assert client.chat.completions.create(
                model="served-model", messages=[{"role": "user", "content": "hi"}]
            ).choices
        assert fake_openai.requests[-1]["headers"]["Authorization"] == "Bearer sk-upstream-from-env"
        assert ModelDeployment.objects.get().managed_by_config
        assert SpendLog.objects.count() == 0  # still buffered

        from django.contrib.auth import get_user_model

        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]  # as serve used
        admin = get_user_model().objects.get(username="operator")
        assert admin.is_superuser and admin.check_password("a-long-admin-password")
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises the signal it got.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert "Loaded" in output and "1 created" in output
    assert SpendLog.objects.count() == 3
    assert all(log.cost is not None for log in SpendLog.objects.all())
