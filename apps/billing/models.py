"""Usage billing through Lago: the outbox of usage events and the webhooks already received.

The outbox row of a billable request is written in the same transaction as its spend log
(apps.spend.services.spend_logs_write_batch calls billing_events_add), so a request is
either logged and queued for Lago, or neither. A Celery beat task delivers the rows.
"""

from django.db import models
from django.utils import timezone


class BillingEvent(models.Model):
    """One billable request, as a Lago event waiting for (or done with) delivery."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        DEAD = "dead", "Dead letter"

    # The request id: Lago's idempotency key, so a re-send can never bill twice.
    transaction_id = models.CharField(max_length=64, unique=True)
    external_subscription_id = models.CharField(max_length=255)
    external_customer_id = models.CharField(max_length=255, blank=True)
    entity_kind = models.CharField(max_length=16, help_text="organization or team (BILLING_ENTITY).")
    entity_id = models.CharField(max_length=64)
    code = models.CharField(max_length=255, help_text="The billable metric code (LAGO_API_EVENT_CODE).")
    timestamp = models.DateTimeField(
        help_text="When the request started; sent to Lago unchanged on every retry."
    )
    properties = models.JSONField(default=dict)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # Retries back off by this; `lago_flush` ignores it.
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # A sender's claim: no other sender takes the row before this passes (a killed
    # sender's rows come back when it does).
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="billing_event_due")]
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.transaction_id} ({self.status})"

    def lago_payload(self) -> dict:
        """The event as Lago's POST /api/v1/events/batch takes it."""
        return {
            "transaction_id": self.transaction_id,
            "external_subscription_id": self.external_subscription_id,
            "code": self.code,
            # Unix seconds with milliseconds: the same value on every retry.
            "timestamp": round(self.timestamp.timestamp(), 3),
            "properties": self.properties,
        }


class BillingWebhook(models.Model):
    """A Lago webhook already handled, by its X-Lago-Unique-Key and by the hash of what its
    signature covers: a redelivery, or a replay under another key, changes nothing."""

    unique_key = models.CharField(max_length=255, unique=True)
    # sha256 of the payload's canonical JSON (sorted keys): the same signed content is the same
    # hash whatever the unique key, the whitespace or the signing mode.
    body_sha256 = models.CharField(max_length=64, unique=True, null=True, blank=True)
    webhook_type = models.CharField(max_length=100)
    payload = models.JSONField(default=dict)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.webhook_type} {self.unique_key}"


class LagoWebhookCursor(models.Model):
    """The newest webhook applied per Lago object (a wallet's events, a wallet's transactions):
    an older one arriving later (a delay, a replay) is ignored."""

    object_key = models.CharField(max_length=300, unique=True, help_text='"wallet:<lago id>" and the like.')
    event_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.object_key} at {self.event_at.isoformat()}"
