"""Short-lived playground credentials: the admin's playground calls the real /v1 path with one.

A credential (`sk-playground-…`) stands for one virtual key for a few minutes. Only its sha256
is stored, with a TTL, in Redis when one is configured (every replica sees it), else in process
memory (correct for one process, like the limiter). The data plane resolves it with one Redis
GET, never the database: the grant names the key's token hash, whose context then comes from
the ordinary key cache, so blocking, expiring, deleting or regenerating the key stops its
playground credentials at once.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import asdict, dataclass, replace

import orjson
import redis

from apps.core.errors import GatewayError, authentication_failed
from apps.core.redis import AsyncRedisPerLoop, redis_enabled, redis_key, sync_redis
from apps.keys.cache import key_cache
from apps.keys.context import KeyContext

PLAYGROUND_PREFIX = "sk-playground-"
PLAYGROUND_TAG = "playground"  # on every spend log a playground credential produces


@dataclass(frozen=True, slots=True)
class PlaygroundGrant:
    key_hash: str  # the token hash of the key the credential acts as
    key_id: int
    operator: str  # the admin user who minted it, kept on each spend log it produces
    expires_at: float  # unix time


def is_playground_credential(raw_key: str) -> bool:
    return raw_key.startswith(PLAYGROUND_PREFIX)


def playground_credential_new() -> tuple[str, str]:
    """A fresh credential and its sha256 (the only form stored)."""
    raw = PLAYGROUND_PREFIX + secrets.token_urlsafe(32)
    return raw, hashlib.sha256(raw.encode()).hexdigest()


class MemoryPlaygroundStore:
    def __init__(self) -> None:
        self._grants: dict[str, PlaygroundGrant] = {}
        self._lock = threading.Lock()  # minted from the admin's threads, read on the event loop

    def put(self, digest: str, grant: PlaygroundGrant) -> None:
        now = time.time()
        with self._lock:
            for stale in [d for d, g in self._grants.items() if g.expires_at <= now]:
                del self._grants[stale]
            self._grants[digest] = grant

    async def get(self, digest: str) -> PlaygroundGrant | None:
        return self._grants.get(digest)


class RedisPlaygroundStore:
    def __init__(self) -> None:
        self._clients = AsyncRedisPerLoop()

    def _client(self):
        return self._clients.get()

    def put(self, digest: str, grant: PlaygroundGrant) -> None:
        ttl = max(int(grant.expires_at - time.time()), 1)
        sync_redis().set(redis_key("playground", digest), orjson.dumps(asdict(grant)), ex=ttl)

    async def get(self, digest: str) -> PlaygroundGrant | None:
        raw = await self._client().get(redis_key("playground", digest))
        return PlaygroundGrant(**orjson.loads(raw)) if raw is not None else None


_store = None


def playground_store():
    """The process's store: Redis when one is configured, else in memory."""
    global _store
    if _store is None:
        _store = RedisPlaygroundStore() if redis_enabled() else MemoryPlaygroundStore()
    return _store


async def playground_grant_get(raw_key: str) -> PlaygroundGrant | None:
    """The grant behind a credential, if it exists and has not expired."""
    grant = await playground_store().get(hashlib.sha256(raw_key.encode()).hexdigest())
    if grant is None or grant.expires_at <= time.time():
        return None
    return grant


async def playground_context_get(raw_key: str) -> KeyContext | None:
    """The context of the key a credential acts as (None: that key is gone or was regenerated),
    its spend logs tagged as the playground's and naming the operator."""
    try:
        grant = await playground_grant_get(raw_key)
    except redis.RedisError:
        raise GatewayError("Playground credentials cannot be checked right now (Redis is unreachable).",
                           status=503, type="server_error", code="playground_unavailable") from None
    if grant is None:
        raise authentication_failed("Invalid or expired playground credential: the playground mints a new one.")
    context = await key_cache.get(grant.key_hash)
    if context is None:
        return None
    return replace(
        context,
        spend_tags=(*context.spend_tags, PLAYGROUND_TAG) if PLAYGROUND_TAG not in context.spend_tags
        else context.spend_tags,
        spend_logs_metadata={**(context.spend_logs_metadata or {}), "playground_operator": grant.operator},
    )
