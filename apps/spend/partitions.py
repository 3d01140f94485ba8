"""Spend logs in monthly partitions on PostgreSQL, by start_time (apps.core.partitions).

In the database the primary key is (id, start_time) and request_id is unique with start_time. A
record's replay carries its own start_time, so the batch writer's idempotence on request_id holds.
"""

from __future__ import annotations

from datetime import datetime

from apps.core.partitions import MonthlyTable, month_partitions_drop_before, month_partitions_ensure

SPEND_LOG_MONTHS = MonthlyTable(table="spend_spendlog", column="start_time", unique=("request_id",))


def spend_log_partitions_ensure(*, months_ahead: int = 2, now: datetime | None = None) -> list[str]:
    return month_partitions_ensure(SPEND_LOG_MONTHS, months_ahead=months_ahead, now=now)


def spend_log_partitions_drop_before(*, cutoff: datetime, dry_run: bool = False) -> tuple[list[str], int]:
    return month_partitions_drop_before(SPEND_LOG_MONTHS, cutoff=cutoff, dry_run=dry_run)
