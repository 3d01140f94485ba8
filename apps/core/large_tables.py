"""The admin on tables of millions of rows (spend logs, billing events, audit rows): a paginator and
a list filter that never read the whole table."""

from __future__ import annotations

from django.contrib import admin
from django.core.paginator import Paginator
from django.utils.functional import cached_property

from apps.core.db import count_bounded


class LargeTablePaginator(Paginator):
    """Counts at most apps.core.db.COUNT_BOUND rows: beyond, the planner's estimate (no filter) or
    the bound. COUNT(*) of ten million rows took ten seconds a page; pages past the bound are
    still reached by narrowing the filters."""

    @cached_property
    def count(self) -> int:
        total, _ = count_bounded(self.object_list)
        return total


class RecentValuesFilter(admin.AllValuesFieldListFilter):
    """A free-text column's filter (provider, call type) offering the values of the newest rows:
    Django's own runs SELECT DISTINCT over the whole table for its choices. A value only older rows
    hold is still filtered on by its URL parameter."""

    sample = 10_000

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        newest = model_admin.get_queryset(request).order_by("-pk")[: self.sample].values_list(field_path, flat=True)
        values = set(newest)
        self.lookup_choices = sorted(value for value in values if value is not None) + (
            [None] if None in values else [])
