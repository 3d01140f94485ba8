"""Append-mostly tables in monthly partitions on PostgreSQL (declarative partitioning by a timestamp).

Inserts go to one small month's table and its indexes, however many rows the older months hold;
retention drops a month's table instead of deleting its rows one by one. The tables are the spend
logs (by start_time), the billing outbox (by the request's timestamp) and the audit log (by
created_at); each app registers its own in AppConfig.ready(). The current month and the next
GATEWAY_PARTITIONS_AHEAD months are made ahead by a beat task; a row outside them (a clock far off)
lands in the default partition and moves into its month's table when that is made. SQLite keeps
plain tables: every function here is a no-op there.

PostgreSQL wants the partition key in every unique constraint: the primary key becomes (id, key)
and a column unique in the model becomes unique with the key. The ORM's model state is unchanged
(it still sees `id` as the primary key). A row's replay carries its own key value, so inserts that
are idempotent on such a column stay idempotent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone

from django.db import connections, transaction

DEFAULT_SUFFIX = "_default"


@dataclass(frozen=True)
class MonthlyTable:
    table: str
    column: str  # the partition key: a timestamp with time zone
    unique: tuple[str, ...] = ()  # the columns unique alone in the model: unique with the key here
    # SQL over one month's rows, true for a row retention must keep (it refers to %(cutoff)s): such a
    # month is not dropped, its other rows are deleted by the caller. Empty: age alone decides.
    keep_when: str = ""


_REGISTERED: dict[str, MonthlyTable] = {}


def monthly_table_register(spec: MonthlyTable) -> None:
    _REGISTERED[spec.table] = spec


def monthly_tables() -> list[MonthlyTable]:
    return list(_REGISTERED.values())


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


def partitioned(table: str, *, using: str = "default") -> bool:
    connection = connections[using]
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [table])
        row = cursor.fetchone()
    return bool(row and row[0] == "p")


def partitions_list(table: str, *, using: str = "default") -> list[str]:
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s) ORDER BY c.relname",
            [table],
        )
        return [row[0] for row in cursor.fetchall()]


def month_partitions_create(cursor, spec: MonthlyTable, first: datetime, last: datetime,
                            existing: set[str]) -> list[str]:
    """Create the month tables from `first`'s month to `last`'s, those not in `existing`, moving any
    row of their months out of the default partition (which would otherwise refuse the new table)."""
    created = []
    quote = connections["default"].ops.quote_name  # PostgreSQL's quoting, whichever connection
    table, column = quote(spec.table), quote(spec.column)
    default = quote(spec.table + DEFAULT_SUFFIX)
    start = month_start(first)
    while start <= last:
        end = months_add(start, 1)
        name = partition_name(spec.table, start)
        if name not in existing:
            bounds = f"FROM ({_literal(start)}) TO ({_literal(end)})"
            in_month = f"{column} >= {_literal(start)} AND {column} < {_literal(end)}"
            waiting = False
            if spec.table + DEFAULT_SUFFIX in existing:
                cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {default} WHERE {in_month})")
                waiting = cursor.fetchone()[0]
            if waiting:
                cursor.execute(f"ALTER TABLE {table} DETACH PARTITION {default}")
                cursor.execute(f"CREATE TABLE {quote(name)} PARTITION OF {table} FOR VALUES {bounds}")
                cursor.execute(f"WITH moved AS (DELETE FROM {default} WHERE {in_month} RETURNING *) "
                               f"INSERT INTO {table} SELECT * FROM moved")
                cursor.execute(f"ALTER TABLE {table} ATTACH PARTITION {default} DEFAULT")
            else:
                cursor.execute(f"CREATE TABLE {quote(name)} PARTITION OF {table} FOR VALUES {bounds}")
            created.append(name)
        start = end
    return created


def month_partitions_ensure(spec: MonthlyTable, *, months_ahead: int = 2, now: datetime | None = None,
                            using: str = "default") -> list[str]:
    """Make `spec`'s month tables from this month to `months_ahead` months on; the names made."""
    if not partitioned(spec.table, using=using):
        return []
    now = now or datetime.now(timezone.utc)
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        # Two beats at once: one waits (the lock conflicts with itself, not with inserts).
        table = connections[using].ops.quote_name(spec.table)
        cursor.execute(f"LOCK TABLE {table} IN SHARE UPDATE EXCLUSIVE MODE")
        existing = set(partitions_list(spec.table, using=using))
        last = months_add(month_start(now), months_ahead)
        return month_partitions_create(cursor, spec, now, last, existing)


def all_month_partitions_ensure(*, months_ahead: int = 2, now: datetime | None = None) -> list[str]:
    made = []
    for spec in monthly_tables():
        made += month_partitions_ensure(spec, months_ahead=months_ahead, now=now)
    return made


def month_partitions_drop_before(spec: MonthlyTable, *, cutoff: datetime, dry_run: bool = False,
                                 using: str = "default") -> tuple[list[str], int]:
    """Drop the month tables that end at or before `cutoff` (whole months only) and hold no row
    `spec.keep_when` keeps: (names, rows they held)."""
    if not partitioned(spec.table, using=using):
        return [], 0
    quote = connections[using].ops.quote_name
    old = []
    for name in partitions_list(spec.table, using=using):
        suffix = name[len(spec.table) + 2:] if name.startswith(spec.table + "_p") else ""
        if len(suffix) == 6 and suffix.isdigit():
            start = datetime(int(suffix[:4]), int(suffix[4:]), 1, tzinfo=timezone.utc)
            if months_add(start, 1) <= cutoff:
                old.append(name)
    dropped, rows = [], 0
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        for name in old:
            if spec.keep_when:
                # Locked first, so no row it must keep arrives between the check and the drop.
                cursor.execute(f"LOCK TABLE {quote(name)} IN ACCESS EXCLUSIVE MODE")
                cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {quote(name)} WHERE {spec.keep_when})",
                               {"cutoff": cutoff})
                if cursor.fetchone()[0]:
                    continue
            cursor.execute(f"SELECT count(*) FROM {quote(name)}")
            rows += cursor.fetchone()[0]
            dropped.append(name)
            if not dry_run:
                cursor.execute(f"DROP TABLE {quote(name)}")
    return dropped, rows


# The migrations that move an existing table into month partitions, and back.

# The new table is the old one's columns, defaults, identity, storage, comments and CHECK constraints.
_LIKE = ("LIKE %s INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMMENTS "
         "INCLUDING CONSTRAINTS")


def _freed(name: str) -> str:
    return "old_" + hashlib.md5(name.encode()).hexdigest()[:24]


def _set_aside(cursor, quote, table: str, old: str) -> tuple[list, list]:
    """Rename `table` to `old`, freeing the names of its indexes and of the constraints an index is
    behind, for the new table; returns (the indexes Django made as (name, definition), the primary
    key and unique constraints as (name, kind, columns)). CHECK constraints are copied by LIKE."""
    # The indexes not behind a constraint, to make again by the same names on the new table.
    cursor.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = %s AND i.indexname NOT IN "
        "(SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s))",
        [table, table],
    )
    indexes = cursor.fetchall()
    cursor.execute(
        "SELECT c.conname, c.contype, array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i) "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i) "
        "FROM pg_constraint c WHERE c.conrelid = to_regclass(%s) AND c.contype IN ('p', 'u')",
        [table],
    )
    constraints = cursor.fetchall()
    cursor.execute(f"ALTER TABLE {quote(table)} RENAME TO {quote(old)}")
    for name, _ in indexes:
        cursor.execute(f"ALTER INDEX {quote(name)} RENAME TO {quote(_freed(name))}")
    for name, _, _ in constraints:
        cursor.execute(f"ALTER TABLE {quote(old)} RENAME CONSTRAINT {quote(name)} TO {quote(_freed(name))}")
    return indexes, constraints


def _constraint_names(spec: MonthlyTable, constraints: list) -> tuple[str, dict[str, str]]:
    """The primary key's name, and each unique column's constraint name, as they were."""
    primary = next((name for name, kind, _ in constraints if kind == "p"), f"{spec.table}_pkey")
    unique = {}
    for column in spec.unique:
        named = (name for name, kind, columns in constraints if kind == "u" and columns[0] == column)
        unique[column] = next(named, f"{spec.table}_{column}_key")
    return primary, unique


def table_partition(connection, spec: MonthlyTable) -> None:
    """Move `spec.table` into month partitions (a migration's forward step; PostgreSQL only). Every
    row is copied once: months back to the oldest row, two ahead, and the default partition."""
    if connection.vendor != "postgresql" or partitioned(spec.table, using=connection.alias):
        return
    quote = connection.ops.quote_name
    old = spec.table + "_unpartitioned"
    with connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {quote(spec.table)} IN ACCESS EXCLUSIVE MODE")
        indexes, constraints = _set_aside(cursor, quote, spec.table, old)
        cursor.execute(f"CREATE TABLE {quote(spec.table)} ({_LIKE % quote(old)}) "
                       f"PARTITION BY RANGE ({quote(spec.column)})")
        primary, unique = _constraint_names(spec, constraints)
        cursor.execute(f"ALTER TABLE {quote(spec.table)} ADD CONSTRAINT {quote(primary)} "
                       f"PRIMARY KEY (id, {quote(spec.column)})")
        for column, name in unique.items():
            cursor.execute(f"ALTER TABLE {quote(spec.table)} ADD CONSTRAINT {quote(name)} "
                           f"UNIQUE ({quote(column)}, {quote(spec.column)})")

        cursor.execute(f"SELECT min({quote(spec.column)}), max({quote(spec.column)}) FROM {quote(old)}")
        first, last = cursor.fetchone()
        now = datetime.now(timezone.utc)
        first = min(first or now, now)
        last = max(last or now, months_add(month_start(now), 2))
        month_partitions_create(cursor, spec, first, last, existing=set())
        default = quote(spec.table + DEFAULT_SUFFIX)
        cursor.execute(f"CREATE TABLE {default} PARTITION OF {quote(spec.table)} DEFAULT")
        _rows_move(cursor, quote, old, spec.table)
        for _, definition in indexes:
            cursor.execute(definition)  # "CREATE INDEX name ON public.<table> USING ..." (read before)
        cursor.execute(f"DROP TABLE {quote(old)}")


def table_unpartition(connection, spec: MonthlyTable) -> None:
    """Back to one plain table (the migration's reverse step)."""
    if connection.vendor != "postgresql" or not partitioned(spec.table, using=connection.alias):
        return
    quote = connection.ops.quote_name
    old = spec.table + "_partitioned"
    with connection.cursor() as cursor:
        indexes, constraints = _set_aside(cursor, quote, spec.table, old)
        cursor.execute(f"CREATE TABLE {quote(spec.table)} ({_LIKE % quote(old)})")
        primary, unique = _constraint_names(spec, constraints)
        _rows_move(cursor, quote, old, spec.table)
        cursor.execute(f"ALTER TABLE {quote(spec.table)} ADD CONSTRAINT {quote(primary)} PRIMARY KEY (id)")
        for column, name in unique.items():
            cursor.execute(f"ALTER TABLE {quote(spec.table)} ADD CONSTRAINT {quote(name)} "
                           f"UNIQUE ({quote(column)})")
        for _, definition in indexes:
            cursor.execute(definition.replace(" ON ONLY ", " ON "))  # a partitioned index's definition
        cursor.execute(f"DROP TABLE {quote(old)} CASCADE")


def _rows_move(cursor, quote, source: str, target: str) -> None:
    """Copy every row, and carry the id sequence on past the highest id copied."""
    cursor.execute(f"INSERT INTO {quote(target)} SELECT * FROM {quote(source)}")
    cursor.execute(f"SELECT max(id) FROM {quote(target)}")
    top_id = cursor.fetchone()[0]
    if top_id is not None:
        cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [target, top_id])


def monthly_partitioning(spec: MonthlyTable):
    """The migration operation that moves `spec.table` into month partitions (and back, reversed)."""
    from django.db import migrations

    return migrations.RunPython(lambda apps, schema_editor: table_partition(schema_editor.connection, spec),
                                lambda apps, schema_editor: table_unpartition(schema_editor.connection, spec),
                                elidable=False)
