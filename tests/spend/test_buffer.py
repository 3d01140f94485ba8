"""The spend buffer: batches, idempotent writes, and nothing lost when a write fails."""

import asyncio
import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from apps.spend.buffer import SpendBuffer
from apps.spend.records import SpendRecord
from apps.spend.services import spend_logs_write_batch


def record(key=None, cost=Decimal("0.5"), request_id=None) -> SpendRecord:
    now = datetime.now(timezone.utc)
    return SpendRecord(
        request_id=request_id or uuid.uuid4().hex,
        key_id=key.pk if key else None,
        key_hash=key.token_hash if key else "",
        team_id=None,
        organization_id=None,
        user_id=None,
        call_type="chat_completion",
        model="gpt-test",
        deployment_id=None,
        provider="openai",
        upstream_model="gpt-test",
        prompt_tokens=1,
        completion_tokens=1,
        cached_tokens=0,
        reasoning_tokens=0,
        usage_reported=True,
        cost=cost,
        status="success",
        http_status=200,
        error_type="",
        is_stream=False,
        latency_ms=1,
        start_time=now,
        end_time=now,
    )


@pytest.mark.django_db(transaction=True)
def test_writing_the_same_batch_twice_changes_nothing_the_second_time(make_key):
    from apps.spend.models import SpendLog

    key, _ = make_key()
    batch = [record(key), record(key)]
    assert spend_logs_write_batch(records=batch) == 2
    assert spend_logs_write_batch(records=batch) == 0
    key.refresh_from_db()
    assert SpendLog.objects.count() == 2
    assert key.spend == Decimal("1.0")


@pytest.mark.django_db(transaction=True)
def test_a_failed_flush_keeps_the_records_and_a_later_one_writes_them(monkeypatch):
    from apps.spend import buffer as buffer_module
    from apps.spend.models import SpendLog

    buffer = SpendBuffer()
    for _ in range(3):
        buffer.add(record())

    def database_down(**kwargs):
        raise ConnectionError("database is down")

    monkeypatch.setattr(buffer_module, "spend_logs_write_batch", database_down)
    assert asyncio.run(buffer.flush_once()) is False
    assert len(buffer) == 3
    monkeypatch.setattr(buffer_module, "spend_logs_write_batch", spend_logs_write_batch)
    assert asyncio.run(buffer.flush_once()) is True
    assert len(buffer) == 0
    assert SpendLog.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_stop_flushes_everything_still_buffered(settings):
    from apps.spend.models import SpendLog

    settings.GATEWAY_SPEND_FLUSH_INTERVAL = 3600  # only stop() can write
    settings.GATEWAY_SPEND_BATCH_SIZE = 2
    buffer = SpendBuffer()

    async def scenario():
        buffer.start()
        for _ in range(5):
            buffer.add(record())
        await buffer.stop()

    asyncio.run(scenario())
    assert SpendLog.objects.count() == 5
