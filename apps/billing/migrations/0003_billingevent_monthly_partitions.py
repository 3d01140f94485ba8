"""On PostgreSQL, the billing outbox moves into a table partitioned by month of the request's
timestamp (apps.billing.partitions): the primary key becomes (id, timestamp) and transaction_id is
unique with timestamp. Every row is copied once. SQLite keeps the plain table."""

from django.db import migrations

from apps.core.partitions import MonthlyTable, table_partition, table_unpartition

BILLING_EVENT = MonthlyTable(table="billing_billingevent", column="timestamp", unique=("transaction_id",))


def partition(apps, schema_editor):
    table_partition(schema_editor.connection, BILLING_EVENT)


def unpartition(apps, schema_editor):
    table_unpartition(schema_editor.connection, BILLING_EVENT)


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0002_webhook_replay_guards"),
    ]

    operations = [
        migrations.RunPython(partition, unpartition, elidable=False),
    ]
