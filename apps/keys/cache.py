"""The data plane's in-process cache of key contexts.

A hit costs a dict lookup. A miss reads the database once (one thread hop for the
whole lookup), and concurrent misses for the same key share that one read.
Invalidations (apps.core.invalidation) drop entries at once; the TTL only backs up
a missed pub/sub message. Unknown hashes are cached briefly too, so a flood of bad
keys cannot turn into a flood of queries.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.utils.module_loading import import_string

from apps.core import invalidation
from apps.core.cache import SingleFlightCache
from apps.core.db import db_call
from apps.keys.context import KeyContext


def _ttl(context: KeyContext | None) -> float:
    if context is None:
        return settings.GATEWAY_NEGATIVE_KEY_CACHE_TTL
    if context.valid_until is not None:
        # Reloaded when it stops being true (a temporary budget increase ends), not a TTL later.
        return max(min(settings.GATEWAY_KEY_CACHE_TTL, context.valid_until - time.time()), 0.0)
    return settings.GATEWAY_KEY_CACHE_TTL


class KeyCache:
    def __init__(self, loader: str = "apps.keys.selectors.key_context_get") -> None:
        # A selector taking the cache key: a key's sha256, or a JWT's identity.
        self._loader_path = loader
        self._loader = None
        self._cache: SingleFlightCache[KeyContext | None] = SingleFlightCache(
            self._load,
            ttl=_ttl,
        )
        self.get = self._cache.get  # the hot path: a dict lookup on a hit

    async def _load(self, token_hash: str) -> KeyContext | None:
        if self._loader is None:
            self._loader = import_string(self._loader_path)
        return await db_call(self._loader, token_hash)

    def invalidate(self, token_hash: str | None = None) -> None:
        if token_hash is None:
            self._cache.invalidate()
        else:
            self._cache.invalidate(token_hash)

    def handle_message(self, message: dict) -> None:
        kind = message.get("kind")
        if kind == invalidation.KIND_KEY:
            self.invalidate(message.get("hash"))
        elif kind == invalidation.KIND_ALL_KEYS:
            self.invalidate()


key_cache = KeyCache()
invalidation.register_handler(key_cache.handle_message)
