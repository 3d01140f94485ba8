"""Real sender processes: one killed in the middle of a batch, and two sending at once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from apps.billing.models import BillingEvent
from apps.billing.services import billing_events_send
from tests.billing.helpers import queue
from tests.fakes import replica

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]


def sender(fake, *command: str, **env_overrides: str) -> subprocess.Popen:
    """`manage.py <command>` on the test database, against the fake Lago."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        DATABASE_URL=replica.database_url_of_test_db(),
        SECRET_KEY="billing-test",
        GATEWAY_ENCRYPTION_KEY=settings.GATEWAY_ENCRYPTION_KEY,
        GATEWAY_REDIS_PREFIX=settings.GATEWAY_REDIS_PREFIX,
        LAGO_API_BASE=fake.url,
        LAGO_API_KEY=fake.api_key,
        **env_overrides,
    )
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    return subprocess.Popen(
        [sys.executable, "manage.py", *command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_sender_killed_mid_batch_loses_nothing_and_duplicates_nothing(billing, billed_org):
    records = queue(250, billed_org)
    # The second batch reaches Lago, which stores it; the answer never comes back: the sender
    # is killed (SIGKILL: no cleanup) while it waits.
    billing.hang_on_post(2, store_first=True)
    lease = 3
    process = sender(billing, "lago_flush", LAGO_TIMEOUT="60", BILLING_CLAIM_LEASE=str(lease))
    try:
        assert billing.hung.wait(60), (
            process.communicate(timeout=5)[0] if process.poll() is not None else "no hang"
        )
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
        billing.release()
    assert process.returncode == -signal.SIGKILL
    assert BillingEvent.objects.filter(status="sent").count() == 100
    assert (
        BillingEvent.objects.filter(status="pending", claimed_until__isnull=False).count() == 100
    )  # the claim
    assert len(billing.stored_ids()) == 200  # Lago has batches 1 and 2
    # The dead sender's claim blocks other senders until it runs out...
    assert billing_events_send(force=True).batches == 1  # only the unclaimed third batch
    time.sleep(lease + 0.5)
    # ...then its rows are sent again; Lago answers 422 value_already_exist for them: delivered.
    result = billing_events_send()
    assert (result.sent, result.duplicates, result.dead) == (0, 100, 0)
    assert BillingEvent.objects.filter(status="sent").count() == 250
    assert billing.stored_ids() == {r.request_id for r in records}
    assert set(billing.stored.values()) == {1}  # each transaction_id stored exactly once
    assert sum(billing.duplicates_refused.values()) == 100


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="concurrent claims by row locks (FOR UPDATE SKIP LOCKED) need PostgreSQL; SQLite "
    "has no row locks and serializes its writers",
)
def test_two_workers_running_the_task_at_once_send_no_row_twice(billing, billed_org):
    records = queue(1500, billed_org)
    billing.delay = 0.2  # each batch takes a while, so the two workers overlap
    script = (
        "from apps.billing.tasks import events_send_task; print(f'delivered {events_send_task.apply().get()}.', flush=True)"
    )
    workers = [sender(billing, "shell", "-c", script) for _ in range(2)]
    outputs = [w.communicate(timeout=120)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    # Ended by a dot: a log line of the worker's can land right after the number, without a newline.
    found = [re.search(r"delivered (\d+)\.", out) for out in outputs]
    assert all(found), outputs  # each worker said how many it sent (else: what it printed instead)
    delivered = [int(match.group(1)) for match in found]
    assert sum(delivered) == 1500 and all(d > 0 for d in delivered), delivered  # both did part of the work
    # No transaction_id was ever posted twice: not even a 422 duplicate.
    assert set(billing.received.values()) == {1} and not billing.duplicates_refused
    assert billing.stored_ids() == {r.request_id for r in records}
    assert BillingEvent.objects.filter(status="sent").count() == 1500
