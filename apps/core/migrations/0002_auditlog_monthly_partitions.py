"""On PostgreSQL, the audit log moves into a table partitioned by month of created_at
(apps.core.partitions): the primary key becomes (id, created_at). Every row is copied once. SQLite
keeps the plain table."""

from django.db import migrations

from apps.core.partitions import MonthlyTable, monthly_partitioning

AUDIT_LOG = MonthlyTable(table="core_auditlog", column="created_at")


class Migration(migrations.Migration):

    dependencies = [("core", "0001_initial")]

    operations = [monthly_partitioning(AUDIT_LOG)]
