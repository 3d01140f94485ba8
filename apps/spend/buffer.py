"""The spend buffer: spend records leave the request path here and reach the database in batches.

The request path only appends to an in-process deque. One flusher task per server
process writes a batch every GATEWAY_SPEND_FLUSH_INTERVAL seconds, or as soon as a
batch fills. A failed write keeps the records and retries with backoff; shutdown
flushes what is left. Writes are idempotent on request_id, so a retry never doubles.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from django.conf import settings

from apps.core.db import db_call
from apps.spend.records import SpendRecord
from apps.spend.services import spend_logs_write_batch

logger = logging.getLogger(__name__)


class SpendBuffer:
    def __init__(self) -> None:
        self._records: deque[SpendRecord] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False
        self.written = 0

    def add(self, record: SpendRecord) -> None:
        self._records.append(record)
        if self._wakeup is not None and len(self._records) >= settings.GATEWAY_SPEND_BATCH_SIZE:
            self._wakeup.set()

    def __len__(self) -> int:
        return len(self._records)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._stopping = False
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="spend-flusher")

    async def stop(self) -> None:
        """Stop the flusher, then write everything still buffered (SIGTERM lands here)."""
        self._stopping = True
        if self._task is not None:
            self._wakeup.set()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for attempt in range(5):
            if not self._records:
                break
            if not await self.flush_once():
                await asyncio.sleep(0.2 * (attempt + 1))
        if self._records:
            logger.error("shutdown with %d spend records unwritten", len(self._records))

    async def flush_once(self) -> bool:
        """Write one batch. True when it succeeded (or there was nothing to write)."""
        if not self._records:
            return True
        size = min(len(self._records), settings.GATEWAY_SPEND_BATCH_SIZE)
        batch = [self._records.popleft() for _ in range(size)]
        try:
            self.written += await db_call(spend_logs_write_batch, records=batch)
        except Exception:
            logger.exception("spend batch of %d not written; kept for retry", len(batch))
            self._records.extendleft(reversed(batch))
            return False
        return True

    async def _run(self) -> None:
        backoff = None
        while not self._stopping:
            interval = settings.GATEWAY_SPEND_FLUSH_INTERVAL
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=backoff or interval)
            except asyncio.TimeoutError:
                pass
            self._wakeup.clear()
            if self._stopping:
                break
            ok = True
            while ok and self._records and not self._stopping:
                ok = await self.flush_once()
                if len(self._records) < settings.GATEWAY_SPEND_BATCH_SIZE:
                    break
            backoff = None if ok else min(max((backoff or interval) * 2, 0.5), 30.0)


spend_buffer = SpendBuffer()
