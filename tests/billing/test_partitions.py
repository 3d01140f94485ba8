"""The billing outbox in month tables on PostgreSQL: a replayed record is still one event, and
retention drops a month only when every event in it was delivered before the cutoff."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.billing.models import BillingEvent
from apps.billing.partitions import BILLING_EVENT_MONTHS
from apps.billing.services import billing_events_add
from apps.billing.tasks import records_purge_task
from apps.core.partitions import month_partitions_create, month_start, months_add, partitioned, partitions_list
from tests.billing.helpers import record

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite keeps the plain table"),
]
TABLE = "billing_billingevent"


def month(moment) -> str:
    return f"{TABLE}_p{moment.year:04d}{moment.month:02d}"


def partition_of(transaction_id: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text FROM {TABLE} WHERE transaction_id = %s", [transaction_id])
        return cursor.fetchone()[0]


def test_events_land_in_their_requests_month_and_a_replay_is_one_event(billing, billed_org):
    assert partitioned(TABLE)
    now = timezone.now()
    batch = [record(organization=billed_org, start=now), record(organization=billed_org, start=now + timedelta(days=400))]
    assert billing_events_add(records=batch) == 2
    billing_events_add(records=batch)  # a replay (the journal's recovery, a retried batch)
    assert BillingEvent.objects.count() == 2
    assert partition_of(batch[0].request_id) == month(now)
    assert partition_of(batch[1].request_id) == f"{TABLE}_default"  # beyond the months made: waits there


def test_retention_keeps_a_month_holding_a_pending_event_or_a_dead_letter(settings):
    settings.BILLING_SENT_RETENTION = 30 * 86400
    this_month = month_start(timezone.now())
    with connection.cursor() as cursor:
        month_partitions_create(cursor, BILLING_EVENT_MONTHS, months_add(this_month, -5), months_add(this_month, -2),
                                set(partitions_list(TABLE)))

    def event(name: str, months_back: int, status: str) -> None:
        when = months_add(this_month, -months_back) + timedelta(days=3)
        BillingEvent.objects.create(
            transaction_id=name, external_subscription_id="sub", entity_kind="organization", entity_id="org",
            code="llm_usage", timestamp=when, status=status, created_at=when,
            sent_at=when + timedelta(minutes=1) if status == BillingEvent.Status.SENT else None,
        )

    event("all-sent-1", 5, BillingEvent.Status.SENT)
    event("all-sent-2", 5, BillingEvent.Status.SENT)
    event("sent-beside-pending", 4, BillingEvent.Status.SENT)
    event("pending", 4, BillingEvent.Status.PENDING)
    event("sent-beside-dead", 3, BillingEvent.Status.SENT)
    event("dead", 3, BillingEvent.Status.DEAD)

    assert records_purge_task.delay().get() == 4

    names = partitions_list(TABLE)
    assert month(months_add(this_month, -5)) not in names  # every event delivered: dropped as a table
    assert month(months_add(this_month, -4)) in names and month(months_add(this_month, -3)) in names
    assert sorted(BillingEvent.objects.values_list("transaction_id", flat=True)) == ["dead", "pending"]
