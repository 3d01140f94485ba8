"""The admin's paginator for tables of millions of rows (spend logs, billing events, audit rows)."""

from __future__ import annotations

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
