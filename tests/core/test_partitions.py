"""Month tables on PostgreSQL for the billing outbox and the audit log (the spend logs' are in
tests/spend/test_partitions.py): the beat task makes every table's months ahead, the audit purge
drops whole months, and each migration moves an existing table's rows in and back out."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from apps.core.partitions import (
    month_partitions_create,
    month_start,
    monthly_tables,
    months_add,
    partitioned,
    partitions_list,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite keeps plain tables"),
]


def month(table: str, moment) -> str:
    return f"{table}_p{moment.year:04d}{moment.month:02d}"


def test_the_beat_task_makes_every_tables_months_ahead(settings):
    from apps.core.tasks import month_partitions_ensure_task

    assert {spec.table for spec in monthly_tables()} == {"spend_spendlog", "billing_billingevent", "core_auditlog"}
    settings.GATEWAY_PARTITIONS_AHEAD = 4
    assert month_partitions_ensure_task.delay().get() == 3 * 2  # months 3 and 4 ahead, for each table
    far = months_add(month_start(timezone.now()), 4)
    for spec in monthly_tables():
        assert month(spec.table, far) in partitions_list(spec.table)
    assert month_partitions_ensure_task.delay().get() == 0


def test_the_audit_purge_drops_whole_old_months_and_deletes_the_rest():
    from apps.core.audit import AUDIT_LOG_MONTHS, audit_logs_purge
    from apps.core.models import AuditLog

    this_month = month_start(timezone.now())
    with connection.cursor() as cursor:
        month_partitions_create(cursor, AUDIT_LOG_MONTHS, months_add(this_month, -3), months_add(this_month, -2),
                                set(partitions_list("core_auditlog")))
    entries = {}
    for name, when in (("old", months_add(this_month, -3) + timedelta(days=2)),
                       ("cut-month-old", months_add(this_month, -2) + timedelta(days=1)),
                       ("cut-month-new", months_add(this_month, -2) + timedelta(days=20)),
                       ("now", timezone.now())):
        entry = AuditLog.objects.create(actor="system", via="system", action="create", object_type="teams.team",
                                        object_id=name)
        AuditLog.objects.filter(pk=entry.pk).update(created_at=when)  # auto_now_add: dated afterwards
        entries[name] = when

    assert audit_logs_purge(older_than=months_add(this_month, -2) + timedelta(days=10)) == 2
    assert month("core_auditlog", entries["old"]) not in partitions_list("core_auditlog")
    assert sorted(AuditLog.objects.values_list("object_id", flat=True)) == ["cut-month-new", "now"]


def _billing_rows(now):
    from apps.billing.models import BillingEvent

    for days in (0, 35, 70):
        when = now - timedelta(days=days)
        BillingEvent.objects.create(transaction_id=f"t-{days}", external_subscription_id="sub",
                                    entity_kind="organization", entity_id="org", code="llm_usage", timestamp=when)
    return "billing_billingevent", "transaction_id", ["t-0", "t-35", "t-70"]


def _audit_rows(now):
    from apps.core.models import AuditLog

    for days in (0, 35, 70):
        entry = AuditLog.objects.create(actor="system", via="system", action="create", object_type="teams.team",
                                        object_id=f"a-{days}")
        AuditLog.objects.filter(pk=entry.pk).update(created_at=now - timedelta(days=days))
    return "core_auditlog", "object_id", ["a-0", "a-35", "a-70"]


@pytest.mark.parametrize("app, before, rows", [("billing", "0002_webhook_replay_guards", _billing_rows),
                                               ("core", "0001_initial", _audit_rows)])
def test_the_migration_moves_an_existing_tables_rows_in_and_back_out(app, before, rows):
    now = timezone.now()
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes(app)
    try:
        executor.migrate([(app, before)])
        table, name_column, names = rows(now)
        assert not partitioned(table)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT max(id) FROM {table}")
            top = cursor.fetchone()[0]

        MigrationExecutor(connection).migrate(latest)
        assert partitioned(table)
        assert month(table, now - timedelta(days=70)) in partitions_list(table)  # back to the oldest row
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {name_column}, tableoid::regclass::text FROM {table} ORDER BY {name_column}")
            placed = dict(cursor.fetchall())
            assert set(placed) == set(names)
            assert placed[names[2]] == month(table, now - timedelta(days=70))
            # The id sequence goes on; the indexes Django made are there again.
            cursor.execute(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id'))")
            assert cursor.fetchone()[0] > top
            cursor.execute("SELECT count(*) FROM pg_indexes WHERE tablename = %s", [table])
            assert cursor.fetchone()[0] >= 2

        MigrationExecutor(connection).migrate([(app, before)])
        assert not partitioned(table)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {table}")
            assert cursor.fetchone()[0] == 3
    finally:
        MigrationExecutor(connection).migrate(latest)
    assert partitioned(table)
