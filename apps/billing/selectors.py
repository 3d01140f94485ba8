"""Reads for usage billing: which entities are billed as which Lago customer, and the outbox's state."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Count, Max, Min, Q

from apps.billing.models import BillingEvent
from apps.teams.models import Organization, Team


@dataclass(frozen=True, slots=True)
class BillingEntity:
    kind: str  # organization or team
    id: str  # str(uuid)
    name: str
    customer_id: str  # Lago external_customer_id ("" if none)
    subscription_id: str  # Lago external_subscription_id ("" if none)


def _model(kind: str):
    return Organization if kind == "organization" else Team


def billing_entities_list(
    *, kind: str | None = None, with_customer: bool = False, customer_id: str | None = None
) -> list[BillingEntity]:
    """Entities of the billed kind (BILLING_ENTITY) that have a Lago customer or subscription id."""
    kind = kind or settings.BILLING_ENTITY
    model = _model(kind)
    queryset = model.objects.exclude(lago_external_customer_id="", lago_external_subscription_id="")
    if with_customer:
        queryset = queryset.exclude(lago_external_customer_id="")
    if customer_id is not None:
        queryset = queryset.filter(lago_external_customer_id=customer_id)
    if kind == "team":
        queryset = queryset.select_related("organization")
    entities = []
    for entity in queryset.order_by("pk"):
        name = entity.name if kind == "organization" else f"{entity.organization.name} / {entity.alias}"
        entities.append(
            BillingEntity(
                kind,
                str(entity.pk),
                name,
                entity.lago_external_customer_id,
                entity.lago_external_subscription_id,
            )
        )
    return entities


def billing_subscriptions_get(*, kind: str, entity_ids: set[str]) -> dict[str, tuple[str, str]]:
    """{str(entity id): (customer id, subscription id)} for the given entities that have a subscription id."""
    if not entity_ids:
        return {}
    rows = (
        _model(kind)
        .objects.filter(pk__in=[uuid.UUID(str(i)) for i in entity_ids])
        .exclude(lago_external_subscription_id="")
        .values_list("pk", "lago_external_customer_id", "lago_external_subscription_id")
    )
    return {str(pk): (customer, subscription) for pk, customer, subscription in rows}


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    pending: int
    due: int
    claimed: int
    oldest_pending: datetime | None
    sent: int
    last_success: datetime | None
    dead: int
    dead_letters: list[BillingEvent]


def billing_outbox_status(*, now: datetime, dead_letters: int = 10) -> OutboxStatus:
    pending = Q(status=BillingEvent.Status.PENDING)
    totals = BillingEvent.objects.aggregate(
        pending=Count("pk", filter=pending),
        due=Count("pk", filter=pending & Q(next_attempt_at__lte=now)),
        claimed=Count("pk", filter=pending & Q(claimed_until__gt=now)),
        oldest_pending=Min("created_at", filter=pending),
        sent=Count("pk", filter=Q(status=BillingEvent.Status.SENT)),
        last_success=Max("sent_at"),
        dead=Count("pk", filter=Q(status=BillingEvent.Status.DEAD)),
    )
    letters = list(
        BillingEvent.objects.filter(status=BillingEvent.Status.DEAD).order_by("-id")[:dead_letters]
    )
    return OutboxStatus(dead_letters=letters, **totals)
