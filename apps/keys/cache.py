"""The data plane's in-process cache of key contexts.

A hit costs a dict lookup. A miss reads the database once (one thread hop for the
whole lookup), and concurrent misses for the same key share that one read.
Invalidations (apps.core.invalidation) drop entries at once; the TTL only backs up
a missed pub/sub message. Unknown hashes are cached briefly too, so a flood of bad
keys cannot turn into a flood of queries.
"""

from __future__ import annotations

import asyncio
import time

from django.conf import settings

from apps.core import invalidation
from apps.core.db import db_call
from apps.keys.context import KeyContext
from django.utils.module_loading import import_string


class KeyCache:
    def __init__(self, loader: str = "apps.keys.selectors.key_context_get") -> None:
        # A selector taking the cache key: a key's sha256, or a JWT's identity.
        self._loader_path = loader
        self._loader = None
        self._entries: dict[str, tuple[float, KeyContext | None]] = {}
        self._loading: dict[str, asyncio.Future] = {}
        # Bumped by every invalidation; a load that raced one is not stored.
        self._generation = 0

    async def get(self, token_hash: str) -> KeyContext | None:
        entry = self._entries.get(token_hash)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        pending = self._loading.get(token_hash)
        if pending is not None:
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._loading[token_hash] = future
        generation = self._generation
        try:
            if self._loader is None:
                self._loader = import_string(self._loader_path)
            context = await db_call(self._loader, token_hash)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters may be none
            raise
        finally:
            self._loading.pop(token_hash, None)
        if generation == self._generation:
            ttl = settings.GATEWAY_KEY_CACHE_TTL if context else settings.GATEWAY_NEGATIVE_KEY_CACHE_TTL
            self._entries[token_hash] = (time.monotonic() + ttl, context)
        future.set_result(context)
        return context

    def invalidate(self, token_hash: str | None = None) -> None:
        self._generation += 1
        if token_hash is None:
            self._entries.clear()
        else:
            self._entries.pop(token_hash, None)

    def handle_message(self, message: dict) -> None:
        kind = message.get("kind")
        if kind == invalidation.KIND_KEY:
            self.invalidate(message.get("hash"))
        elif kind == invalidation.KIND_ALL_KEYS:
            self.invalidate()


key_cache = KeyCache()
invalidation.register_handler(key_cache.handle_message)
