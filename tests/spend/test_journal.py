"""The spend journal: a process killed before its batch is written loses no spend record."""

import httpx
import pytest
from django.conf import settings

from tests.fakes.replica import Replica

pytestmark = [
    pytest.mark.skipif(not settings.REDIS_MODE, reason="the journal is in Redis"),
    pytest.mark.django_db(transaction=True),
]
MESSAGES = [{"role": "user", "content": "hi"}]


def _journaled_ids() -> set[str]:
    from apps.core.redis import sync_redis
    from apps.spend.journal import journal_key

    return {field.decode() for field in sync_redis().hkeys(journal_key())}


def test_a_replica_killed_before_its_batch_loses_no_spend_record(make_deployment, make_key):
    from apps.spend.journal import spend_journal_recover
    from apps.spend.models import SpendLog

    make_deployment("gpt-test")
    key, raw_key = make_key()
    # Nothing is flushed for a minute: every record is only in the process and in the journal.
    replica = Replica(GATEWAY_SPEND_FLUSH_INTERVAL="60", GATEWAY_SPEND_BATCH_SIZE="1000").wait_ready()
    ids = []
    try:
        with httpx.Client(base_url=replica.url, headers={"Authorization": f"Bearer {raw_key}"}, timeout=30) as client:
            for _ in range(12):
                response = client.post("/v1/chat/completions", json={"model": "gpt-test", "messages": MESSAGES})
                assert response.status_code == 200
                ids.append(response.headers["x-request-id"])
            with client.stream("POST", "/v1/chat/completions", json={
                    "model": "gpt-test", "messages": MESSAGES, "stream": True,
                    "stream_options": {"include_usage": True}}) as stream:
                assert stream.status_code == 200
                assert "data: [DONE]" in "".join(stream.iter_text())
    finally:
        replica.process.kill()  # SIGKILL: no shutdown, no flush
        replica.process.wait(10)
    assert SpendLog.objects.filter(key_id=key.pk).count() == 0
    assert len(_journaled_ids()) >= 13

    assert spend_journal_recover(older_than=0) >= 13
    logs = SpendLog.objects.filter(key_id=key.pk)
    assert logs.count() == 13
    assert set(ids) <= set(logs.values_list("request_id", flat=True))  # each answer the client got
    assert logs.filter(is_stream=True).count() == 1
    assert spend_journal_recover(older_than=0) == 0  # taken out: once only


def test_records_written_by_their_own_process_leave_the_journal(gateway, make_deployment, make_key, spend_logs):
    from apps.spend.journal import spend_journal_recover

    make_deployment("gpt-test")
    _, raw_key = make_key()
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {raw_key}"}, timeout=30) as client:
        ids = [client.post("/v1/chat/completions", json={"model": "gpt-test", "messages": MESSAGES})
               .headers["x-request-id"] for _ in range(5)]
    spend_logs(5)
    from conftest import wait_for

    assert wait_for(lambda: not (set(ids) & _journaled_ids()), timeout=5)
    assert spend_journal_recover(older_than=0) == 0


def test_puts_queued_while_a_write_is_in_flight_go_in_one_redis_write():
    """Under load a process writes the journal once per Redis round trip, not once per request."""
    import asyncio
    import uuid
    from datetime import datetime, timezone
    from decimal import Decimal

    from apps.spend.journal import SpendJournal
    from apps.spend.records import SpendRecord

    now = datetime.now(timezone.utc)
    records = [SpendRecord(
        request_id=uuid.uuid4().hex, key_id=None, key_hash="", team_id=None, organization_id=None, user_id=None,
        call_type="chat_completion", model="gpt-test", deployment_id=None, provider="openai",
        upstream_model="gpt-test", prompt_tokens=1, completion_tokens=1, cached_tokens=0, reasoning_tokens=0,
        usage_reported=True, cost=Decimal("0.01"), status="success", http_status=200, error_type="",
        is_stream=False, latency_ms=1, start_time=now, end_time=now) for _ in range(40)]
    writes = []

    async def put_all() -> None:
        journal = SpendJournal()
        client, pipe = journal._clients.get()
        if pipe is not None:  # one plain-TCP server: the pipelined connection (apps.core.redis_pipeline)
            call = pipe.call

            async def counted_call(*args):
                if args[0] == "HSET":
                    writes.append((len(args) - 2) // 2)
                return await call(*args)

            pipe.call = counted_call
            send_now = pipe.send_now

            def counted_send_now(*args):
                reply = send_now(*args)
                if reply is not None and args[0] == "HSET":
                    writes.append((len(args) - 2) // 2)
                return reply

            pipe.send_now = counted_send_now
        else:
            write = client.hset

            async def counted(*args, **kwargs):
                writes.append(len(kwargs.get("mapping") or {}))
                return await write(*args, **kwargs)

            client.hset = counted
        await asyncio.gather(*(journal.put_soon(record) for record in records[:30]))  # 30 requests at once
        await journal.put(records[30])  # then one alone
        await asyncio.gather(*(journal.put_soon(record) for record in records[31:]))
        assert {record.request_id for record in records} <= _journaled_ids()
        await journal.forget([record.request_id for record in records])

    ids_before = _journaled_ids()
    asyncio.run(put_all())
    # The first put goes at once (nothing in flight: it travels while its request builds the answer);
    # those queued meanwhile go together in the next write.
    assert writes == [1, 29, 1, 1, 8]
    assert _journaled_ids() == ids_before  # and forgotten again
