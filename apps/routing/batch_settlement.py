"""Batches followed upstream until they end, then what they cost logged, once.

The Celery beat task routing.batches_poll calls `batches_poll` every
GATEWAY_BATCH_POLL_INTERVAL seconds. For each batch not yet settled it asks the upstream for the
batch; once the batch has ended (completed, failed, expired or cancelled) it reads the output
file line by line and prices each answered line at the model's batch prices (the catalog's
input/output_cost_per_token_batches; the list prices, marked estimated, for a model without
them). Failed lines cost nothing (the providers do not bill them), so a failed batch costs $0
and a cancelled or expired one what it answered before it stopped.

One spend log per batch (call_type "batch", request_id the batch id) holds the exact totals:
tokens summed, cost the sum of the lines' exact costs; its metadata names the batch and its
request counts. The log's transaction also adds the cost to the key's, team's and
organization's spend and queues the Lago event (apps.spend.services). Then the batch's
budget reservation is released and its cost counted in the limiter. A batch is settled once:
the row is locked and marked in the same transaction as its spend log.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

import orjson
from django.db import transaction
from django.utils import timezone as django_timezone

from apps.keys.limits import LimitScope
from apps.providers.adapters.base import Usage
from apps.providers.models import ModelDeployment
from apps.providers.registry import Deployment, deployment_from_row
from apps.providers.transport import UpstreamTransport
from apps.routing.batch_upstream import upstream_json, upstream_lines
from apps.routing.limits import limits_settle
from apps.routing.models import ManagedBatch
from apps.spend.models import SpendLog
from apps.spend.pricing import CostStatus, price_batch_usage, price_catalog
from apps.spend.records import SpendRecord
from apps.spend.services import spend_logs_write_batch

logger = logging.getLogger(__name__)

ENDED = frozenset({"completed", "failed", "expired", "cancelled"})
_SPEND_STATUS = {"completed": SpendLog.Status.SUCCESS, "cancelled": SpendLog.Status.CANCELLED}


@dataclass(slots=True)
class BatchUsage:
    """A batch's answered lines, summed, and their exact cost."""

    lines: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost: Decimal | None = Decimal(0)
    cost_status: str = CostStatus.NO_USAGE
    price_version: str = ""

    def add(self, usage: Usage, deployment: Deployment, at: float) -> None:
        priced = price_batch_usage(deployment, usage, at=at)
        self.lines += 1
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.cached_tokens += usage.cached_tokens
        self.reasoning_tokens += usage.reasoning_tokens
        self.price_version = self.price_version or priced.version
        if priced.status == CostStatus.NO_USAGE:
            return
        if priced.cost is None or self.cost is None:
            self.cost, self.cost_status = None, CostStatus.UNPRICED  # never $0 for what has no price
            return
        self.cost += priced.cost
        if self.cost_status in (CostStatus.NO_USAGE, CostStatus.PRICED):
            self.cost_status = priced.status


def batches_poll(limits_loop: asyncio.AbstractEventLoop | None = None) -> dict:
    """Poll every batch not settled yet; how many are still running, settled, or failed to poll.
    `limits_loop`: the server's event loop, where a server process (no broker) settles limits,
    since its limiter lives there."""
    counts = {"running": 0, "settled": 0, "failed": 0}
    batch_ids = list(ManagedBatch.objects.filter(settled_at__isnull=True).order_by("created_at").values_list(
        "id", flat=True))
    if batch_ids:
        # The prices in force, whatever this worker last heard; loaded here, in this thread, whose
        # database connection the caller closes (a thread of the poll's own event loop would keep one).
        price_catalog.reload()
    for batch_id in batch_ids:
        try:
            outcome = batch_poll(batch_id=batch_id, limits_loop=limits_loop)
        except Exception:
            logger.exception("batch %s could not be polled", batch_id)
            outcome = "failed"
        counts["settled" if outcome == "settled" else "failed" if outcome == "failed" else "running"] += 1
    return counts


def _deployment(deployment_id: int | None) -> Deployment | None:
    # Inactive deployments too: a batch goes on running at the provider when its deployment is
    # switched off here, and is billed all the same.
    row = ModelDeployment.objects.filter(pk=deployment_id).first()
    return deployment_from_row(row) if row is not None else None


def batch_poll(*, batch_id: str, limits_loop: asyncio.AbstractEventLoop | None = None) -> str:
    """Ask the upstream for one batch; settle it if it has ended. "settled", or its status."""
    row = ManagedBatch.objects.filter(pk=batch_id).first()
    if row is None or row.settled_at is not None:
        return "settled"
    deployment = _deployment(row.deployment_id)
    if deployment is None:
        logger.warning("batch %s: its deployment %s is gone; it cannot be polled", batch_id, row.deployment_id)
        return "failed"
    batch, usage = asyncio.run(_batch_read(deployment, row))
    status = batch.get("status") if isinstance(batch.get("status"), str) else row.status
    ManagedBatch.objects.filter(pk=batch_id).update(status=status[:16], batch=batch, polled_at=django_timezone.now())
    if usage is None:
        return status
    batch_settle(row=row, deployment=deployment, batch=batch, usage=usage, limits_loop=limits_loop)
    return "settled"


async def _batch_read(deployment: Deployment, row: ManagedBatch) -> tuple[dict, BatchUsage | None]:
    """The batch as the upstream has it, and its usage if it has ended."""
    via = UpstreamTransport()  # this event loop's own (a worker runs one loop per poll)
    try:
        batch = await upstream_json(deployment, method="GET", path=f"/batches/{row.id}", via=via)
        if batch.get("status") not in ENDED:
            return batch, None
        usage = BatchUsage()
        output_file_id = batch.get("output_file_id")
        if isinstance(output_file_id, str) and output_file_id:
            operation = deployment.adapter.batch_endpoints.get(row.endpoint)
            at = row.created_at.timestamp()
            async for raw in upstream_lines(deployment, output_file_id, via):
                line_usage = _line_usage(raw, deployment, operation)
                if line_usage is not None:
                    usage.add(line_usage, deployment, at)
        return batch, usage
    finally:
        await via.close()


def _line_usage(raw: bytes, deployment: Deployment, operation) -> Usage | None:
    """The usage of one output line answered with a 200 (None: a failed or unreadable line)."""
    if not raw.strip() or operation is None:
        return None
    try:
        line = orjson.loads(raw)
        response = line.get("response") or {}
        if response.get("status_code") != 200 or not isinstance(response.get("body"), dict):
            return None
        return deployment.adapter.translate_response(operation, deployment, orjson.dumps(response["body"])).usage
    except Exception:
        logger.warning("a batch output line could not be read; it is not billed", exc_info=True)
        return None


def _spend_request_id(batch_id: str) -> str:
    return batch_id if len(batch_id) <= 64 else hashlib.sha256(batch_id.encode()).hexdigest()


def batch_settle(*, row: ManagedBatch, deployment: Deployment, batch: dict, usage: BatchUsage,
                 limits_loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Log the ended batch's cost (one spend log, its Lago event with it) and release its reservation."""
    ended = datetime.now(timezone.utc)
    status = batch.get("status", "")
    counts = batch.get("request_counts") if isinstance(batch.get("request_counts"), dict) else {}
    record = SpendRecord(
        request_id=_spend_request_id(row.id), key_id=row.key_id, key_hash=row.key_hash, team_id=row.team_id,
        organization_id=row.organization_id, user_id=int(row.user_id) if row.user_id else None, call_type="batch",
        model=row.model, deployment_id=deployment.id, provider=deployment.provider,
        upstream_model=deployment.upstream_model, prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens, cached_tokens=usage.cached_tokens,
        reasoning_tokens=usage.reasoning_tokens, usage_reported=True, cost=usage.cost,
        status=_SPEND_STATUS.get(status, SpendLog.Status.ERROR), http_status=200,
        error_type="" if status in _SPEND_STATUS else f"batch_{status}"[:64], is_stream=False,
        latency_ms=int((ended - row.created_at).total_seconds() * 1000), start_time=row.created_at, end_time=ended,
        cost_status=usage.cost_status, price_version=usage.price_version,
        metadata={"batch_id": row.id, "batch_status": status, "endpoint": row.endpoint,
                  "input_file_id": row.input_file_id, "output_file_id": batch.get("output_file_id"),
                  "request_counts": counts, "lines_billed": usage.lines},
    )
    with transaction.atomic():
        locked = ManagedBatch.objects.select_for_update().get(pk=row.pk)
        if locked.settled_at is not None:
            return  # another worker settled it meanwhile
        spend_logs_write_batch(records=[record])
        locked.settled_at = ended
        locked.cost = usage.cost
        locked.status = status[:16]
        locked.batch = batch
        locked.save(update_fields=["settled_at", "cost", "status", "batch"])
    scopes = tuple(LimitScope(**values) for values in row.limit_scopes)
    if scopes:
        try:
            # Tokens are not counted in the per-minute windows: a batch's are not live traffic.
            settlement = limits_settle(scopes, row.reservation_id, 0, usage.cost)
            if limits_loop is not None:
                asyncio.run_coroutine_threadsafe(settlement, limits_loop).result(30)
            else:
                asyncio.run(settlement)
        except Exception:
            # The reservation expires by itself; the spend counters are reconciled from the
            # database (spend.counters_reconcile), which already has the cost.
            logger.exception("batch %s: its reservation could not be released", row.id)
