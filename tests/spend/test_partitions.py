"""Spend logs in monthly partitions on PostgreSQL: where rows land, months made ahead, retention by
dropping a month, and the migration that moves an existing table's rows in (and back out)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db import connection

from apps.spend.records import SpendRecord

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite keeps the plain table"),
]
TABLE = "spend_spendlog"


def record(key, when: datetime, request_id: str | None = None) -> SpendRecord:
    return SpendRecord(
        request_id=request_id or uuid.uuid4().hex, key_id=key.pk, key_hash=key.token_hash, team_id=None,
        organization_id=None, user_id=None, call_type="chat_completion", model="gpt-test", deployment_id=None,
        provider="openai", upstream_model="gpt-test", prompt_tokens=10, completion_tokens=5, cached_tokens=0,
        reasoning_tokens=0, usage_reported=True, cost=Decimal("0.25"), status="success", http_status=200,
        error_type="", is_stream=False, latency_ms=10, start_time=when, end_time=when,
    )


def partition_of(request_id: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text FROM {TABLE} WHERE request_id = %s", [request_id])
        return cursor.fetchone()[0]


def month(moment: datetime) -> str:
    return f"{TABLE}_p{moment.year:04d}{moment.month:02d}"


def test_logs_land_in_their_months_table_and_a_replay_stays_one_row(make_key):
    from apps.spend.models import SpendLog
    from apps.core.partitions import months_add, month_start, partitioned, partitions_list
    from apps.spend.services import spend_logs_write_batch

    assert partitioned(TABLE)
    now = datetime.now(timezone.utc)
    names = partitions_list(TABLE)
    for ahead in range(3):  # this month and two ahead, made by the migration
        assert month(months_add(month_start(now), ahead)) in names
    assert f"{TABLE}_default" in names

    key, _ = make_key()
    batch = [record(key, now), record(key, now - timedelta(days=40)), record(key, now + timedelta(days=400))]
    assert spend_logs_write_batch(records=batch) == 3
    assert spend_logs_write_batch(records=batch) == 0  # replayed: idempotent on request_id
    assert SpendLog.objects.filter(key_id=key.pk).count() == 3
    assert partition_of(batch[0].request_id) == month(now)
    assert partition_of(batch[2].request_id) == f"{TABLE}_default"  # beyond the months made: waits there
    # An older month's table exists only back to the oldest row the migration found; else the default.
    expected = month(batch[1].start_time) if month(batch[1].start_time) in names else f"{TABLE}_default"
    assert partition_of(batch[1].request_id) == expected

    # The ORM still sees one table: by pk, by request_id, ordered, updated across months.
    log = SpendLog.objects.get(request_id=batch[0].request_id)
    assert SpendLog.objects.get(pk=log.pk).request_id == batch[0].request_id
    SpendLog.objects.filter(pk=log.pk).update(start_time=now - timedelta(days=40))  # moves to another month
    assert SpendLog.objects.get(pk=log.pk).start_time == now - timedelta(days=40)


def test_months_are_made_ahead_and_a_waiting_row_moves_into_its_month(make_key):
    from apps.spend.models import SpendLog
    from apps.core.partitions import months_add, month_start, partitions_list
    from apps.spend.partitions import spend_log_partitions_ensure
    from apps.spend.services import spend_logs_write_batch

    now = datetime.now(timezone.utc)
    far = months_add(month_start(now), 5) + timedelta(days=3)
    key, _ = make_key()
    waiting = record(key, far)
    spend_logs_write_batch(records=[waiting])
    assert partition_of(waiting.request_id) == f"{TABLE}_default"

    made = spend_log_partitions_ensure(months_ahead=6)
    assert month(far) in made and month(months_add(month_start(now), 6)) in made
    assert partition_of(waiting.request_id) == month(far)
    assert SpendLog.objects.filter(request_id=waiting.request_id).count() == 1
    assert spend_log_partitions_ensure(months_ahead=6) == []  # nothing left to make
    assert month(far) in partitions_list(TABLE)


def test_retention_drops_whole_old_months_and_deletes_the_rest(make_key):
    from apps.spend.models import SpendLog
    from apps.core.partitions import months_add, month_start, partitions_list
    from apps.spend.partitions import spend_log_partitions_ensure
    from apps.spend.services import spend_logs_purge, spend_logs_write_batch

    now = datetime.now(timezone.utc)
    this_month = month_start(now)
    # Months three and two back exist only if made: make them as an older installation would have.
    from apps.core.partitions import month_partitions_create
    from apps.spend.partitions import SPEND_LOG_MONTHS

    with connection.cursor() as cursor:
        month_partitions_create(cursor, SPEND_LOG_MONTHS, months_add(this_month, -3), months_add(this_month, -1),
                                set(partitions_list(TABLE)))
    key, _ = make_key()
    old = [record(key, months_add(this_month, -3) + timedelta(days=d)) for d in (1, 10)]
    middle = [record(key, months_add(this_month, -2) + timedelta(days=d)) for d in (1, 20)]
    recent = [record(key, now)]
    spend_logs_write_batch(records=old + middle + recent)

    cutoff = months_add(this_month, -2) + timedelta(days=10)  # all of month -3, half of month -2
    assert spend_logs_purge(older_than=cutoff, dry_run=True) == 3
    assert month(old[0].start_time) in partitions_list(TABLE)
    assert spend_logs_purge(older_than=cutoff) == 3
    names = partitions_list(TABLE)
    assert month(old[0].start_time) not in names  # dropped as a table
    assert month(middle[0].start_time) in names  # only its old rows deleted
    left = set(SpendLog.objects.filter(key_id=key.pk).values_list("request_id", flat=True))
    assert left == {middle[1].request_id, recent[0].request_id}
    spend_log_partitions_ensure()


def test_the_migration_moves_an_existing_tables_rows_in_and_back_out(make_key):
    from django.db.migrations.executor import MigrationExecutor

    from apps.spend.models import SpendLog
    from apps.core.partitions import partitioned, partitions_list
    from apps.spend.services import spend_logs_write_batch

    key, _ = make_key()
    now = datetime.now(timezone.utc)
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("spend")
    try:
        executor.migrate([("spend", "0011_hourly_spend")])
        assert not partitioned(TABLE)
        rows = [record(key, now - timedelta(days=d)) for d in (0, 35, 70)]
        spend_logs_write_batch(records=rows)
        top = SpendLog.objects.order_by("-id").values_list("id", flat=True).first()

        executor = MigrationExecutor(connection)
        executor.migrate(latest)
        assert partitioned(TABLE)
        assert set(SpendLog.objects.values_list("request_id", flat=True)) >= {r.request_id for r in rows}
        assert month(now - timedelta(days=70)) in partitions_list(TABLE)  # months back to the oldest row
        assert partition_of(rows[2].request_id) == month(rows[2].start_time)
        fresh = record(key, now)
        spend_logs_write_batch(records=[fresh])
        assert SpendLog.objects.get(request_id=fresh.request_id).id > top  # the id sequence goes on
        with connection.cursor() as cursor:
            cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [TABLE])
            indexes = {row[0] for row in cursor.fetchall()}
        assert {"spendlog_end_user_idx", "spendlog_unpriced_idx"} <= indexes

        executor = MigrationExecutor(connection)
        executor.migrate([("spend", "0011_hourly_spend")])
        assert not partitioned(TABLE)
        assert SpendLog.objects.filter(request_id__in=[r.request_id for r in rows + [fresh]]).count() == 4
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)
    assert partitioned(TABLE)
