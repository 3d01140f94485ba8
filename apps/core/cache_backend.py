"""Django's cache on a Redis Cluster or a Sentinel's master, through apps.core.redis.sync_redis().

django-redis stays the backend on one server; it has no cluster client, and its Sentinel client
would be a second set of connection settings to keep in step. The control plane uses the cache
for small things (a webhook's coalescing mark), so this covers what Django's API needs and no more.
"""

from __future__ import annotations

import pickle

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache

from apps.core.redis import sync_redis


class GatewayRedisCache(BaseCache):
    def __init__(self, location, params):
        super().__init__(params)

    def _ttl(self, timeout) -> int | None:
        """Seconds for Redis (None: no expiry); 0 or less means 'expire at once'."""
        timeout = self.get_backend_timeout(timeout)
        if timeout is None:
            return None
        return max(int(timeout), 0)

    def _key(self, key, version=None) -> str:
        key = self.make_key(key, version=version)
        self.validate_key(key)
        return key

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        ttl = self._ttl(timeout)
        if ttl == 0:
            return False
        return bool(sync_redis().set(self._key(key, version), pickle.dumps(value), nx=True, ex=ttl))

    def get(self, key, default=None, version=None):
        raw = sync_redis().get(self._key(key, version))
        return default if raw is None else pickle.loads(raw)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        ttl = self._ttl(timeout)
        if ttl == 0:
            self.delete(key, version)
            return
        sync_redis().set(self._key(key, version), pickle.dumps(value), ex=ttl)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        ttl = self._ttl(timeout)
        name = self._key(key, version)
        if ttl is None:
            return bool(sync_redis().persist(name))
        return bool(sync_redis().expire(name, max(ttl, 1)))

    def delete(self, key, version=None):
        return bool(sync_redis().delete(self._key(key, version)))

    def has_key(self, key, version=None):
        return bool(sync_redis().exists(self._key(key, version)))

    def clear(self):
        client = sync_redis()
        for name in client.scan_iter(match=f"{self.key_prefix}*", count=1000):
            client.delete(name)
