"""The billing-event outbox: queueing usage events for Lago and delivering them.

- billing_events_add: outbox rows for billable requests, inside the spend flusher's transaction.
- billing_events_send: claim due rows (FOR UPDATE SKIP LOCKED), post them to /events/batch,
  record the outcome (sent, back off and retry, dead letter).
- billing_events_replay: dead letters back in the outbox.

Exactly once: every request has one outbox row (unique transaction_id = its request id, written
with its spend log). A row is marked sent only after Lago accepted it; whatever happens between
(a crash, a timeout, a killed worker) leaves it pending, so it is sent again, and Lago refuses a
transaction_id it already has with 422 value_already_exist, which counts as delivered.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.billing.credits import decimal_text, usd_to_credits
from apps.billing.lago import LagoClient, LagoError, LagoUnavailable
from apps.billing.models import BillingEvent
from apps.billing.selectors import billing_subscriptions_get
from apps.spend.records import SpendRecord

logger = logging.getLogger(__name__)


# --- the outbox: queueing ---------------------------------------------------------------------

_COLUMNS = [
    "transaction_id",
    "external_subscription_id",
    "external_customer_id",
    "entity_kind",
    "entity_id",
    "code",
    "timestamp",
    "properties",
    "status",
    "attempts",
    "next_attempt_at",
    "claim_token",
    "last_error",
    "created_at",
]


def _insert_sql() -> str:
    # No conflict target: on PostgreSQL's month tables transaction_id is unique with the timestamp
    # (apps.billing.partitions), and the primary key never conflicts.
    meta = BillingEvent._meta
    quote = connection.ops.quote_name
    columns = [meta.get_field(name).column for name in _COLUMNS]
    return (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))}) ON CONFLICT DO NOTHING"
    )


def _billable(record: SpendRecord) -> bool:
    """Anything that used the upstream: tokens, or a cost (rerank is priced per query). A response
    cache hit used none: billed only when GATEWAY_CACHE_BILL_HITS says so (at what it saved)."""
    if record.cache_hit:
        return settings.GATEWAY_CACHE_BILL_HITS
    return bool(record.cost) or (record.prompt_tokens + record.completion_tokens) > 0


def _properties(record: SpendRecord) -> dict:
    cost = record.saved_cost if record.cache_hit and not record.cost else record.cost
    return {
        "request_id": record.request_id,
        "model": record.model,
        "provider": record.provider,
        "upstream_model": record.upstream_model,
        "call_type": record.call_type,
        "input_tokens": record.prompt_tokens,
        "output_tokens": record.completion_tokens,
        "total_tokens": record.prompt_tokens + record.completion_tokens,
        "cached_tokens": record.cached_tokens,
        "reasoning_tokens": record.reasoning_tokens,
        "cost_usd": decimal_text(cost) if cost is not None else "0",
        "credits": decimal_text(usd_to_credits(cost)),
        "credits_name": settings.BILLING_CREDITS_NAME,
        "cost_known": cost is not None,
        "usage_estimated": not record.usage_reported,
        "organization_id": record.organization_id or "",
        "team_id": record.team_id or "",
        "key_id": str(record.key_id) if record.key_id is not None else "",
        **({"cache_hit": "true"} if record.cache_hit else {}),  # billed hits (GATEWAY_CACHE_BILL_HITS) say so
    }


def _uuid_text(value) -> str:
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))


def billing_events_add(*, records: list[SpendRecord]) -> int:
    """Queue a Lago event for each billable record whose billing entity has a Lago subscription.

    Called inside the transaction that writes the records' spend logs, so the outbox row exists
    exactly when the spend log does. Idempotent on the request id. A no-op when billing is off.
    Returns how many rows it queued (at most; a replayed id is skipped by the database).
    """
    if not records or not settings.LAGO_API_BASE:
        return 0
    kind = settings.BILLING_ENTITY
    attribute = "organization_id" if kind == "organization" else "team_id"
    billable = [
        (record, _uuid_text(entity))
        for record in records
        if (entity := getattr(record, attribute)) and _billable(record)
    ]
    if not billable:
        return 0
    mapping = billing_subscriptions_get(kind=kind, entity_ids={entity for _, entity in billable})
    if not mapping:
        return 0
    ops = connection.ops
    now = ops.adapt_datetimefield_value(timezone.now())
    code = settings.LAGO_API_EVENT_CODE
    rows = []
    for record, entity in billable:
        ids = mapping.get(entity)
        if ids is None:
            continue
        customer, subscription = ids
        rows.append(
            [
                record.request_id,
                subscription,
                customer,
                kind,
                entity,
                code,
                ops.adapt_datetimefield_value(record.start_time),
                ops.adapt_json_value(_properties(record), None),
                BillingEvent.Status.PENDING.value,
                0,
                now,
                "",
                "",
                now,
            ]
        )
    if rows:
        with connection.cursor() as cursor:
            cursor.executemany(_insert_sql(), rows)
    return len(rows)


# --- the outbox: delivery ---------------------------------------------------------------------


@dataclass
class SendResult:
    sent: int = 0  # accepted by Lago now
    duplicates: int = 0  # Lago already had them (422 value_already_exist): delivered before
    dead: int = 0  # rejected for themselves: dead letters
    retried: int = 0  # back in the outbox for a later attempt
    batches: int = 0  # claims
    posts: int = 0  # requests to Lago
    error: str = ""  # why this run stopped early (Lago unavailable, rate limited)

    @property
    def delivered(self) -> int:
        return self.sent + self.duplicates


def _already_exists(errors) -> bool:
    return isinstance(errors, dict) and "value_already_exist" in (errors.get("transaction_id") or [])


def _index_errors(details, count: int) -> dict[int, dict] | None:
    """Lago's per-item errors of a batch, keyed by index ({"3": {...}}), or None if not that shape."""
    if not isinstance(details, dict) or not details or not all(str(k).isascii() and str(k).isdigit() for k in details):
        return None
    return {int(k): v for k, v in details.items() if int(k) < count}


class _Delivery:
    """Posting one claimed batch. A batch Lago rejects for some of its items is retried without
    them (Lago keys the errors by index; without that, the batch is halved until the bad item
    stands alone); a network error, 5xx, 429 or a configuration error puts the rest back."""

    def __init__(self, client: LagoClient, deadline: float) -> None:
        self.client = client
        self.deadline = deadline
        self.sent: list[BillingEvent] = []
        self.duplicates: list[BillingEvent] = []
        self.dead: list[tuple[BillingEvent, str]] = []
        self.retry: list[BillingEvent] = []
        self.retry_after: float | None = None  # X-RateLimit-Reset
        self.backoff = True  # False: put back without counting an attempt (the claim ran out)
        self.error = ""
        self.posts = 0

    def post(self, events: list[BillingEvent]) -> None:
        if not events:
            return
        if self.error:
            self.retry += events
            return
        if time.monotonic() > self.deadline:
            self.error, self.backoff = "the claim on the batch ran out", False
            self.retry += events
            return
        self.posts += 1
        try:
            self.client.events_batch([event.lago_payload() for event in events])
        except LagoUnavailable as exc:
            self._stop(events, f"Lago unavailable: {exc}")
            return
        except LagoError as err:
            self._rejected(events, err)
            return
        self.sent += events

    def _stop(self, events: list[BillingEvent], error: str, retry_after: float | None = None) -> None:
        self.error = error
        self.retry_after = retry_after
        self.retry += events

    def _rejected(self, events: list[BillingEvent], err: LagoError) -> None:
        if err.status == 429:
            self._stop(events, f"rate limited by Lago: {err}", err.rate_limit_reset)
            return
        if err.status >= 500 or err.status in (401, 403, 404, 405, 408, 409):
            if err.status < 500:  # the key or LAGO_API_BASE is wrong: nothing an event can fix
                logger.error(
                    "Lago refused the gateway's events (%s): check LAGO_API_BASE and LAGO_API_KEY", err
                )
            self._stop(events, str(err))
            return
        details = err.body.get("error_details")
        per_item = _index_errors(details, len(events))
        if per_item:
            rest = []
            for index, event in enumerate(events):
                errors = per_item.get(index)
                if errors is None:
                    rest.append(event)
                elif _already_exists(errors):
                    self.duplicates.append(event)
                else:
                    self.dead.append(
                        (event, f"Lago refused the event ({err.status}): {orjson.dumps(errors).decode()}")
                    )
            if len(rest) < len(events):
                self.post(rest)  # all or nothing: the good ones were not stored; send them again
                return
        if len(events) == 1:
            if _already_exists(details):
                self.duplicates += events
            else:
                self.dead.append((events[0], f"Lago refused the event: {err}"))
            return
        middle = len(events) // 2
        self.post(events[:middle])
        self.post(events[middle:])


def _retry_delay(attempts: int, retry_after: float | None) -> float:
    """Exponential from BILLING_RETRY_BASE_DELAY, capped, with jitter (half to all of it), so
    many senders do not come back at the same moment; a 429's X-RateLimit-Reset is honoured."""
    if retry_after is not None:
        return retry_after + random.uniform(0.0, 1.0)
    capped = min(
        settings.BILLING_RETRY_BASE_DELAY * (2 ** min(attempts, 32)), settings.BILLING_RETRY_MAX_DELAY
    )
    return random.uniform(capped / 2, capped)


def _claim(*, force: bool) -> tuple[str, list[BillingEvent]] | None:
    """Claim up to BILLING_BATCH_SIZE due rows. SKIP LOCKED: a row another sender is claiming is
    passed over, and claimed rows carry claimed_until, so two senders never take the same row.
    (SQLite has no row locks; there the write lock serializes claims.)"""
    now = timezone.now()
    token = uuid.uuid4().hex
    with transaction.atomic():
        queryset = (
            BillingEvent.objects.select_for_update(skip_locked=True)
            .filter(status=BillingEvent.Status.PENDING)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))
        )
        if not force:
            queryset = queryset.filter(next_attempt_at__lte=now)
        events = list(queryset.order_by("id")[: settings.BILLING_BATCH_SIZE])
        if not events:
            return None
        BillingEvent.objects.filter(pk__in=[e.pk for e in events]).update(
            claimed_until=now + timedelta(seconds=settings.BILLING_CLAIM_LEASE), claim_token=token
        )
    return token, events


def _record(token: str, delivery: _Delivery, result: SendResult) -> None:
    now = timezone.now()
    released = {"claimed_until": None, "claim_token": ""}
    with transaction.atomic():
        delivered = [e.pk for e in delivery.sent + delivery.duplicates]
        if delivered:
            # Whoever holds the claim now: Lago has these, so they are sent.
            BillingEvent.objects.filter(pk__in=delivered).update(
                status=BillingEvent.Status.SENT, sent_at=now, last_error="", **released
            )
        for event, reason in delivery.dead:
            BillingEvent.objects.filter(pk=event.pk, claim_token=token).update(
                status=BillingEvent.Status.DEAD, last_error=reason[:4000], **released
            )
        for event in delivery.retry:
            if delivery.backoff:
                delay = _retry_delay(event.attempts, delivery.retry_after)
                BillingEvent.objects.filter(pk=event.pk, claim_token=token).update(
                    attempts=event.attempts + 1,
                    next_attempt_at=now + timedelta(seconds=delay),
                    last_error=delivery.error[:4000],
                    **released,
                )
            else:
                BillingEvent.objects.filter(pk=event.pk, claim_token=token).update(**released)
    result.sent += len(delivery.sent)
    result.duplicates += len(delivery.duplicates)
    result.dead += len(delivery.dead)
    result.retried += len(delivery.retry)
    result.posts += delivery.posts
    for event, reason in delivery.dead:
        logger.error("billing event %s is a dead letter: %s", event.transaction_id, reason)


def billing_events_send(
    *,
    force: bool = False,
    max_batches: int | None = None,
    time_budget: float | None = 180.0,
    client: LagoClient | None = None,
) -> SendResult:
    """Deliver the outbox's due rows to Lago, batch after batch, until none is due or Lago is
    unavailable. `force` also sends rows still backing off (`manage.py lago_flush`). No new batch
    is claimed after `time_budget` seconds (the Celery task's time limit; the next run goes on)."""
    result = SendResult()
    if not settings.LAGO_API_BASE:
        return result
    own_client = client is None
    client = client or LagoClient()
    stop_claiming = time.monotonic() + time_budget if time_budget is not None else None
    try:
        while max_batches is None or result.batches < max_batches:
            if stop_claiming is not None and time.monotonic() >= stop_claiming:
                break
            claimed = _claim(force=force)
            if claimed is None:
                break
            token, events = claimed
            result.batches += 1
            # Stop posting well before the claim runs out, so no other sender takes these rows
            # while a request for them may still be on its way.
            deadline = time.monotonic() + max(
                settings.BILLING_CLAIM_LEASE - 2 * settings.LAGO_TIMEOUT - 1, 1.0
            )
            delivery = _Delivery(client, deadline)
            delivery.post(events)
            _record(token, delivery, result)
            if delivery.error:
                result.error = delivery.error
                if delivery.backoff:
                    logger.warning(
                        "billing: %s; %d events back in the outbox", delivery.error, len(delivery.retry)
                    )
                break
    finally:
        if own_client:
            client.close()
    return result


def billing_events_replay(*, ids: list[int] | None = None, all_dead: bool = False) -> int:
    """Put dead letters back in the outbox (after the cause is fixed). Returns how many."""
    queryset = BillingEvent.objects.filter(status=BillingEvent.Status.DEAD)
    if ids:
        queryset = queryset.filter(pk__in=ids)
    elif not all_dead:
        return 0
    return queryset.update(
        status=BillingEvent.Status.PENDING,
        attempts=0,
        next_attempt_at=timezone.now(),
        claimed_until=None,
        claim_token="",
    )
