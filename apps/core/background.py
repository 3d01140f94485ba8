"""Fire-and-forget work on the event loop, held by strong references until it ends.

(asyncio keeps only weak references to tasks: an unreferenced one can vanish mid-way.)
"""

from __future__ import annotations

import asyncio
import logging
from typing import Coroutine

logger = logging.getLogger(__name__)

_tasks: set[asyncio.Future] = set()  # tasks, and held futures (hold())


def spawn(coroutine: Coroutine, *, name: str) -> asyncio.Task:
    task = asyncio.get_running_loop().create_task(coroutine, name=name)
    _tasks.add(task)
    task.add_done_callback(_finished)
    return task


def hold() -> asyncio.Future:
    """A future the shutdown's drain waits for, like a task's, until the caller sets its result:
    for work that runs as callbacks, not as a task."""
    future = asyncio.get_running_loop().create_future()
    _tasks.add(future)
    future.add_done_callback(_tasks.discard)
    return future


def _finished(task: asyncio.Task) -> None:
    _tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.error("background task %s failed", task.get_name(), exc_info=task.exception())


async def drain(timeout: float = 5.0) -> None:
    """Wait for what is still running (at shutdown)."""
    if _tasks:
        await asyncio.wait(list(_tasks), timeout=timeout)
