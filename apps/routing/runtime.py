"""What each server process runs beside the requests: the spend flusher and the
invalidation listener. Started by the ASGI lifespan (or on the first request where
the server has no lifespan), stopped on shutdown, which flushes the spend buffer."""

from __future__ import annotations

import asyncio
import gc
import logging

from apps.billing.entitlement import entitlement_refresher_start, entitlement_refresher_stop
from apps.core import invalidation
from apps.core.background import drain
from apps.core.redis import redis_enabled
from apps.keys.master import master_key_load
from apps.providers.transport import transport
from apps.routing.responses_store import response_store
from apps.spend import tokens
from apps.spend.buffer import spend_buffer
from apps.spend.pricing import price_catalog

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
        master_key_load()

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
        await response_store.stop()
        await transport.close()


runtime = ProcessRuntime()
