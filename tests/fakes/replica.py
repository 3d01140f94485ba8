"""Real gateway server processes (`manage.py serve`) on the test database, for multi-replica tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from django.conf import settings
from django.db import connection

from tests.fakes.server import free_socket

ROOT = Path(__file__).resolve().parents[2]


def database_url_of_test_db() -> str:
    db = settings.DATABASES["default"]
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    return f"postgresql://{user}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


class Replica:
    def __init__(self, *serve_args: str, **env_overrides: str) -> None:
        with free_socket() as sock:
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        env.update(
            DATABASE_URL=database_url_of_test_db(),
            SECRET_KEY="replica-test",
            GATEWAY_ENCRYPTION_KEY=settings.GATEWAY_ENCRYPTION_KEY,
            GATEWAY_MASTER_KEY=settings.GATEWAY_MASTER_KEY,
            GATEWAY_REDIS_PREFIX=settings.GATEWAY_REDIS_PREFIX,
            GATEWAY_SPEND_FLUSH_INTERVAL="0.1",
        )
        if settings.REDIS_URL:
            env["REDIS_URL"] = settings.REDIS_URL
        env.update(env_overrides)  # REDIS_URL="" with REDIS_CLUSTER_NODES or REDIS_SENTINELS: another Redis
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             *serve_args],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )

    def wait_ready(self, timeout: float = 30) -> "Replica":
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.url + "/health/liveliness").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError(self.process.stdout.read())
            if time.monotonic() > deadline:
                raise RuntimeError("the replica did not start")
            time.sleep(0.1)

    def stop(self) -> str:
        """SIGTERM (the spend buffer is flushed), then the output."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        output, _ = self.process.communicate(timeout=30)
        return output
