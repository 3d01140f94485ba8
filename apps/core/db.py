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


def delete_in_chunks(queryset, *, chunk: int = 5_000) -> int:
    """Delete a queryset's rows a chunk at a time, each in its own short transaction, so writers
    beside it (the spend flusher, the billing sender) are never held up for long. Returns the count."""
    from django.db import transaction

    deleted = 0
    while ids := list(queryset.order_by("pk").values_list("pk", flat=True)[:chunk]):
        with transaction.atomic():
            deleted += queryset.model.objects.filter(pk__in=ids).delete()[0]
    return deleted
