"""Paging of the management API's lists (LiteLLM's page / page_size)."""

from __future__ import annotations

from rest_framework import serializers


# The largest number a query or body may carry where a database column or an OFFSET takes it:
# beyond, SQLite and PostgreSQL raise instead of answering (a 500 instead of a 400).
MAX_INT = 2_147_483_647


def page_field() -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=MAX_INT, default=1)


class PageQuery(serializers.Serializer):
    page = page_field()
    page_size = serializers.IntegerField(min_value=1, max_value=100, default=25)


def page_of(items, *, page: int, size: int, bounded: bool = False) -> tuple[list, int, int]:
    """(the page's items, total count, total pages) of a queryset. `bounded`: for a table of
    millions, the total is exact up to apps.core.db.COUNT_BOUND rows and an estimate beyond."""
    if bounded:
        from apps.core.db import count_bounded

        total, _ = count_bounded(items)
    else:
        total = items.count()
    start = (page - 1) * size
    return list(items[start : start + size]), total, max(1, -(-total // size))
