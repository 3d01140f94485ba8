"""Spend records and outbox rows for the billing tests."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from django.db import transaction

from apps.spend.records import SpendRecord

T0 = datetime(2026, 11, 1, 12, 0, 0, 123000, tzinfo=timezone.utc)


def record(
    *,
    organization=None,
    team=None,
    cost: str | None = "0.000073",
    prompt_tokens: int = 11,
    completion_tokens: int = 7,
    request_id: str | None = None,
    start: datetime | None = None,
    **fields,
) -> SpendRecord:
    start = start or T0
    values = dict(
        request_id=request_id or uuid.uuid4().hex,
        key_id=None,
        key_hash="",
        user_id=None,
        team_id=str(team.pk) if team else None,
        organization_id=str(organization.pk)
        if organization
        else (str(team.organization_id) if team else None),
        call_type="chat_completion",
        model="gpt-test",
        deployment_id=None,
        provider="openai",
        upstream_model="upstream-gpt",
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_tokens=3,
        reasoning_tokens=0,
        usage_reported=True,
        cost=Decimal(cost) if cost is not None else None,
        status="success",
        http_status=200,
        error_type="",
        is_stream=False,
        latency_ms=12,
        start_time=start,
        end_time=start + timedelta(milliseconds=250),
    )
    values.update(fields)
    return SpendRecord(**values)


def queue(count: int, organization, **fields) -> list[SpendRecord]:
    """`count` billable requests of the organization, in the outbox (as the spend flusher queues them)."""
    from apps.billing.services import billing_events_add

    records = [
        record(organization=organization, start=T0 + timedelta(seconds=i), **fields) for i in range(count)
    ]
    with transaction.atomic():
        assert billing_events_add(records=records) == count
    return records
