"""On PostgreSQL, the audit log moves into a table partitioned by month of created_at
(apps.core.partitions): the primary key becomes (id, created_at). Every row is copied once. SQLite
keeps the plain table."""

from django.db import migrations

from apps.core.partitions import MonthlyTable, table_partition, table_unpartition

AUDIT_LOG = MonthlyTable(table="core_auditlog", column="created_at")


def partition(apps, schema_editor):
    table_partition(schema_editor.connection, AUDIT_LOG)


def unpartition(apps, schema_editor):
    table_unpartition(schema_editor.connection, AUDIT_LOG)


class Migration(migrations.Migration):

    dependencies = [
        ("core", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(partition, unpartition, elidable=False),
    ]
