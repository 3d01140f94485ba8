"""Invalidation of the data plane's in-process caches, in this process and every other one.

The control plane calls publish() (after its transaction commits); each server
process applies the message to its own caches. With Redis the message travels over
pub/sub to every replica; without Redis there is only this process.
"""

from __future__ import annotations

import logging
from typing import Callable

import orjson
from django.db import transaction

from apps.core import redis as gateway_redis
from apps.core.redis import new_async_redis, redis_enabled, redis_key, sync_redis

logger = logging.getLogger(__name__)

KIND_KEY = "key"  # one virtual key, by hash
KIND_ALL_KEYS = "keys"  # every key context (a team, organization or user changed)
KIND_DEPLOYMENTS = "deployments"  # the deployment registry
KIND_EVERYTHING = "everything"  # applied locally after a (re)connect: what has no kind of its own

_handlers: list[Callable[[dict], None]] = []
_listening = False  # this process is subscribed: what others publish reaches it


def listening() -> bool:
    """True while this process receives every other process's messages (so a cache that is
    only changed by messages, such as the routing cooldowns' mirror, can be trusted)."""
    return _listening


def channel() -> str:
    # The routing state's hash tag: on a cluster the cooldown script publishes here (SPUBLISH), and
    # a script's shard channel must live in the slot of its keys.
    return redis_key("invalidate") + ":{rt}"


def register_handler(handler: Callable[[dict], None]) -> None:
    if handler not in _handlers:
        _handlers.append(handler)


def apply(message: dict) -> None:
    for handler in _handlers:
        try:
            handler(message)
        except Exception:  # one broken cache must not stop the others
            logger.exception("cache invalidation handler failed")


def apply_everything() -> None:
    """After a (re)connect to Redis messages may have been missed: drop it all."""
    for kind in (KIND_ALL_KEYS, KIND_DEPLOYMENTS, "router_settings", "prices", KIND_EVERYTHING):
        apply({"kind": kind})


def publish(message: dict) -> None:
    apply(message)
    if redis_enabled():
        try:
            gateway_redis.publish(sync_redis(), channel(), orjson.dumps(message))
        except Exception:
            # Other replicas then catch up through their cache TTL.
            logger.exception("could not publish a cache invalidation to Redis")


def publish_on_commit(message: dict) -> None:
    transaction.on_commit(lambda: publish(message))


async def listen_forever() -> None:
    """Apply every process's invalidations to this one; runs for the life of a server process."""
    import asyncio

    global _listening
    client = new_async_redis()
    delay = 0.5
    try:
        while True:
            pubsub = None
            try:
                pubsub = await gateway_redis.subscription_open(client, channel())
                _listening = True
                # Anything published while we were not listening is lost: start clean.
                apply_everything()
                delay = 0.5
                while True:
                    data = await gateway_redis.subscription_message(pubsub, timeout=30.0)
                    if data is None:
                        continue
                    try:
                        payload = orjson.loads(data)
                    except orjson.JSONDecodeError:
                        continue
                    if isinstance(payload, dict):
                        apply(payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("invalidation subscription lost; reconnecting", exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            finally:
                _listening = False
                try:
                    if pubsub is not None:
                        await pubsub.aclose()
                except Exception:
                    pass
    finally:
        await client.aclose()
