"""The production topology on this machine, driven through faults under load (deploy/local/topology.py):
two replicas behind nginx, Celery worker and beat on RabbitMQ, PostgreSQL, Redis, a fake upstream and
a fake Lago; a replica SIGKILLed, Redis restarted, PostgreSQL unreachable for 20 s, the Celery worker
SIGKILLed mid-batch. The script checks that every 200 has exactly one spend log, that rate limits and
budgets held across the replicas, that every billable request reached Lago exactly once and that no
replica's memory grew; it exits 0 only when all of that holds.

It needs nginx (Debian's: .ci/run installs it), redis-server, RabbitMQ and PostgreSQL on this machine;
without one of them the test is skipped. About three minutes of both cores: marked slow.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "deploy" / "local" / "topology.py"
POSTGRES = os.environ.get("TOPOLOGY_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
_broker = os.environ.get("CELERY_BROKER_URL", "")
BROKER = _broker if _broker.startswith("amqp") else "amqp://guest:guest@127.0.0.1:5672//"
RUN_TIMEOUT = 600  # the script's default run takes about 3 minutes

pytestmark = pytest.mark.slow


def _installed(name: str) -> bool:
    return bool(shutil.which(name)) or any(os.access(f"{d}/{name}", os.X_OK) for d in ("/usr/sbin", "/sbin"))


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _postgres_reachable() -> bool:
    import psycopg

    try:
        psycopg.connect(POSTGRES, connect_timeout=3).close()
        return True
    except psycopg.Error:
        return False


def _missing() -> str | None:
    if not _installed("nginx"):
        return "nginx is not installed (apt-get install -y nginx; .ci/run installs it)"
    if not _installed("redis-server"):
        return "redis-server is not installed"
    broker = urlsplit(BROKER)
    if not _tcp_open(broker.hostname or "127.0.0.1", broker.port or 5672):
        return f"RabbitMQ is not reachable at {broker.hostname}:{broker.port or 5672}"
    if not _postgres_reachable():
        postgres = urlsplit(POSTGRES)
        return f"PostgreSQL is not reachable at {postgres.hostname}:{postgres.port or 5432}"
    return None


@pytest.mark.timeout(RUN_TIMEOUT + 120)
def test_the_topology_keeps_its_promises_through_faults():
    reason = _missing()
    if reason:
        pytest.skip(reason)
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    process = subprocess.Popen([sys.executable, str(SCRIPT)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = process.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)  # the script stops its processes and drops its database
        try:
            output, _ = process.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        pytest.fail(f"the topology run took more than {RUN_TIMEOUT} s:\n{output[-6000:]}")
    assert "=== TOPOLOGY SUMMARY" in output, output[-6000:]  # set up, loaded and checked
    summary = output[output.index("=== TOPOLOGY SUMMARY"):]
    assert process.returncode == 0 and "RESULT: PASS" in summary, summary
