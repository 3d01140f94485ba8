"""Celery tasks of the spend app: thin, each a service call."""

from celery import shared_task


from apps.core.db_router import replica_reads
from apps.spend.journal import spend_journal_recover
from apps.spend.reconciliation import spend_counters_reconcile
from apps.spend.rollups import daily_spend_rollup_recent
from apps.spend.services import budget_periods_roll


@shared_task(name="spend.budget_periods_roll", ignore_result=True)
def budget_periods_roll_task() -> int:
    return budget_periods_roll()


@shared_task(name="spend.daily_rollup_recent", ignore_result=True)
def daily_rollup_recent_task() -> int:
    """Yesterday's and today's rollups (UTC), rebuilt from their logs (read on the replica, if any)."""
    with replica_reads():
        return sum(result.rows for result in daily_spend_rollup_recent())


@shared_task(name="spend.journal_recover", ignore_result=True)
def journal_recover_task() -> int:
    """The spend records a dead process journaled but never wrote (apps.spend.journal)."""
    return spend_journal_recover()


@shared_task(name="spend.counters_reconcile", ignore_result=True)
def counters_reconcile_task() -> int:
    """Budget spend counters checked against the rollups; drift is recorded and logged."""
    return len(spend_counters_reconcile().drifts)
