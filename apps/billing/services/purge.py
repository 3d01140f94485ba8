"""Retention: delivered usage events and old webhook receipts, deleted (the `billing.records_purge`
task)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from apps.billing.models import BillingEvent, BillingWebhook
from apps.billing.partitions import BILLING_EVENT_MONTHS
from apps.core.db import delete_in_chunks
from apps.core.partitions import month_partitions_drop_before


@dataclass
class PurgeResult:
    events: int = 0
    webhooks: int = 0


def billing_records_purge(*, now=None) -> PurgeResult:
    """Delete usage events delivered more than BILLING_SENT_RETENTION ago and webhook receipts
    older than BILLING_WEBHOOK_RETENTION: the outbox gets a row per request and would otherwise
    grow forever. Pending events and dead letters are never deleted here."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.BILLING_SENT_RETENTION)
    # On PostgreSQL, the months (by request time) whose every event was delivered before the cutoff
    # go as tables (apps.billing.partitions); the rest row by row.
    _, dropped = month_partitions_drop_before(BILLING_EVENT_MONTHS, cutoff=cutoff)
    sent = BillingEvent.objects.filter(status=BillingEvent.Status.SENT, sent_at__lt=cutoff)
    # A receipt only has to outlive Lago's redeliveries of the same webhook.
    handled = BillingWebhook.objects.filter(
        received_at__lt=now - timedelta(seconds=settings.BILLING_WEBHOOK_RETENTION)
    )
    return PurgeResult(events=dropped + delete_in_chunks(sent), webhooks=delete_in_chunks(handled))
