"""What each server process runs beside the requests: the spend flusher and the
invalidation listener. Started by the ASGI lifespan (or on the first request where
the server has no lifespan), stopped on shutdown, which flushes the spend buffer."""

from __future__ import annotations

import asyncio
import gc
import logging

from django.conf import settings

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
        master_key_set(configured_master_key())
        spend_buffer.start()
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
        await drain()  # limit settlements still on their way to Redis
        await spend_buffer.stop()
        await transport.close()


def configured_master_key() -> str | None:
    """GATEWAY_MASTER_KEY, else general_settings.master_key of GATEWAY_CONFIG."""
    if settings.GATEWAY_MASTER_KEY:
        return settings.GATEWAY_MASTER_KEY
    if settings.GATEWAY_CONFIG:
        from apps.providers.config import ConfigError, config_read

        try:
            return config_read(settings.GATEWAY_CONFIG).master_key
        except ConfigError:
            logger.exception("GATEWAY_CONFIG could not be read for its master key")
    return None


runtime = ProcessRuntime()
