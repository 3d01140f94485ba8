"""Budget spend counters (the database's and the limiter's in Redis) reconciled against the rollups."""

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command

from conftest import wait_for

from apps.spend.models import SpendCounterDrift
from apps.spend.reconciliation import period_spend_expected, spend_counters_reconcile
from apps.spend.records import SpendRecord
from apps.spend.rollups import daily_spend_rebuild
from apps.spend.services import budget_periods_roll, spend_logs_write_batch
from apps.spend.tasks import counters_reconcile_task

pytestmark = pytest.mark.django_db(transaction=True)

needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="the limiter's shared counters live in Redis")


def write(key, cost: str, when: datetime) -> None:
    """A spend record through the batch writer, which adds its cost to the counters as in production."""
    spend_logs_write_batch(records=[SpendRecord(
        request_id=uuid.uuid4().hex, key_id=key.pk, key_hash=key.token_hash,
        team_id=str(key.team_id) if key.team_id else None,
        organization_id=str(key.team.organization_id) if key.team_id else None, user_id=key.user_id,
        call_type="chat_completion", model="gpt-test", deployment_id=None, provider="openai",
        upstream_model="gpt-test", prompt_tokens=10, completion_tokens=5, cached_tokens=0, reasoning_tokens=0,
        usage_reported=True, cost=Decimal(cost), status="success", http_status=200, error_type="",
        is_stream=False, latency_ms=5, start_time=when, end_time=when,
    )])


def reconcile_command(*args) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("reconcile_spend", *args, stdout=out)
    except SystemExit as exc:
        return exc.code, out.getvalue()
    return 0, out.getvalue()


def limiter_counter(kind: str, entity_id) -> Decimal | None:
    from apps.core.redis import sync_redis
    from apps.spend.reconciliation import _limiter_counter_key

    raw = sync_redis().get(_limiter_counter_key(kind, entity_id, None))
    return None if raw is None else Decimal(int(raw)) / Decimal(10**9)


def test_counters_kept_by_real_traffic_agree_with_the_rollups(gateway, openai_client, make_deployment, make_key,
                                                              team, spend_logs):
    make_deployment("gpt-test")
    team.max_budget = Decimal("50")
    team.save()
    key, raw_key = make_key(team=team, max_budget=Decimal("10"))
    client = openai_client(raw_key)
    for index in range(12):
        if index % 3:
            client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
        else:
            list(client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}],
                                                stream=True, stream_options={"include_usage": True}))
    logs = spend_logs(12)
    total = sum(log.cost for log in logs)
    if settings.REDIS_URL:  # each request settles its limiter counters just before its log is queued
        wait_for(lambda: limiter_counter("key", key.pk) == total)

    code, out = reconcile_command()

    assert code == 0, out
    assert "Checked 2 entities" in out and "0 drift(s)" in out
    key.refresh_from_db()
    assert key.spend == total
    if settings.REDIS_URL:  # the limiter's own counters were compared too, and they exist
        assert "database and limiter" in out
        assert limiter_counter("key", key.pk) == total == limiter_counter("team", team.pk)


def test_a_database_counter_that_drifted_is_reported_recorded_and_fixed(make_key, team):
    key, _ = make_key(team=team, max_budget=Decimal("10"))
    now = datetime.now(timezone.utc)
    write(key, "0.40", now - timedelta(days=3))
    write(key, "0.02", now)
    daily_spend_rebuild(since=(now - timedelta(days=3)).date())
    type(key).objects.filter(pk=key.pk).update(spend=Decimal("0.50"))  # lost or doubled somewhere

    code, out = reconcile_command()

    assert code == 1
    assert "drift +0.0800000000" in out and "1 drift(s)" in out
    drift = SpendCounterDrift.objects.get()
    assert (drift.kind, drift.entity_id, drift.counter) == ("key", str(key.pk), "database")
    assert (drift.expected, drift.counted, drift.fixed) == (Decimal("0.42"), Decimal("0.50"), False)

    code, out = reconcile_command("--fix")
    assert code == 0 and "fixed" in out
    key.refresh_from_db()
    assert key.spend == Decimal("0.42")
    assert reconcile_command()[0] == 0


def test_spend_older_than_the_logs_retention_is_still_known_from_the_rollups(make_key):
    key, _ = make_key(max_budget=Decimal("100"))  # a lifetime budget: every request ever counts
    now = datetime.now(timezone.utc)
    write(key, "3", now - timedelta(days=120))
    write(key, "1", now - timedelta(days=1))
    daily_spend_rebuild(since=(now - timedelta(days=120)).date())
    call_command("purge_spend_logs", "--older-than", "90d", stdout=StringIO())

    report = spend_counters_reconcile()

    assert report.checked == 1 and report.drifts == []
    key.refresh_from_db()
    assert key.spend == Decimal("4")


def test_a_period_that_began_mid_day_counts_that_day_from_its_logs(make_key):
    now = datetime.now(timezone.utc)
    key, _ = make_key(max_budget=Decimal("100"), budget_duration="1d")
    key.budget_anchor = now - timedelta(days=3, hours=12)  # the period began 12 hours ago
    key.save()
    period_start = now - timedelta(hours=12)
    write(key, "5", period_start - timedelta(minutes=1))  # the last period
    write(key, "2", period_start + timedelta(minutes=1))
    write(key, "0.5", now - timedelta(minutes=1))
    daily_spend_rebuild(since=(now - timedelta(days=2)).date())
    budget_periods_roll(now=now)

    expected = period_spend_expected(owner={"key_id": key.pk}, period_start=key.budget_anchor
                                     + timedelta(days=3), now=now)

    assert expected == Decimal("2.5")
    assert spend_counters_reconcile(now=now).drifts == []


@needs_redis
def test_a_limiter_counter_that_drifted_is_reported_and_fixed(gateway, openai_client, make_deployment, make_key,
                                                              spend_logs):
    from apps.core.redis import sync_redis
    from apps.spend.reconciliation import _limiter_counter_key

    make_deployment("gpt-test")
    key, raw_key = make_key(max_budget=Decimal("10"))
    for _ in range(3):
        openai_client(raw_key).chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x"}])
    total = sum(log.cost for log in spend_logs(3))
    wait_for(lambda: limiter_counter("key", key.pk) == total)
    sync_redis().incrby(_limiter_counter_key("key", key.pk, None), 250_000_000)  # $0.25 counted twice

    report = spend_counters_reconcile()
    [drift] = report.drifts
    assert (drift.counter, drift.drift) == ("limiter", Decimal("0.25"))

    spend_counters_reconcile(fix=True)
    assert limiter_counter("key", key.pk) == total
    assert spend_counters_reconcile().drifts == []


def test_the_beat_task_reconciles(settings, make_key):
    key, _ = make_key(max_budget=Decimal("1"))
    type(key).objects.filter(pk=key.pk).update(spend=Decimal("0.3"))

    assert counters_reconcile_task.delay().get() == 1
    assert SpendCounterDrift.objects.filter(entity_id=str(key.pk)).exists()
    entry = settings.CELERY_BEAT_SCHEDULE["spend-counters-reconcile"]
    assert entry["task"] == counters_reconcile_task.name


def test_team_member_spend_is_reconciled_too(make_key, team):
    from django.contrib.auth import get_user_model

    from apps.teams.models import TeamMembership
    from apps.teams.services import team_member_add

    user = get_user_model().objects.create_user(username="member")
    team_member_add(team=team, user=user)
    team.team_member_budget = Decimal("5")
    team.save()
    key, _ = make_key(team=team, user=user)
    write(key, "0.30", datetime.now(timezone.utc))
    assert spend_counters_reconcile().drifts == []

    TeamMembership.objects.filter(team=team, user=user).update(spend=Decimal("0.10"))
    [drift] = spend_counters_reconcile(fix=True).drifts
    assert (drift.kind, drift.entity_id, drift.drift) == ("team-member", f"{team.pk}:{user.pk}", Decimal("-0.20"))
    assert TeamMembership.objects.get(team=team, user=user).spend == Decimal("0.30")
