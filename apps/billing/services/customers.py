"""Lago customer sync: the billed entities' customers and subscriptions, created or updated in
Lago (`manage.py lago_sync_customers`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from apps.billing.lago import LagoClient, LagoError
from apps.billing.selectors import billing_entities_list


@dataclass
class SyncReport:
    lines: list[str] = field(default_factory=list)
    errors: int = 0


def lago_customers_sync(*, dry_run: bool = False, client: LagoClient | None = None) -> SyncReport:
    """Create or update in Lago the customer and subscription of every billed entity (those with a
    lago_external_customer_id / lago_external_subscription_id). New subscriptions are on LAGO_PLAN_CODE."""
    report = SyncReport()
    own_client = client is None
    client = client or LagoClient()
    verb = "would be " if dry_run else ""
    try:
        for entity in billing_entities_list():
            label = f"{entity.kind} {entity.name} ({entity.id})"
            if entity.customer_id:
                try:
                    client.customer_get(entity.customer_id)
                    exists = True
                except LagoError as err:
                    if err.status != 404:
                        raise
                    exists = False
                if not dry_run:
                    client.customer_upsert({"external_id": entity.customer_id, "name": entity.name})
                report.lines.append(
                    f"customer {entity.customer_id}: {verb}{'updated' if exists else 'created'} for {label}"
                )
            if not entity.subscription_id:
                continue
            if not entity.customer_id:
                report.lines.append(
                    f"subscription {entity.subscription_id}: skipped, {label} has no "
                    "lago_external_customer_id"
                )
                continue
            try:
                subscription = client.subscription_get(entity.subscription_id)
            except LagoError as err:
                if err.status != 404:
                    raise
                subscription = None
            if subscription is not None:
                report.lines.append(
                    f"subscription {entity.subscription_id}: exists (plan "
                    f"{subscription.get('plan_code')}, {subscription.get('status')}) for {label}"
                )
            elif not settings.LAGO_PLAN_CODE:
                report.errors += 1
                report.lines.append(
                    f"subscription {entity.subscription_id}: missing in Lago; set LAGO_PLAN_CODE "
                    f"to create it, for {label}"
                )
            else:
                if not dry_run:
                    client.subscription_create(
                        {
                            "external_customer_id": entity.customer_id,
                            "plan_code": settings.LAGO_PLAN_CODE,
                            "external_id": entity.subscription_id,
                            "billing_time": "calendar",
                        }
                    )
                report.lines.append(
                    f"subscription {entity.subscription_id}: {verb}created on plan "
                    f"{settings.LAGO_PLAN_CODE} for {label}"
                )
    finally:
        if own_client:
            client.close()
    return report
