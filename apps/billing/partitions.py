"""The billing outbox in monthly partitions on PostgreSQL, by the request's timestamp
(apps.core.partitions). transaction_id is unique with the timestamp there: a replayed record carries
its request's start time, so the outbox insert stays idempotent. A month is dropped whole only when
every event in it was delivered before the retention cutoff; pending events and dead letters keep it.
"""

from apps.core.partitions import MonthlyTable

BILLING_EVENT_MONTHS = MonthlyTable(
    table="billing_billingevent", column="timestamp", unique=("transaction_id",),
    keep_when="status <> 'sent' OR sent_at IS NULL OR sent_at >= %(cutoff)s",
)
