"""The in-process cache of the request path: a hit is a dict lookup; a miss loads once, however
many requests miss at the same moment (single flight); an invalidation that lands while a load
runs keeps that load's result out, so a stale answer is never stored.

Key contexts, the deployment registry, the routing policy and wallet states all use it (each
with its own loader, TTL and invalidation messages).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

_MISSING = object()


class SingleFlightCache(Generic[V]):
    def __init__(self, load: Callable[[Hashable], Awaitable[V]], *, ttl: Callable[[V], float]) -> None:
        """`load(key)` reads a value; `ttl(value)` says for how many seconds it may be kept."""
        self._load = load
        self._ttl = ttl
        self._entries: dict[Hashable, tuple[float, V]] = {}
        self._loading: dict[Hashable, asyncio.Future] = {}
        self._generation = 0  # bumped by every invalidation

    async def get(self, key: Hashable) -> V:
        entry = self._entries.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        generation = self._generation
        try:
            value = await self._load(key)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: there may be no waiter
            raise
        finally:
            self._loading.pop(key, None)
        if generation == self._generation:
            self._entries[key] = (time.monotonic() + self._ttl(value), value)
        future.set_result(value)
        return value

    def peek(self, key: Hashable, default=None):
        """The value if cached and fresh, else `default` (no load)."""
        entry = self._entries.get(key)
        return entry[1] if entry is not None and entry[0] > time.monotonic() else default

    def put(self, key: Hashable, value: V, *, ttl: float | None = None) -> None:
        """Store a value that arrived from elsewhere (an invalidation message carrying it)."""
        self._generation += 1  # a load running now read something older
        self._entries[key] = (time.monotonic() + (self._ttl(value) if ttl is None else ttl), value)

    def invalidate(self, key: Hashable = _MISSING) -> None:
        """Drop one key, or everything."""
        self._generation += 1
        if key is _MISSING:
            self._entries.clear()
        else:
            self._entries.pop(key, None)
