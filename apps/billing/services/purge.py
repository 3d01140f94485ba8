"""Retention: delivered usage events and old webhook receipts, deleted (the `billing.records_purge`
task)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from apps.billing.models import BillingEvent, BillingWebhook
from apps.core.db import delete_in_chunks


@dataclass
class PurgeResult:
    events: int = 0
    webhooks: int = 0


def billing_records_purge(*, now=None) -> PurgeResult:
    """Delete usage events delivered more than BILLING_SENT_RETENTION ago and webhook receipts
    older than BILLING_WEBHOOK_RETENTION: the outbox gets a row per request and would otherwise
    grow forever. Pending events and dead letters are never deleted here."""
    now = now or timezone.now()
    sent = BillingEvent.objects.filter(
        status=BillingEvent.Status.SENT, sent_at__lt=now - timedelta(seconds=settings.BILLING_SENT_RETENTION)
    )
    # A receipt only has to outlive Lago's redeliveries of the same webhook.
    handled = BillingWebhook.objects.filter(
        received_at__lt=now - timedelta(seconds=settings.BILLING_WEBHOOK_RETENTION)
    )
    return PurgeResult(events=delete_in_chunks(sent), webhooks=delete_in_chunks(handled))
