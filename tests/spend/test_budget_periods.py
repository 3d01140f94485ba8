"""Budget periods: the database's spend starts again each period, idempotently, by a beat task."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from apps.spend.models import SpendLog
from apps.spend.tasks import budget_periods_roll_task

pytestmark = pytest.mark.django_db(transaction=True)


def log(key, cost: str, when: datetime) -> None:
    SpendLog.objects.create(request_id=f"r-{when.timestamp()}-{cost}", key=key, call_type="chat_completion",
                            model="m", status="success", cost=Decimal(cost), start_time=when, end_time=when)


def test_spend_restarts_each_period_and_a_rerun_changes_nothing(make_key):
    now = datetime.now(timezone.utc)
    key, _ = make_key(budget_duration="30d", max_budget=Decimal("10"))
    key.budget_anchor = now - timedelta(days=31)
    key.spend = Decimal("7")
    key.save()
    log(key, "5", now - timedelta(days=20))  # the previous period
    log(key, "2", now - timedelta(hours=12))  # this period (started a day ago)

    assert budget_periods_roll_task.delay().get() == 1
    key.refresh_from_db()
    assert key.spend == Decimal("2")
    assert key.budget_period_start == key.budget_anchor + timedelta(days=30)

    assert budget_periods_roll_task.delay().get() == 0
    key.refresh_from_db()
    assert key.spend == Decimal("2")


def test_entities_without_a_duration_are_left_alone(make_key, team):
    key, _ = make_key(max_budget=Decimal("10"))
    key.spend = Decimal("3")
    key.save()
    assert budget_periods_roll_task.delay().get() == 0
    key.refresh_from_db()
    assert key.spend == Decimal("3")


def test_celery_beat_runs_it_every_minute(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["budget-periods-roll"]
    assert entry["task"] == budget_periods_roll_task.name and entry["schedule"] == 60.0
