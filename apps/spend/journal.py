"""The spend journal: each spend record in Redis from the moment it exists until its batch is written.

The buffer (apps.spend.buffer) writes records in batches every GATEWAY_SPEND_FLUSH_INTERVAL; a
process killed meanwhile (SIGKILL, the OOM killer, a node lost) would take the records it holds with
it: requests answered 200, never logged nor billed. So each record is also put in a Redis hash,
keyed by request id, before the answer is released (apps.routing.dataplane awaits the put for a
whole answer; a stream's record follows its last event by the time of one Redis write), and taken
out when its batch is written. A beat task writes what stayed longer than
GATEWAY_SPEND_JOURNAL_RECOVER_AFTER seconds: a dead process's records. Writes are idempotent on
request_id, so a record written by its own process and by the recovery counts once.

Without Redis there is no journal (one process, its memory: a crash loses the last interval).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from functools import partial

import hiredis
from django.conf import settings

from apps.core.background import spawn
from apps.core.hot_settings import setting
from apps.core.redis import AsyncRedisPerLoop, redis_enabled, redis_key, sync_redis
from apps.core.redis_pipeline import pipelined_connection
from apps.spend.records import SpendRecord, record_from_json, record_to_json

logger = logging.getLogger(__name__)

# The journal puts started while serving the current request (set by the data plane per request).
pending_puts: contextvars.ContextVar[list | None] = contextvars.ContextVar("spend_journal_puts", default=None)


async def puts_wait(puts) -> None:
    """Until the given puts are in the journal, or failed, or REDIS_SOCKET_TIMEOUT has passed (a
    Redis that hangs holds no one longer than that). Never raises."""
    pending = [put for put in puts if not put.done()] if puts else ()
    if not pending:
        return
    # One waiter future and one timer, not asyncio.wait's set, tasks check and callbacks: this runs
    # on every answer. Cancelling the caller cancels the waiter, never the puts.
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    puts_then(pending, partial(_release, waiter))
    timer = loop.call_later(setting("REDIS_SOCKET_TIMEOUT"), _release, waiter)
    try:
        await waiter
    finally:
        timer.cancel()


def _release(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)


def puts_then(puts, callback) -> None:
    """Call `callback()` once the given puts are done (written or failed: they always end), from
    the loop's own turn: no task. At once if they are done already."""
    pending = [put for put in puts if not put.done()] if puts else ()
    if not pending:
        callback()
        return
    remaining = len(pending)

    def one_done(_) -> None:
        nonlocal remaining
        remaining -= 1
        if not remaining:
            callback()

    for put in pending:
        put.add_done_callback(one_done)


def journal_key() -> str:
    # One hash tag: HDEL of a batch's ids is one command, within one cluster slot.
    return redis_key("spend", "{journal}", "records")


class SpendJournal:
    """Puts are coalesced: records queued while one HSET is in flight go together in the next,
    so under load a process makes about one Redis write per round trip, not one per request."""

    def __init__(self) -> None:
        # The request path's pipelined connection where there is one (apps.core.redis_pipeline):
        # no task per put, and a put can leave at once, from the request's own turn.
        self._clients = AsyncRedisPerLoop(on_new=pipelined_connection)
        self._queued: list[tuple[str, bytes, asyncio.Future]] = []
        self._writing = None  # the event loop with an HSET in flight (one at a time)

    def put_soon(self, record: SpendRecord) -> asyncio.Future:
        """Queue the record; the future is done once it is in Redis, or once the put failed (logged:
        the record is still in the buffer, only a crash now would lose it)."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        # "<unix time>|<record JSON>": when it was put, for the recovery's age test.
        self._queued.append((record.request_id, f"{time.time():.3f}|".encode() + record_to_json(record), done))
        if self._writing is not loop:  # (a loop that ended with a write in flight does not count)
            self._write_queued()
        return done

    async def put(self, record: SpendRecord) -> None:
        await self.put_soon(record)

    def _write_queued(self) -> None:
        """One HSET of what is queued. On the pipelined lane it is sent now, from the caller's own
        turn (no task), so the put travels while the request builds its answer; otherwise, or
        if that send fails, a task writes it with the client's retries."""
        batch, self._queued = self._queued, []
        self._writing = asyncio.get_running_loop()
        _, pipe = self._clients.get()
        reply = pipe.send_now("HSET", journal_key(), *_fields(batch)) if pipe is not None else None
        if reply is None:
            spawn(self._write_by_task(batch), name="spend-journal-writer")
        else:
            reply.add_done_callback(lambda reply: self._sent(batch, reply))

    def _sent(self, batch: list, reply: asyncio.Future) -> None:
        if reply.cancelled() or reply.exception() is not None or isinstance(reply.result(), hiredis.ReplyError):
            spawn(self._write_by_task(batch), name="spend-journal-writer")  # again, with the retries
            return
        self._written(batch)

    async def _write_by_task(self, batch: list) -> None:
        client, pipe = self._clients.get()
        try:
            if pipe is not None:
                await pipe.call("HSET", journal_key(), *_fields(batch))
            else:
                await client.hset(journal_key(), mapping={rid: entry for rid, entry, _ in batch})
        except Exception:
            logger.warning("%d spend records not journaled (Redis unavailable?)", len(batch), exc_info=True)
        finally:
            self._written(batch)

    def _written(self, batch: list) -> None:
        for _, _, done in batch:
            if not done.done():
                done.set_result(None)
        self._writing = None
        if self._queued:  # queued while this one was in flight: they go together
            self._write_queued()

    async def forget(self, request_ids: list[str]) -> None:
        if request_ids:
            client, _ = self._clients.get()
            await client.hdel(journal_key(), *request_ids)


def _fields(batch: list) -> list:
    fields = []
    for rid, entry, _ in batch:
        fields += (rid, entry)
    return fields


def journal_for_process() -> SpendJournal | None:
    return SpendJournal() if redis_enabled() and settings.GATEWAY_SPEND_JOURNAL else None


def spend_journal_recover(*, older_than: float | None = None, limit: int = 5000) -> int:
    """Write the journal's records older than `older_than` seconds (their process died before its
    batch was written), then take them out. Synchronous: a Celery beat task runs it. Returns how
    many records were written (those already in the database count 0)."""
    from apps.spend.services import spend_logs_write_batch

    if not redis_enabled():
        return 0
    older_than = settings.GATEWAY_SPEND_JOURNAL_RECOVER_AFTER if older_than is None else older_than
    client, key = sync_redis(), journal_key()
    cutoff = time.time() - older_than
    stale: dict[str, SpendRecord] = {}
    for field, raw in client.hscan_iter(key, count=1000):
        try:
            at, _, record_json = raw.partition(b"|")
            if float(at) <= cutoff:
                stale[field.decode() if isinstance(field, bytes) else field] = record_from_json(record_json)
        except (ValueError, KeyError, TypeError):
            logger.warning("spend journal: unreadable entry %r dropped", field)
            client.hdel(key, field)
        if len(stale) >= limit:
            break
    if not stale:
        return 0
    written = 0
    ids = list(stale)
    for start in range(0, len(ids), settings.GATEWAY_SPEND_BATCH_SIZE):
        chunk = ids[start:start + settings.GATEWAY_SPEND_BATCH_SIZE]
        written += spend_logs_write_batch(records=[stale[i] for i in chunk])
        client.hdel(key, *chunk)
    if written:
        logger.warning("spend journal: %d records of a process that stopped before writing them recovered", written)
    return written
