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


# Counting every row of a table of millions (spend logs) takes seconds: past this many, a list's
# total is the planner's estimate (an unfiltered list) or this bound (a filtered one).
COUNT_BOUND = 100_000


def count_bounded(queryset, *, bound: int | None = None) -> tuple[int, bool]:
    """(how many rows, whether that is exact). Counts at most bound + 1 rows; beyond, an
    unfiltered queryset on PostgreSQL answers with the planner's estimate of its table (all its
    partitions), any other with the bound."""
    bound = COUNT_BOUND if bound is None else bound
    counted = queryset.order_by()[: bound + 1].count()
    if counted <= bound:
        return counted, True
    if not queryset.query.where and _vendor(queryset.db) == "postgresql":
        return max(bound, table_rows_estimate(queryset.model._meta.db_table, using=queryset.db)), False
    return bound, False


def _vendor(alias: str) -> str:
    from django.db import connections

    return connections[alias].vendor


def table_rows_estimate(table: str, *, using: str = "default") -> int:
    """The planner's row count of a table, its partitions' added up (PostgreSQL, after ANALYZE or
    autovacuum; 0 before)."""
    from django.db import connections

    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint FROM pg_partition_tree(%s) t "
            "JOIN pg_class c ON c.oid = t.relid WHERE t.isleaf",
            [table],
        )
        return cursor.fetchone()[0]
