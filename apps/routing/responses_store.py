"""Stored /v1/responses: written through a buffer, read through an in-process cache.

The request path never waits for the database to store a response: `add` puts the record
in the cache (so a continuation or GET on this process finds it at once) and on a deque a
flusher task writes in batches every GATEWAY_SPEND_FLUSH_INTERVAL seconds. With Redis the
record is also put there for an hour (in the background), so another replica finds it before
the batch is written. A read that misses both (evicted, or older) costs one database query.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from django.conf import settings

from apps.core import invalidation
from apps.core.background import spawn
from apps.core.db import db_call
from apps.core.redis import new_async_redis, redis_enabled, redis_key
from apps.keys.context import KeyContext

logger = logging.getLogger(__name__)

_CACHE_SIZE = 10_000
_REDIS_TTL = 3600  # seconds: the bridge until the database has the record
KIND_RESPONSE_DELETED = "response_deleted"  # an invalidation message: drop this response


@dataclass(slots=True)
class ResponseRecord:
    id: str
    key_hash: str
    key_id: int | None
    team_id: str | None
    organization_id: str | None
    model: str
    deployment_id: int | None
    native: bool
    previous_response_id: str
    input_items: list = field(default_factory=list)
    output_items: list = field(default_factory=list)
    response: dict = field(default_factory=dict)
    created_at: datetime | None = None

    def readable_by(self, context: KeyContext) -> bool:
        if context.is_master:
            return True
        if self.team_id:
            return context.team_id == self.team_id
        return context.token_hash == self.key_hash


def _stored_responses_write(records: list[ResponseRecord]) -> int:
    from apps.routing.services import stored_responses_write

    return stored_responses_write(records=records)


def _stored_response_get(response_id: str) -> ResponseRecord | None:
    from apps.routing.selectors import stored_response_get

    return stored_response_get(response_id=response_id)


def _stored_response_delete(response_id: str) -> int:
    from apps.routing.services import stored_response_delete

    return stored_response_delete(response_id=response_id)


class ResponseStore:
    def __init__(self) -> None:
        self._cache: OrderedDict[str, ResponseRecord | None] = OrderedDict()
        self._pending: deque[ResponseRecord] = deque()
        self._task: asyncio.Task | None = None
        self._wakeup: asyncio.Event | None = None
        self._redis_clients: dict = {}

    def _remember(self, response_id: str, record: ResponseRecord | None) -> None:
        self._cache[response_id] = record
        self._cache.move_to_end(response_id)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)

    def add(self, record: ResponseRecord) -> None:
        self._remember(record.id, record)
        self._pending.append(record)
        self._flusher_ensure()
        if redis_enabled():
            spawn(self._redis_put(record), name="responses-redis-put")

    def _redis(self):
        loop_id = id(asyncio.get_running_loop())
        if self._redis_clients.get(loop_id) is None:
            self._redis_clients = {loop_id: new_async_redis()}  # one per event loop (tests restart loops)
        return self._redis_clients[loop_id]

    async def _redis_put(self, record: ResponseRecord) -> None:
        value = orjson.dumps(dataclasses.asdict(record))
        try:
            await self._redis().set(redis_key("responses", record.id), value, ex=_REDIS_TTL)
        except Exception:
            logger.warning("stored response not put in Redis", exc_info=True)

    async def _redis_get(self, response_id: str) -> ResponseRecord | None:
        try:
            raw = await self._redis().get(redis_key("responses", response_id))
        except Exception:
            logger.warning("stored response not read from Redis", exc_info=True)
            return None
        if raw is None:
            return None
        values = orjson.loads(raw)
        values["created_at"] = datetime.fromisoformat(values["created_at"]) if values.get("created_at") else None
        return ResponseRecord(**values)

    def _flusher_ensure(self) -> None:
        if self._task is None or self._task.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._run(), name="responses-flusher")

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
            batch = [self._pending.popleft() for _ in range(min(len(self._pending), 200))]
            try:
                await db_call(_stored_responses_write, batch)
            except Exception:
                logger.warning("stored responses not written (database unavailable?)", exc_info=True)
                self._pending.extendleft(reversed(batch))
                return

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

    async def get(self, response_id: str, context: KeyContext) -> ResponseRecord | None:
        """The record if it exists and this key may see it (else None: the caller answers 404)."""
        if response_id in self._cache:
            record = self._cache[response_id]
        else:
            record = await self._redis_get(response_id) if redis_enabled() else None
            if record is None:
                record = await db_call(_stored_response_get, response_id)
            if record is not None:
                self._remember(response_id, record)
        if record is None or not record.readable_by(context):
            return None
        return record

    async def delete(self, response_id: str) -> None:
        self._forget_one(response_id)
        if redis_enabled():
            try:
                await self._redis().delete(redis_key("responses", response_id))
                # Every other replica drops it from its cache (and its buffer) too.
                message = {"kind": KIND_RESPONSE_DELETED, "id": response_id}
                await self._redis().publish(invalidation.channel(), orjson.dumps(message))
            except Exception:
                logger.warning("stored response not deleted from Redis", exc_info=True)
        await db_call(_stored_response_delete, response_id)

    def _forget_one(self, response_id: str) -> None:
        self._remember(response_id, None)
        for record in list(self._pending):
            if record.id == response_id:
                self._pending.remove(record)

    def handle_message(self, message: dict) -> None:
        if message.get("kind") == KIND_RESPONSE_DELETED and isinstance(message.get("id"), str):
            self._forget_one(message["id"])

    def forget(self) -> None:
        """Empty the cache (tests; a purge)."""
        self._cache.clear()


response_store = ResponseStore()
invalidation.register_handler(response_store.handle_message)
