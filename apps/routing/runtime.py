"""What each server process runs beside the requests: the spend flusher and the
invalidation listener. Started by the ASGI lifespan (or on the first request where
the server has no lifespan), stopped on shutdown, which flushes the spend buffer."""

from __future__ import annotations

import asyncio
import gc
import logging

from django.conf import settings

from apps.billing.entitlement import entitlement_refresher_start, entitlement_refresher_stop
from apps.core import invalidation
from apps.core.background import drain, spawn
from apps.core.redis import redis_enabled
from apps.keys.master import master_key_load
from apps.providers.transport import transport
from apps.routing.batch_store import batch_store, file_store
from apps.routing.metrics import request_metrics
from apps.routing.tracing import tracing
from apps.routing.responses_store import response_store
from apps.spend import tokens
from apps.spend.callbacks import logging_callbacks, logging_callbacks_configure
from apps.routing.response_cache import response_cache_configure
from apps.routing.semantic_cache import semantic_cache
from apps.spend.buffer import spend_buffer
from apps.spend.pricing import price_catalog

logger = logging.getLogger(__name__)


class ProcessRuntime:
    def __init__(self) -> None:
        self.started = False
        self._listener: asyncio.Task | None = None
        self._batch_poller: asyncio.Task | None = None
        self._metrics_flusher: asyncio.Task | None = None

    async def start(self) -> None:
        if self.started:
            return
        self.started = True
        # Everything loaded so far (Django, apps, modules) lives as long as the process:
        # keep it out of the collector's full passes, which otherwise stall requests.
        gc.collect()
        gc.freeze()
        if settings.GATEWAY_GC_GEN0_THRESHOLD:
            gc.set_threshold(settings.GATEWAY_GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])
        master_key_load()

        await price_catalog.aload()  # the first requests are priced without waiting
        tokens.get_encoding(wait=False)  # the tokenizer loads in the background
        spend_buffer.start()
        await entitlement_refresher_start()
        if redis_enabled():
            self._listener = asyncio.get_running_loop().create_task(
                invalidation.listen_forever(), name="invalidation-listener"
            )
        tracing.start()
        logging_callbacks_configure()
        logging_callbacks.start()
        response_cache_configure()
        if semantic_cache.on:
            spawn(semantic_cache.warm(), name="semantic-cache-warm")
        self._metrics_flusher = asyncio.get_running_loop().create_task(_metrics_flush_forever(),
                                                                       name="metrics-flusher")
        if settings.CELERY_TASK_ALWAYS_EAGER:  # no broker, so no beat: this process follows the batches
            self._batch_poller = asyncio.get_running_loop().create_task(_batches_poll_forever(),
                                                                        name="batches-poller")

    async def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        for task in (self._listener, self._batch_poller, self._metrics_flusher):
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        self._listener = self._batch_poller = self._metrics_flusher = None
        request_metrics.flush()
        await asyncio.to_thread(tracing.stop)  # exports the spans still queued
        await logging_callbacks.stop()  # sends the records still queued
        await entitlement_refresher_stop()
        await drain()  # limit settlements still on their way to Redis
        await spend_buffer.stop()
        for store in (response_store, file_store, batch_store):
            await store.stop()
        await transport.close()


def _batches_poll_in_thread(loop: asyncio.AbstractEventLoop) -> None:
    from django.db import connections

    from apps.routing.batch_settlement import batches_poll

    try:
        batches_poll(limits_loop=loop)
    except Exception:
        logger.exception("polling the batches failed")
    finally:
        connections.close_all()  # this thread's: a poll a minute needs no connection kept open


async def _metrics_flush_forever() -> None:
    while True:
        await asyncio.sleep(settings.GATEWAY_METRICS_FLUSH_INTERVAL)
        request_metrics.flush()


async def _batches_poll_forever() -> None:
    """What the routing.batches_poll beat task does, where there is no beat (the embedded default)."""
    while True:
        await asyncio.sleep(settings.GATEWAY_BATCH_POLL_INTERVAL)
        # Its own thread (it waits on upstreams and the database); limits settle on this loop.
        await asyncio.to_thread(_batches_poll_in_thread, asyncio.get_running_loop())


runtime = ProcessRuntime()
