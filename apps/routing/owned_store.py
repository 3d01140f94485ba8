"""Records a key owns (stored responses, files, batches): written through a buffer, read
through an in-process cache.

The request path never waits for the database to store one: `add` puts the record in the
cache (so a read on this process finds it at once) and on a deque a flusher task writes in
batches every GATEWAY_SPEND_FLUSH_INTERVAL seconds. With Redis the record is also put there
for an hour, and the answer waits for that put as for a spend record's journal put (a process
that dies after answering leaves it for `recover`), so another replica finds it before the
batch is written. A read that misses both (evicted, or older) costs one database query. Records do not change
once written (what changes, such as a batch's status, the database holds, written by whoever
learns it); a delete leaves a tombstone row and tells every replica to forget the record.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Generic, TypeVar

import orjson
from django.conf import settings

from apps.core import invalidation
from apps.core.background import spawn
from apps.core.db import db_call
from apps.core import redis as gateway_redis
from apps.core.redis import AsyncRedisPerLoop, redis_enabled, redis_key
from apps.keys.context import KeyContext
from apps.spend.journal import pending_puts

logger = logging.getLogger(__name__)

_CACHE_SIZE = 10_000
_REDIS_TTL = 3600  # seconds: the bridge until the database has the record
_BATCH_SIZE = 200


@dataclass(slots=True, kw_only=True)
class OwnedRecord:
    """Who owns a record: its team when the key had one, else the key itself."""

    id: str
    key_hash: str
    key_id: int | None
    team_id: str | None
    organization_id: str | None
    created_at: datetime | None = None

    def readable_by(self, context: KeyContext) -> bool:
        if context.is_master:
            return True
        if self.team_id:
            return context.team_id == self.team_id
        return context.token_hash == self.key_hash


R = TypeVar("R", bound=OwnedRecord)


def _function(path: str) -> Callable:
    """A service or selector by its dotted path, imported on first use (they import models)."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


class OwnedRecordStore(Generic[R]):
    """One kind of owned record. `write(records=...)`, `get(<id_param>=...)` and `delete(...)`
    are the dotted paths of its services and selector (synchronous, run off the event loop)."""

    def __init__(self, *, name: str, record_type: type[R], write: str, get: str, delete: str | None = None,
                 deleted_kind: str = "") -> None:
        self.name = name
        self.record_type = record_type
        self._write, self._get, self._delete = write, get, delete
        self.deleted_kind = deleted_kind  # the invalidation message: every replica forgets the id
        self._cache: OrderedDict[str, R | None] = OrderedDict()
        self._pending: deque[R] = deque()
        self._task: asyncio.Task | None = None
        self._wakeup: asyncio.Event | None = None
        self._redis_clients = AsyncRedisPerLoop()
        invalidation.register_handler(self.handle_message)

    def _remember(self, record_id: str, record: R | None) -> None:
        self._cache[record_id] = record
        self._cache.move_to_end(record_id)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)

    def add(self, record: R) -> None:
        self._remember(record.id, record)
        self._pending.append(record)
        self._flusher_ensure()
        if redis_enabled():
            put = spawn(self._redis_put(record), name=f"{self.name}-redis-put")
            waiting = pending_puts.get()
            if waiting is not None:  # the answer waits for it, as for a spend record (apps.routing.dataplane)
                waiting.append(put)

    def add_once(self, record: R) -> None:
        """`add`, unless this process already holds the record (a record seen again and again)."""
        if self._cache.get(record.id) is None:
            self.add(record)

    def _redis(self):
        return self._redis_clients.get()

    # One hash tag per store: a record and the index of unwritten ones change in one transaction,
    # which Redis Cluster allows only within one slot.
    def _redis_key(self, record_id: str) -> str:
        return redis_key(self.name, f"{{{self.name}}}", record_id)

    def _unwritten_key(self) -> str:
        return redis_key(self.name, f"{{{self.name}}}", "unwritten")

    async def _redis_put(self, record: R) -> None:
        value = orjson.dumps(dataclasses.asdict(record))
        try:
            # The id also goes into the set of records the database may not have yet: if this
            # process dies before its buffer is written, `recover` writes them from Redis.
            async with self._redis().pipeline(transaction=True) as pipe:
                pipe.set(self._redis_key(record.id), value, ex=_REDIS_TTL)
                pipe.zadd(self._unwritten_key(), {record.id: time.time()})
                await pipe.execute()
        except Exception:
            logger.warning("%s record not put in Redis", self.name, exc_info=True)

    async def _redis_written(self, records: list[R]) -> None:
        try:
            await self._redis().zrem(self._unwritten_key(), *[r.id for r in records])
        except Exception:
            logger.warning("%s records not marked written in Redis", self.name, exc_info=True)

    def recover(self, older_than: float = 60.0) -> int:
        """Write the records a process put in Redis more than `older_than` seconds ago whose
        batch it never wrote (it died, or lost the database until it stopped). Synchronous: a
        Celery task runs it. Idempotent: a record already written, or deleted since, stays so."""
        if not redis_enabled():
            return 0
        from apps.core.redis import sync_redis

        client = sync_redis()
        ids = [i.decode() if isinstance(i, bytes) else i for i in
               client.zrangebyscore(self._unwritten_key(), "-inf", time.time() - older_than, start=0, num=1000)]
        if not ids:
            return 0
        records = []
        for record_id, raw in zip(ids, client.mget([self._redis_key(i) for i in ids])):
            if raw is not None:
                records.append(self._record_from_json(raw))
        if records:
            self._write_batch(records)
        client.zrem(self._unwritten_key(), *ids)  # those without a record left are past saving
        return len(records)

    async def _redis_get(self, record_id: str) -> R | None:
        try:
            raw = await self._redis().get(self._redis_key(record_id))
        except Exception:
            logger.warning("%s record not read from Redis", self.name, exc_info=True)
            return None
        if raw is None:
            return None
        return self._record_from_json(raw)

    def _record_from_json(self, raw: bytes) -> R:
        values = orjson.loads(raw)
        values["created_at"] = datetime.fromisoformat(values["created_at"]) if values.get("created_at") else None
        return self.record_type(**values)

    def _flusher_ensure(self) -> None:
        if self._task is None or self._task.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._run(), name=f"{self.name}-flusher")

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wakeup.wait(), settings.GATEWAY_SPEND_FLUSH_INTERVAL)
            except TimeoutError:
                pass
            self._wakeup.clear()
            await self.flush()

    async def flush(self) -> None:
        while self._pending:
            batch = [self._pending.popleft() for _ in range(min(len(self._pending), _BATCH_SIZE))]
            try:
                await db_call(self._write_batch, batch)
            except Exception:
                logger.warning("%s records not written (database unavailable?)", self.name, exc_info=True)
                self._pending.extendleft(reversed(batch))
                return
            if redis_enabled():
                await self._redis_written(batch)

    def _write_batch(self, records: list[R]) -> int:
        return _function(self._write)(records=records)

    def _read(self, record_id: str) -> R | None:
        return _function(self._get)(record_id)

    def _delete_row(self, record_id: str) -> None:
        _function(self._delete)(record_id)

    async def stop(self) -> None:
        """Write what is left (the process is shutting down)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        await self.flush()

    async def get(self, record_id: str, context: KeyContext) -> R | None:
        """The record if it exists and this key may see it (else None: the caller answers 404)."""
        if record_id in self._cache:
            record = self._cache[record_id]
        else:
            record = await self._redis_get(record_id) if redis_enabled() else None
            if record is None:
                record = await db_call(self._read, record_id)
            if record is not None:
                self._remember(record_id, record)
        if record is None or not record.readable_by(context):
            return None
        return record

    async def delete(self, record_id: str) -> None:
        self._forget_one(record_id)
        if redis_enabled():
            try:
                await self._redis().delete(self._redis_key(record_id))
                # Every other replica drops it from its cache (and its buffer) too.
                message = {"kind": self.deleted_kind, "id": record_id}
                await gateway_redis.publish(self._redis(), invalidation.channel(), orjson.dumps(message))
            except Exception:
                logger.warning("%s record not deleted from Redis", self.name, exc_info=True)
        await db_call(self._delete_row, record_id)

    def _forget_one(self, record_id: str) -> None:
        self._remember(record_id, None)
        for record in list(self._pending):
            if record.id == record_id:
                self._pending.remove(record)

    def handle_message(self, message: dict) -> None:
        kind = message.get("kind")
        if kind == self.deleted_kind and self.deleted_kind and isinstance(message.get("id"), str):
            self._forget_one(message["id"])
        elif kind == invalidation.KIND_EVERYTHING:
            # A delete published while this process was not listening was missed: read again.
            self.forget()

    def forget(self) -> None:
        """Empty the cache (tests; a purge)."""
        self._cache.clear()
