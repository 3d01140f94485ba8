"""What each server process runs beside the requests: the spend flusher and the
invalidation listener. Started by the ASGI lifespan (or on the first request where
the server has no lifespan), stopped on shutdown, which flushes the spend buffer."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging

from django.conf import settings

from apps.billing.entitlement import entitlement_refresher_start, entitlement_refresher_stop
from apps.core import invalidation
from apps.core.background import drain
from apps.core.redis import redis_enabled
from apps.keys.auth import master_key_set
from apps.providers.transport import transport
from apps.spend.buffer import spend_buffer

logger = logging.getLogger(__name__)


class ProcessRuntime:
    def __init__(self) -> None:
        self.started = False
        self._listener: asyncio.Task | None = None

    async def start(self) -> None:
        if self.started:
            return
        self.started = True
        # Everything loaded so far (Django, apps, modules) lives as long as the process:
        # keep it out of the collector's full passes, which otherwise stall requests.
        gc.collect()
        gc.freeze()
        master_key_set(configured_master_key(), store_prompts=prompts_stored_by_default())
        from apps.spend import tokens
        from apps.spend.pricing import price_catalog

        await price_catalog.aload()  # the first requests are priced without waiting
        tokens.get_encoding(wait=False)  # the tokenizer loads in the background
        spend_buffer.start()
        await entitlement_refresher_start()
        if redis_enabled():
            self._listener = asyncio.get_running_loop().create_task(
                invalidation.listen_forever(), name="invalidation-listener"
            )

    async def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        if self._listener is not None:
            self._listener.cancel()
            try:
                await self._listener
            except (asyncio.CancelledError, Exception):
                pass
            self._listener = None
        await entitlement_refresher_stop()
        await drain()  # limit settlements still on their way to Redis
        await spend_buffer.stop()
        await transport.close()


def configured_master_key() -> str | None:
    """GATEWAY_MASTER_KEY, else general_settings.master_key of GATEWAY_CONFIG."""
    if settings.GATEWAY_MASTER_KEY:
        return settings.GATEWAY_MASTER_KEY
    if settings.GATEWAY_CONFIG:
        import os

        try:
            modified = os.stat(settings.GATEWAY_CONFIG).st_mtime_ns
        except OSError:
            modified = None
        return _config_master_key(settings.GATEWAY_CONFIG, modified)
    return None


@functools.lru_cache(maxsize=4)
def _config_master_key(path: str, modified: int | None) -> str | None:
    """Read once per version of the file (the management API asks on every request)."""
    from apps.providers.config import ConfigError, config_read

    try:
        return config_read(path).master_key
    except ConfigError:
        logger.exception("GATEWAY_CONFIG could not be read for its master key")
        return None


runtime = ProcessRuntime()


def prompts_stored_by_default() -> bool:
    """GATEWAY_STORE_PROMPTS, else general_settings.store_prompts_in_spend_logs of GATEWAY_CONFIG
    (LiteLLM's name), else off. Read when a key's context is built, not per request."""
    if settings.GATEWAY_STORE_PROMPTS is not None:
        return settings.GATEWAY_STORE_PROMPTS
    if settings.GATEWAY_CONFIG:
        import os

        try:
            modified = os.stat(settings.GATEWAY_CONFIG).st_mtime_ns
        except OSError:
            return False
        return _config_store_prompts(settings.GATEWAY_CONFIG, modified)
    return False


@functools.lru_cache(maxsize=4)
def _config_store_prompts(path: str, modified: int | None) -> bool:
    from apps.providers.config import ConfigError, config_read

    try:
        return config_read(path).general_settings.get("store_prompts_in_spend_logs") is True
    except ConfigError:
        return False
