"""Spend logs in monthly partitions on PostgreSQL (declarative partitioning by start_time).

Inserts go to one small month's table and its indexes, however many billion rows the older months
hold; retention drops a month's table instead of deleting its rows one by one. The partitions of
the current month and the next GATEWAY_PARTITIONS_AHEAD months are made ahead by a beat task; a
row outside them (a clock far off) lands in the default partition and moves into its month's
table when that is made. SQLite keeps the plain table: every function here is a no-op there.

PostgreSQL wants the partition key in every unique constraint: the primary key is (id, start_time)
and request_id is unique with start_time. A record's replay carries its own start_time, so the
batch writer's idempotence on request_id holds.
"""

from __future__ import annotations

from datetime import datetime, timezone

from django.db import connections, transaction

DEFAULT_SUFFIX = "_default"


def _table() -> str:
    from apps.spend.models import SpendLog

    return SpendLog._meta.db_table


def month_start(moment: datetime) -> datetime:
    moment = moment.astimezone(timezone.utc)
    return datetime(moment.year, moment.month, 1, tzinfo=timezone.utc)


def months_add(start: datetime, months: int) -> datetime:
    index = start.year * 12 + start.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=timezone.utc)


def partition_name(table: str, start: datetime) -> str:
    return f"{table}_p{start.year:04d}{start.month:02d}"


def _literal(moment: datetime) -> str:
    return "'" + moment.strftime("%Y-%m-%d %H:%M:%S+00") + "'"


def partitioned(*, table: str | None = None, using: str = "default") -> bool:
    connection = connections[using]
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [table or _table()])
        row = cursor.fetchone()
    return bool(row and row[0] == "p")


def partitions_list(*, table: str | None = None, using: str = "default") -> list[str]:
    table = table or _table()
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s) ORDER BY c.relname",
            [table],
        )
        return [row[0] for row in cursor.fetchall()]


def month_partitions_create(cursor, table: str, first: datetime, last: datetime, existing: set[str]) -> list[str]:
    """Create the month tables from `first`'s month to `last`'s, those not in `existing`, moving any
    row of their months out of the default partition (which would otherwise refuse the new table)."""
    created = []
    quote = connections["default"].ops.quote_name
    default = quote(table + DEFAULT_SUFFIX)
    start = month_start(first)
    while start <= last:
        end = months_add(start, 1)
        name = partition_name(table, start)
        if name not in existing:
            bounds = f"FROM ({_literal(start)}) TO ({_literal(end)})"
            waiting = False
            if table + DEFAULT_SUFFIX in existing:
                cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {default} WHERE start_time >= {_literal(start)} "
                               f"AND start_time < {_literal(end)})")
                waiting = cursor.fetchone()[0]
            if waiting:
                cursor.execute(f"ALTER TABLE {quote(table)} DETACH PARTITION {default}")
                cursor.execute(f"CREATE TABLE {quote(name)} PARTITION OF {quote(table)} FOR VALUES {bounds}")
                cursor.execute(
                    f"WITH moved AS (DELETE FROM {default} WHERE start_time >= {_literal(start)} "
                    f"AND start_time < {_literal(end)} RETURNING *) INSERT INTO {quote(table)} SELECT * FROM moved"
                )
                cursor.execute(f"ALTER TABLE {quote(table)} ATTACH PARTITION {default} DEFAULT")
            else:
                cursor.execute(f"CREATE TABLE {quote(name)} PARTITION OF {quote(table)} FOR VALUES {bounds}")
            created.append(name)
        start = end
    return created


def spend_log_partitions_ensure(*, months_ahead: int = 2, now: datetime | None = None,
                                using: str = "default") -> list[str]:
    """Make the month tables from this month to `months_ahead` months on; the names made."""
    table = _table()
    if not partitioned(table=table, using=using):
        return []
    now = now or datetime.now(timezone.utc)
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        # Two beats at once: one waits (the lock conflicts with itself, not with inserts).
        cursor.execute(f"LOCK TABLE {connections[using].ops.quote_name(table)} IN SHARE UPDATE EXCLUSIVE MODE")
        existing = set(partitions_list(table=table, using=using))
        return month_partitions_create(cursor, table, now, months_add(month_start(now), months_ahead), existing)


def spend_log_partitions_drop_before(*, cutoff: datetime, dry_run: bool = False,
                                     using: str = "default") -> tuple[list[str], int]:
    """Drop the month tables that end at or before `cutoff` (whole months only): (names, rows)."""
    table = _table()
    if not partitioned(table=table, using=using):
        return [], 0
    quote = connections[using].ops.quote_name
    old = []
    for name in partitions_list(table=table, using=using):
        suffix = name[len(table) + 2:] if name.startswith(table + "_p") else ""
        if len(suffix) == 6 and suffix.isdigit():
            start = datetime(int(suffix[:4]), int(suffix[4:]), 1, tzinfo=timezone.utc)
            if months_add(start, 1) <= cutoff:
                old.append(name)
    rows = 0
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        for name in old:
            cursor.execute(f"SELECT count(*) FROM {quote(name)}")
            rows += cursor.fetchone()[0]
            if not dry_run:
                cursor.execute(f"DROP TABLE {quote(name)}")
    return old, rows
