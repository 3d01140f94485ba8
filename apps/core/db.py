"""Database access from async code: one thread hop per unit of work, never per row."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections

T = TypeVar("T")


def _run_and_release(fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
    try:
        return fn(*args, **kwargs)
    finally:
        # No request_finished signal runs on the data plane, so release the
        # connection (back to the pool on PostgreSQL) here.
        close_old_connections()


async def db_call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await sync_to_async(_run_and_release, thread_sensitive=True)(fn, args, kwargs)
