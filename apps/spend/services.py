from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from django.db import transaction
from django.db.models import F

from apps.keys.models import VirtualKey
from apps.spend.models import SpendLog
from apps.spend.records import SpendRecord
from apps.teams.models import Organization, Team


def spend_logs_write_batch(*, records: list[SpendRecord]) -> int:
    """Write a batch of spend records in one transaction. Idempotent on request_id:
    a record already written (a replay after a failed flush) changes nothing.
    Returns how many rows were new."""
    if not records:
        return 0
    by_id = {r.request_id: r for r in records}
    with transaction.atomic():
        existing = set(
            SpendLog.objects.filter(request_id__in=list(by_id)).values_list("request_id", flat=True)
        )
        new = [r for rid, r in by_id.items() if rid not in existing]
        SpendLog.objects.bulk_create(
            [
                SpendLog(
                    request_id=r.request_id,
                    key_id=r.key_id,
                    key_hash=r.key_hash,
                    team_id=r.team_id,
                    organization_id=r.organization_id,
                    user_id=r.user_id,
                    call_type=r.call_type,
                    model=r.model,
                    deployment_id=r.deployment_id,
                    provider=r.provider,
                    upstream_model=r.upstream_model,
                    prompt_tokens=r.prompt_tokens,
                    completion_tokens=r.completion_tokens,
                    cached_tokens=r.cached_tokens,
                    reasoning_tokens=r.reasoning_tokens,
                    usage_reported=r.usage_reported,
                    cost=r.cost,
                    status=r.status,
                    http_status=r.http_status,
                    error_type=r.error_type,
                    is_stream=r.is_stream,
                    latency_ms=r.latency_ms,
                    start_time=r.start_time,
                    end_time=r.end_time,
                )
                for r in new
            ],
            ignore_conflicts=True,
        )
        _spend_totals_add(new)
    return len(new)


def _spend_totals_add(records: list[SpendRecord]) -> None:
    """Add the batch's cost to each key, team and organization: one UPDATE per entity."""
    for model, attribute in ((VirtualKey, "key_id"), (Team, "team_id"), (Organization, "organization_id")):
        totals: dict = defaultdict(Decimal)
        for record in records:
            entity_id = getattr(record, attribute)
            if entity_id is not None and record.cost:
                totals[entity_id] += record.cost
        for entity_id, amount in totals.items():
            model.objects.filter(pk=entity_id).update(spend=F("spend") + amount)
