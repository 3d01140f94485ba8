"""On PostgreSQL, spend logs move into a table partitioned by month of start_time (apps.spend.partitions).

The migration rewrites the table (every row is copied): on a large installation run it in a quiet
hour. Django's model state does not change: the ORM still sees `id` as the primary key and
request_id as unique; in the database the primary key is (id, start_time) and request_id is unique
with start_time, as partitioning requires. SQLite keeps the plain table.
"""

from django.db import migrations

from apps.core.partitions import MonthlyTable, monthly_partitioning

# Spelled here, not imported: a migration keeps the table it was written for.
SPEND_LOG = MonthlyTable(table="spend_spendlog", column="start_time", unique=("request_id",))


class Migration(migrations.Migration):

    dependencies = [("spend", "0011_hourly_spend")]

    operations = [monthly_partitioning(SPEND_LOG)]
