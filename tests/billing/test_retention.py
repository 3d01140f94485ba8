"""The billing outbox and webhook receipts do not grow forever: delivered events and old
receipts are purged by a beat task; pending events and dead letters are kept."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.billing.models import BillingEvent, BillingWebhook
from apps.billing.tasks import records_purge_task

pytestmark = pytest.mark.django_db


def event(name: str, status: str, *, age_days: float) -> None:
    when = timezone.now() - timedelta(days=age_days)
    BillingEvent.objects.create(
        transaction_id=name, external_subscription_id="sub", entity_kind="organization", entity_id="org",
        code="llm_usage", timestamp=when, status=status, created_at=when,
        sent_at=when if status == BillingEvent.Status.SENT else None,
    )


def test_delivered_events_and_old_webhook_receipts_are_purged():
    event("sent-old", BillingEvent.Status.SENT, age_days=31)
    event("sent-recent", BillingEvent.Status.SENT, age_days=29)
    event("pending-old", BillingEvent.Status.PENDING, age_days=90)
    event("dead-old", BillingEvent.Status.DEAD, age_days=90)
    for name, age in (("old", 31), ("recent", 1)):
        BillingWebhook.objects.create(unique_key=name, webhook_type="wallet.depleted_ongoing_balance",
                                      received_at=timezone.now() - timedelta(days=age))

    assert records_purge_task.delay().get() == 2

    assert sorted(BillingEvent.objects.values_list("transaction_id", flat=True)) == [
        "dead-old", "pending-old", "sent-recent"
    ]
    assert list(BillingWebhook.objects.values_list("unique_key", flat=True)) == ["recent"]
