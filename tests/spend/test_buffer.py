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


@pytest.mark.django_db(transaction=True)
def test_stop_writes_a_backlog_of_many_batches_whole(settings, monkeypatch):
    """A busy server stops with more than a few batches buffered: all of them are written,
    also when the database refuses some attempts on the way."""
    from apps.spend import buffer as buffer_module
    from apps.spend.models import SpendLog

    settings.GATEWAY_SPEND_FLUSH_INTERVAL = 3600  # only stop() can write
    settings.GATEWAY_SPEND_BATCH_SIZE = 2
    calls = []

    def write_failing_every_third_call(**kwargs):
        calls.append(1)
        if len(calls) % 3 == 0:
            raise ConnectionError("database blinked")
        return spend_logs_write_batch(**kwargs)

    monkeypatch.setattr(buffer_module, "spend_logs_write_batch", write_failing_every_third_call)
    buffer = SpendBuffer()
    records = [record() for _ in range(23)]  # 12 batches

    async def scenario():
        buffer.start()
        for one in records:
            buffer.add(one)
        await buffer.stop()
        # With Redis, a refused batch went to the spill, where any replica replays it: replay it
        # here (and so leave nothing behind for the next test).
        monkeypatch.setattr(buffer_module, "spend_logs_write_batch", spend_logs_write_batch)
        while await buffer.replay_spilled():
            pass

    asyncio.run(scenario())
    assert SpendLog.objects.filter(request_id__in=[r.request_id for r in records]).count() == 23
    assert len(buffer) == 0


@pytest.mark.django_db(transaction=True)
def test_a_record_holding_nul_characters_is_written_and_holds_no_other_back(make_key):
    """PostgreSQL refuses NUL in text and JSON; a client's metadata can carry one (a hostile one
    did, in CI, and every later batch failed behind it)."""
    from apps.spend.models import SpendLog

    key, _ = make_key()
    poisoned = record(key)
    poisoned.metadata = {"tag\x00": ["a\x00b", {"deep": "\x00"}], "n": 1}
    poisoned.messages = [{"role": "user", "content": "hi\x00"}]
    poisoned.error_type = "x\x00"
    batch = [record(key), poisoned, record(key)]
    assert spend_logs_write_batch(records=batch) == 3
    stored = SpendLog.objects.get(request_id=poisoned.request_id)
    assert stored.metadata == {"tag": ["ab", {"deep": ""}], "n": 1}
    assert stored.messages == [{"role": "user", "content": "hi"}]
    assert stored.error_type == "x"
    key.refresh_from_db()
    assert key.spend == Decimal("1.5")


@pytest.mark.django_db(transaction=True)
def test_awkward_text_and_json_round_trip_through_the_batch_write(make_key):
    """On PostgreSQL the batch is a COPY in text format: tabs, newlines, backslashes and the
    COPY end marker must arrive as sent, in text and in JSON."""
    from apps.spend.models import SpendLog
    from apps.spend.services import spend_logs_write_batch

    key, _ = make_key()
    awkward = record(key)
    text = "tab\there\nnew line \\N \\. back\\slash \"quote\" \u00e9\u4e2d\U0001f600 \r"
    awkward.metadata = {"tags": [text], text: {"n": 1.5, "null": None, "t": True}}
    awkward.messages = [{"role": "user", "content": text}]
    awkward.error_type = text
    awkward.end_user = "\\."
    assert spend_logs_write_batch(records=[awkward, record(key)]) == 2
    stored = SpendLog.objects.get(request_id=awkward.request_id)
    assert stored.metadata == awkward.metadata
    assert stored.messages == awkward.messages
    assert (stored.error_type, stored.end_user) == (text, "\\.")
    assert stored.start_time == awkward.start_time and stored.cost == awkward.cost


@pytest.mark.django_db(transaction=True)
def test_a_record_the_database_refuses_is_kept_without_its_payloads(make_key, monkeypatch):
    from apps.spend import services
    from apps.spend.models import SpendLog

    key, _ = make_key()
    unstorable = record(key)
    unstorable.response = {"refused": True}
    real_write = services._spend_logs_write

    def write(records):
        if any(r.response for r in records):
            raise services.DataError("value refused")
        return real_write(records)

    monkeypatch.setattr(services, "_spend_logs_write", write)
    assert spend_logs_write_batch(records=[record(key), unstorable]) == 2
    stored = SpendLog.objects.get(request_id=unstorable.request_id)
    assert stored.response is None and stored.cost == Decimal("0.5")


def test_past_the_bound_answers_wait_for_the_writer(gateway, make_deployment, make_key, settings, monkeypatch):
    """A spend writer slower than the requests paces them (backpressure) instead of its backlog,
    and the process, growing without bound: past GATEWAY_SPEND_BUFFER_MAX an answer waits for it."""
    import threading

    import httpx

    from apps.spend import buffer

    settings.GATEWAY_SPEND_BUFFER_MAX = 0
    settings.GATEWAY_SPEND_BACKPRESSURE_WAIT = 30.0
    writer_may_go = threading.Event()
    write = buffer.spend_logs_write_batch

    def slow_write(*, records):
        writer_may_go.wait(30)
        return write(records=records)

    monkeypatch.setattr(buffer, "spend_logs_write_batch", slow_write)
    make_deployment("gpt-test")
    _, raw_key = make_key()
    answers = []

    def ask() -> None:
        with httpx.Client(base_url=gateway.url, timeout=60) as client:
            answers.append(client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {raw_key}"},
                                       json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}))

    asking = threading.Thread(target=ask)
    asking.start()
    asking.join(2.0)
    assert asking.is_alive() and not answers  # its record is over the bound: the answer waits for the writer
    writer_may_go.set()
    asking.join(30)
    assert [answer.status_code for answer in answers] == [200]
