"""Where spend records wait while the database is down: a Redis list every replica can replay.

Without Redis they wait in the process's memory (the buffer keeps them); a graceful
shutdown still writes or spills them first.
"""

from __future__ import annotations

from apps.core.redis import AsyncRedisPerLoop, redis_enabled, redis_key
from apps.spend.records import SpendRecord, record_from_json, record_to_json


class RedisSpill:
    def __init__(self) -> None:
        self._clients = AsyncRedisPerLoop()

    def _client(self):
        return self._clients.get()

    @property
    def key(self) -> str:
        return redis_key("spend", "spill")

    async def push(self, records: list[SpendRecord]) -> None:
        await self._client().rpush(self.key, *[record_to_json(r) for r in records])

    async def pop(self, count: int) -> list[SpendRecord]:
        items = await self._client().lpop(self.key, count)
        return [record_from_json(item) for item in items or []]

    async def push_back(self, records: list[SpendRecord]) -> None:
        """Return records to the head of the list (a replay that failed)."""
        if records:
            await self._client().lpush(self.key, *[record_to_json(r) for r in reversed(records)])

    async def length(self) -> int:
        return await self._client().llen(self.key)


def spill_for_process() -> RedisSpill | None:
    return RedisSpill() if redis_enabled() else None
