"""Redis clients: optional everywhere. With no Redis configured the callers use in-process backends.

Three shapes, chosen by settings.REDIS_MODE: one server, a Redis Cluster, or a master found
through Sentinel. Callers never branch on the shape except where Redis itself differs:

- a Lua script may only touch keys of one cluster slot, so every script's keys share a hash tag
  (`{...}` in the key; see apps.keys.limits and apps.routing.selection.deployment_state);
- pub/sub on a cluster is sharded (SPUBLISH / SSUBSCRIBE, the channel's shard only): use
  `publish()` and `subscription_open()` here rather than the client's own.

Every client retries a command that lost its connection (REDIS_RETRIES, backing off up to
REDIS_RETRY_BACKOFF_MAX seconds): a Sentinel failover or a cluster's slot move is ridden out;
beyond that the caller's own degradation applies (README, Redis).
"""

from __future__ import annotations

import asyncio
import weakref
from functools import lru_cache
from urllib.parse import unquote, urlparse

import redis
import redis.asyncio as aioredis
from django.conf import settings
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from apps.core.hot_settings import setting

_RETRIED_ERRORS = (RedisConnectionError, RedisTimeoutError)


def redis_enabled() -> bool:
    return bool(settings.REDIS_MODE)


def redis_cluster() -> bool:
    return settings.REDIS_MODE == "cluster"


def redis_key(*parts: str) -> str:
    return setting("GATEWAY_REDIS_PREFIX") + ":".join(parts)


def _nodes(value: list[str]) -> list[tuple[str, int]]:
    nodes = []
    for item in value:
        host, _, port = item.rpartition(":")
        nodes.append((host.strip("[]") or "127.0.0.1", int(port or 6379)))
    return nodes


def _url_options() -> dict:
    """Credentials, database and TLS from REDIS_URL, for the shapes that name their servers
    elsewhere (REDIS_CLUSTER_NODES, REDIS_SENTINELS)."""
    if not settings.REDIS_URL:
        return {}
    url = urlparse(settings.REDIS_URL)
    options: dict = {}
    if url.username:
        options["username"] = unquote(url.username)
    if url.password:
        options["password"] = unquote(url.password)
    if url.scheme == "rediss":
        options["ssl"] = True
    return options


def _url_db() -> int:
    path = urlparse(settings.REDIS_URL or "").path.strip("/")
    return int(path) if path.isdigit() else 0


def _common(retry) -> dict:
    return {
        "socket_timeout": settings.REDIS_SOCKET_TIMEOUT,
        "socket_connect_timeout": settings.REDIS_SOCKET_TIMEOUT,
        "retry": retry,
        "retry_on_error": list(_RETRIED_ERRORS),
    }


def _backoff() -> ExponentialBackoff:
    return ExponentialBackoff(cap=settings.REDIS_RETRY_BACKOFF_MAX, base=0.05)


def _client(*, asynchronous: bool):
    """A client of the configured topology (REDIS_MODE): redis-py's asyncio flavour or its plain one."""
    if asynchronous:
        from redis.asyncio import cluster, sentinel
        from redis.asyncio.retry import Retry

        plain, extra = aioredis.Redis, {"health_check_interval": 30}
    else:
        from redis import cluster, sentinel
        from redis.retry import Retry

        plain, extra = redis.Redis, {}
    mode = settings.REDIS_MODE
    common = _common(Retry(_backoff(), settings.REDIS_RETRIES, supported_errors=_RETRIED_ERRORS))
    if mode == "cluster":
        if settings.REDIS_CLUSTER_NODES:
            nodes = [cluster.ClusterNode(host, port) for host, port in _nodes(settings.REDIS_CLUSTER_NODES)]
            return cluster.RedisCluster(startup_nodes=nodes, **_url_options(), **common)
        return cluster.RedisCluster.from_url(settings.REDIS_URL, **common)
    if mode == "sentinel":
        topology = sentinel.Sentinel(
            _nodes(settings.REDIS_SENTINELS),
            sentinel_kwargs=_sentinel_options(),
            db=_url_db(), **_url_options(), **common,
        )
        return topology.master_for(settings.REDIS_SENTINEL_MASTER)
    return plain.from_url(settings.REDIS_URL, **extra, **common)


@lru_cache(maxsize=1)
def sync_redis():
    """For the control plane (admin, management API, commands, Celery)."""
    return _client(asynchronous=False)


def new_async_redis():
    """For the data plane; one per event loop (see AsyncRedisPerLoop)."""
    return _client(asynchronous=True)


def _sentinel_options() -> dict:
    options = {"socket_timeout": settings.REDIS_SOCKET_TIMEOUT, "socket_connect_timeout": settings.REDIS_SOCKET_TIMEOUT}
    if settings.REDIS_SENTINEL_PASSWORD:
        options["password"] = settings.REDIS_SENTINEL_PASSWORD
    return options


class AsyncRedisPerLoop:
    """The async client of the running event loop, made on first use. A client is bound to the
    loop it was made on; tests (and the Celery worker's asyncio.run) start new loops, and only
    the newest is kept. The loop is known by a weak reference, not its id(): a closed loop's id
    goes to a later loop now and then (2 of 20 asyncio.run loops here), which would then be
    handed the dead loop's client."""

    __slots__ = ("_client", "_factory", "_loop", "_on_new")

    def __init__(self, on_new=None, factory=None) -> None:
        self._loop: weakref.ref | None = None
        self._client = None
        self._on_new = on_new  # called with a new client: e.g. to register scripts on it
        self._factory = factory  # None: new_async_redis, looked up when a client is made

    @property
    def made(self):
        """What get() last made (None before), from any thread: for inspection."""
        return self._client

    def get(self):
        loop = asyncio.get_running_loop()
        if self._loop is None or self._loop() is not loop:
            client = (self._factory or new_async_redis)()
            self._client = (client, self._on_new(client)) if self._on_new else client
            self._loop = weakref.ref(loop)
        return self._client


def publish(client, channel: str, data: bytes):
    """PUBLISH, or SPUBLISH on a cluster (only the channel's shard carries it). Works with a sync
    or an async client: the caller awaits what an async one returns."""
    return client.spublish(channel, data) if redis_cluster() else client.publish(channel, data)


async def subscription_open(client, channel: str):
    """A pub/sub subscription to `channel` (sharded on a cluster). Read it with
    subscription_message()."""
    if redis_cluster():
        await client.initialize()  # the slot map: which shard carries the channel
        pubsub = client.pubsub()
        await pubsub.ssubscribe(channel)
        return pubsub
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    return pubsub


async def subscription_message(pubsub, timeout: float):
    """The next published payload (bytes), or None after `timeout` seconds or a control message."""
    if redis_cluster():
        message = await pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=timeout)
        kind = "smessage"
    else:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        kind = "message"
    if message is None or message.get("type") not in (kind, kind.encode()):
        return None
    return message["data"]


def publish_command() -> str:
    """The command a Lua script publishes with (SPUBLISH's channel must share the script's slot)."""
    return "SPUBLISH" if redis_cluster() else "PUBLISH"


def register_script(client, source: str):
    """An async callable running the Lua `source` on `client`: EVALSHA, and EVAL where the server
    does not have it yet (a new node, a failed-over master, a flushed cache). Not the client's own
    Script: on a cluster, many first calls at once made its SCRIPT LOAD race the evaluations.
    On one plain-TCP server the calls go down a pipelined connection (apps.core.redis_pipeline)."""
    import hashlib

    from redis.exceptions import NoScriptError

    from apps.core.redis_pipeline import pipelined_connection

    sha = hashlib.sha1(source.encode()).hexdigest()
    pipe = pipelined_connection(client)
    if pipe is not None:  # one server over plain TCP: the request path's fast lane
        async def run_pipelined(keys=(), args=()):
            try:
                return await pipe.call("EVALSHA", sha, len(keys), *keys, *args)
            except NoScriptError:
                return await pipe.call("EVAL", source, len(keys), *keys, *args)

        # One EVALSHA queued now, no retry (PipelinedConnection.send_now): for a caller that
        # falls back to the call above. None when the connection is not up.
        run_pipelined.send_now = lambda keys, args: pipe.send_now("EVALSHA", sha, len(keys), *keys, *args)
        return run_pipelined

    async def run(keys=(), args=()):
        try:
            return await client.evalsha(sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(source, len(keys), *keys, *args)

    return run
