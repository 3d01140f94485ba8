"""On PostgreSQL, spend logs move into a table partitioned by month of start_time (apps.spend.partitions).

The migration rewrites the table (every row is copied): on a large installation run it in a quiet
hour. Django's model state does not change: the ORM still sees `id` as the primary key and
request_id as unique; in the database the primary key is (id, start_time) and request_id is unique
with start_time, as partitioning requires. SQLite keeps the plain table.
"""

import hashlib
from datetime import datetime, timezone

from django.db import migrations

TABLE = "spend_spendlog"
OLD = "spend_spendlog_unpartitioned"


def _freed(name: str) -> str:
    return "old_" + hashlib.md5(name.encode()).hexdigest()[:24]


def partition(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    from apps.spend.partitions import DEFAULT_SUFFIX, month_partitions_create, months_add, month_start

    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
        if cursor.fetchone()[0] == "p":
            return
        cursor.execute(f"LOCK TABLE {quote(TABLE)} IN ACCESS EXCLUSIVE MODE")
        # The indexes Django made (not those behind the primary key and the unique constraint),
        # to make again, by the same names, on the partitioned table.
        cursor.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = %s AND i.indexname NOT IN "
            "(SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s))",
            [TABLE, TABLE],
        )
        indexes = cursor.fetchall()
        cursor.execute("SELECT conname, contype FROM pg_constraint WHERE conrelid = to_regclass(%s)", [TABLE])
        constraints = cursor.fetchall()
        cursor.execute(f"ALTER TABLE {quote(TABLE)} RENAME TO {quote(OLD)}")
        for name, _ in indexes:
            cursor.execute(f"ALTER INDEX {quote(name)} RENAME TO {quote(_freed(name))}")
        for name, _ in constraints:
            cursor.execute(f"ALTER TABLE {quote(OLD)} RENAME CONSTRAINT {quote(name)} TO {quote(_freed(name))}")
        cursor.execute(
            f"CREATE TABLE {quote(TABLE)} (LIKE {quote(OLD)} INCLUDING DEFAULTS INCLUDING IDENTITY "
            f"INCLUDING STORAGE INCLUDING COMMENTS) PARTITION BY RANGE (start_time)"
        )
        primary = next((name for name, kind in constraints if kind == "p"), f"{TABLE}_pkey")
        unique = next((name for name, kind in constraints if kind == "u"), f"{TABLE}_request_id_key")
        cursor.execute(f"ALTER TABLE {quote(TABLE)} ADD CONSTRAINT {quote(primary)} PRIMARY KEY (id, start_time)")
        cursor.execute(f"ALTER TABLE {quote(TABLE)} ADD CONSTRAINT {quote(unique)} UNIQUE (request_id, start_time)")

        cursor.execute(f"SELECT min(start_time), max(start_time), max(id) FROM {quote(OLD)}")
        first, last, top_id = cursor.fetchone()
        now = datetime.now(timezone.utc)
        first = min(first or now, now)
        last = max(last or now, months_add(month_start(now), 2))
        month_partitions_create(cursor, TABLE, first, last, existing=set())
        cursor.execute(f"CREATE TABLE {quote(TABLE + DEFAULT_SUFFIX)} PARTITION OF {quote(TABLE)} DEFAULT")

        cursor.execute(f"INSERT INTO {quote(TABLE)} SELECT * FROM {quote(OLD)}")
        if top_id is not None:
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [TABLE, top_id])
        for name, definition in indexes:
            # "CREATE INDEX name ON public.spend_spendlog USING ..." (the definition read before the rename)
            cursor.execute(definition)
        cursor.execute(f"DROP TABLE {quote(OLD)}")


def unpartition(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
        if cursor.fetchone()[0] != "p":
            return
        cursor.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = %s AND i.indexname NOT IN "
            "(SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s))",
            [TABLE, TABLE],
        )
        indexes = cursor.fetchall()
        cursor.execute("SELECT conname, contype FROM pg_constraint WHERE conrelid = to_regclass(%s)", [TABLE])
        constraints = cursor.fetchall()
        cursor.execute(f"ALTER TABLE {quote(TABLE)} RENAME TO {quote(OLD)}")
        for name, _ in indexes:
            cursor.execute(f"ALTER INDEX {quote(name)} RENAME TO {quote(_freed(name))}")
        for name, _ in constraints:
            cursor.execute(f"ALTER TABLE {quote(OLD)} RENAME CONSTRAINT {quote(name)} TO {quote(_freed(name))}")
        cursor.execute(f"CREATE TABLE {quote(TABLE)} (LIKE {quote(OLD)} INCLUDING DEFAULTS INCLUDING IDENTITY "
                       f"INCLUDING STORAGE INCLUDING COMMENTS)")
        primary = next((name for name, kind in constraints if kind == "p"), f"{TABLE}_pkey")
        unique = next((name for name, kind in constraints if kind == "u"), f"{TABLE}_request_id_key")
        cursor.execute(f"INSERT INTO {quote(TABLE)} SELECT * FROM {quote(OLD)}")
        cursor.execute(f"SELECT max(id) FROM {quote(TABLE)}")
        top_id = cursor.fetchone()[0]
        if top_id is not None:
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [TABLE, top_id])
        cursor.execute(f"ALTER TABLE {quote(TABLE)} ADD CONSTRAINT {quote(primary)} PRIMARY KEY (id)")
        cursor.execute(f"ALTER TABLE {quote(TABLE)} ADD CONSTRAINT {quote(unique)} UNIQUE (request_id)")
        for name, definition in indexes:
            cursor.execute(definition.replace(" ON ONLY ", " ON "))  # a partitioned index's definition
        cursor.execute(f"DROP TABLE {quote(OLD)} CASCADE")


class Migration(migrations.Migration):

    dependencies = [
        ("spend", "0011_hourly_spend"),
    ]

    operations = [
        migrations.RunPython(partition, unpartition, elidable=False),
    ]
