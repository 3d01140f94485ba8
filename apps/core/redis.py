"""Redis clients: optional everywhere. With no REDIS_URL the callers use in-process backends."""

from __future__ import annotations

from functools import lru_cache

import redis
import redis.asyncio as aioredis
from django.conf import settings


def redis_enabled() -> bool:
    return bool(settings.REDIS_URL)


def redis_key(*parts: str) -> str:
    return settings.GATEWAY_REDIS_PREFIX + ":".join(parts)


@lru_cache(maxsize=1)
def sync_redis() -> redis.Redis:
    """For the control plane (admin, management API, commands)."""
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)


def new_async_redis() -> aioredis.Redis:
    """For the data plane; one per event loop, owned by the process runtime."""
    return aioredis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
    )
