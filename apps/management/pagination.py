"""Paging of the management API's lists (LiteLLM's page / page_size)."""

from __future__ import annotations

from rest_framework import serializers


class PageQuery(serializers.Serializer):
    page = serializers.IntegerField(min_value=1, default=1)
    page_size = serializers.IntegerField(min_value=1, max_value=100, default=25)


def page_of(items, *, page: int, size: int) -> tuple[list, int, int]:
    """(the page's items, total count, total pages) of a queryset."""
    total = items.count()
    start = (page - 1) * size
    return list(items[start : start + size]), total, max(1, -(-total // size))
