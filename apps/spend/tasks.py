"""Celery tasks of the spend app: thin, each a service call."""

from celery import shared_task


@shared_task(name="spend.budget_periods_roll", ignore_result=True)
def budget_periods_roll_task() -> int:
    from apps.spend.services import budget_periods_roll

    return budget_periods_roll()
