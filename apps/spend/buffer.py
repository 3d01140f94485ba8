"""The spend buffer: spend records leave the request path here and reach the database in batches.

The request path only appends to an in-process deque. One flusher task per server
process writes a batch every GATEWAY_SPEND_FLUSH_INTERVAL seconds, or as soon as a
batch fills. When the database refuses a batch, the batch goes to a Redis list (the
spill) where any replica replays it once the database is back; without Redis it stays
in memory and is retried with backoff. Shutdown writes, or spills, what is left. Writes
are idempotent on request_id, so a replay never doubles anything.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from django.conf import settings

from apps.core.background import spawn
from apps.core.db import db_call
from apps.core.hot_settings import setting
from apps.spend.journal import journal_for_process, pending_puts
from apps.spend.records import SpendRecord
from apps.spend.services import spend_logs_write_batch
from apps.spend.spill import spill_for_process

logger = logging.getLogger(__name__)


class SpendBuffer:
    def __init__(self) -> None:
        self._records: deque[SpendRecord] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False
        self.written = 0
        self._spill = None
        self._journal = None
        self._room: asyncio.Event | None = None  # set while the backlog is within GATEWAY_SPEND_BUFFER_MAX

    def add(self, record: SpendRecord) -> None:
        self._records.append(record)
        if self._journal is not None:
            try:
                put = self._journal.put_soon(record)
            except RuntimeError:  # no event loop here (a synchronous caller): the buffer alone
                return
            waiting = pending_puts.get()
            if waiting is not None:  # the data plane holds the answer until the record is journaled
                waiting.append(put)
        if self._wakeup is not None and len(self._records) >= setting("GATEWAY_SPEND_BATCH_SIZE"):
            self._wakeup.set()
        if self._room is not None and len(self._records) > setting("GATEWAY_SPEND_BUFFER_MAX"):
            self._room.clear()

    def full(self) -> bool:
        return len(self._records) > setting("GATEWAY_SPEND_BUFFER_MAX")

    async def room_wait(self, timeout: float) -> None:
        """Until the writer has brought the backlog back within the bound, or `timeout` (a database
        that is down must not stop the answers: its records wait in memory, or in the spill)."""
        if self._room is not None and not self._room.is_set():
            try:
                await asyncio.wait_for(self._room.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    def __len__(self) -> int:
        return len(self._records)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._stopping = False
            self._spill = spill_for_process()
            self._journal = journal_for_process()
            self._wakeup = asyncio.Event()
            self._room = asyncio.Event()
            self._room.set()
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
        # Write batch after batch while the database takes them; give up (spill, or log what
        # is lost) only after 5 failures in a row, never after a count of batches.
        failures = 0
        while self._records and failures < 5:
            if await self.flush_once():
                failures = 0
            else:
                failures += 1
                await asyncio.sleep(0.2 * failures)
        if self._records and self._spill is not None:
            try:
                await self._spill.push(list(self._records))
                self._records.clear()
            except Exception:
                logger.exception("could not spill spend records at shutdown")
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
            logger.warning("spend batch of %d not written (database unavailable?)", len(batch), exc_info=True)
            if not await self._spill_batch(batch):
                self._records.extendleft(reversed(batch))
            return False
        self._journal_forget(batch)
        if self._room is not None and len(self._records) <= settings.GATEWAY_SPEND_BUFFER_MAX:
            self._room.set()
        return True

    def _journal_forget(self, batch: list[SpendRecord]) -> None:
        if self._journal is not None:
            spawn(self._journal_forget_now([r.request_id for r in batch]), name="spend-journal-forget")

    async def _journal_forget_now(self, request_ids: list[str]) -> None:
        try:
            await self._journal.forget(request_ids)
        except Exception:  # left behind: the recovery writes them again, which changes nothing
            logger.warning("written spend records not taken out of the journal", exc_info=True)

    async def _spill_batch(self, batch: list[SpendRecord]) -> bool:
        if self._spill is None:
            return False
        try:
            await self._spill.push(batch)
        except Exception:
            logger.exception("spend batch could not be spilled to Redis either; kept in memory")
            return False
        return True

    async def replay_spilled(self) -> bool:
        """Write one batch of spilled records back to the database. True if it wrote some."""
        if self._spill is None:
            return False
        try:
            batch = await self._spill.pop(settings.GATEWAY_SPEND_BATCH_SIZE)
        except Exception:
            logger.warning("could not read the spend spill", exc_info=True)
            return False
        if not batch:
            return False
        try:
            self.written += await db_call(spend_logs_write_batch, records=batch)
        except Exception:
            logger.warning("spilled spend still not writable; back to the spill", exc_info=True)
            try:
                await self._spill.push_back(batch)
            except Exception:
                self._records.extendleft(reversed(batch))
            return False
        self._journal_forget(batch)
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
            if ok and not self._stopping:
                # The database is writable: replay what waited in the spill meanwhile.
                while await self.replay_spilled():
                    pass
            backoff = None if ok else min(max((backoff or interval) * 2, 0.5), 30.0)


spend_buffer = SpendBuffer()
