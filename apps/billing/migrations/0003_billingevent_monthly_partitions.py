"""On PostgreSQL, the billing outbox moves into a table partitioned by month of the request's
timestamp (apps.billing.partitions): the primary key becomes (id, timestamp) and transaction_id is
unique with timestamp. Every row is copied once. SQLite keeps the plain table."""

from django.db import migrations

from apps.core.partitions import MonthlyTable, monthly_partitioning

BILLING_EVENT = MonthlyTable(table="billing_billingevent", column="timestamp", unique=("transaction_id",))


class Migration(migrations.Migration):

    dependencies = [("billing", "0002_webhook_replay_guards")]

    operations = [monthly_partitioning(BILLING_EVENT)]
