"""Daily rollups: spend logs added up per day, organization, team, user, key, model and provider,
and per day, request tag and owner, rebuilt idempotently by a beat task and by
`manage.py rebuild_rollups`."""

import threading
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from apps.spend.models import DailySpend, DailyTagSpend, SpendLog, SpendRollupDay
from apps.spend.rollups import daily_spend_rollup, utc_today
from apps.spend.tasks import daily_rollup_recent_task

pytestmark = pytest.mark.django_db(transaction=True)

DAY = date(2026, 3, 14)
NOON = datetime(2026, 3, 14, 12, tzinfo=timezone.utc)


def log(*, when=NOON, key=None, team=None, model="gpt-4o", provider="openai", cost="0.001", status="success",
        cost_status="priced", prompt=10, completion=5, cached=0, reasoning=0, user=None, metadata=None) -> SpendLog:
    team = team or (key.team if key else None)
    return SpendLog.objects.create(
        request_id=uuid.uuid4().hex, key=key, key_hash=key.token_hash if key else "", team=team,
        organization=team.organization if team else None, user=user, call_type="chat_completion", model=model,
        provider=provider, prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached,
        reasoning_tokens=reasoning, cost=None if cost is None else Decimal(cost), status=status,
        cost_status=cost_status, start_time=when, end_time=when, metadata=metadata or {},
    )


def rows_of(day: date) -> list[dict]:
    fields = [f.name for f in DailySpend._meta.fields if f.name != "id"]
    return sorted(DailySpend.objects.filter(day=day).values(*fields), key=lambda r: (r["model"], str(r["key_id"])))


def test_a_day_is_added_up_per_key_and_model_with_every_measure(make_key, team):
    key_a, _ = make_key(team=team, alias="a")
    key_b, _ = make_key(team=team, alias="b")
    log(key=key_a, cost="0.001", prompt=10, completion=5, cached=4)
    log(key=key_a, cost="0.002", prompt=20, completion=7, reasoning=3)
    log(key=key_a, cost=None, cost_status="unpriced", status="error")
    log(key=key_a, cost="0.0005", cost_status="estimated", status="cancelled")
    log(key=key_b, model="claude", provider="anthropic", cost="0.01")
    log(key=key_b, when=NOON + timedelta(days=1))  # the next day: not in this one
    log(key=key_b, when=datetime(2026, 3, 14, 0, 0, tzinfo=timezone.utc), cost="0.1")  # midnight belongs to the day

    result = daily_spend_rollup(day=DAY)

    assert (result.logs, result.rows) == (6, 3)
    a = DailySpend.objects.get(day=DAY, key_id=key_a.pk)
    assert (a.requests, a.errors, a.cancelled, a.unpriced_requests, a.estimated_requests) == (4, 1, 1, 1, 1)
    assert (a.prompt_tokens, a.completion_tokens, a.cached_tokens, a.reasoning_tokens) == (50, 22, 4, 3)
    assert a.cost == Decimal("0.0035")  # the unpriced request adds nothing: its cost is unknown, not zero
    assert (str(a.team_id), str(a.organization_id), a.key_hash) == (str(team.pk), str(team.organization_id),
                                                                   key_a.token_hash)
    b_models = dict(DailySpend.objects.filter(day=DAY, key_id=key_b.pk).values_list("model", "cost"))
    assert b_models == {"claude": Decimal("0.01"), "gpt-4o": Decimal("0.1")}
    assert SpendRollupDay.objects.get(day=DAY).logs == 6


def test_rerunning_a_day_gives_the_same_rows_and_takes_in_late_logs(make_key, team):
    key, _ = make_key(team=team)
    log(key=key)
    log(key=key, model="other")
    daily_spend_rollup(day=DAY)
    first = rows_of(DAY)

    daily_spend_rollup(day=DAY)
    assert rows_of(DAY) == first

    log(key=key, cost="0.5", when=NOON + timedelta(hours=11))  # a replay after an outage, written late
    daily_spend_rollup(day=DAY)
    row = DailySpend.objects.get(day=DAY, model="gpt-4o")
    assert (row.requests, row.cost) == (2, Decimal("0.501"))
    assert DailySpend.objects.filter(day=DAY).count() == 2


def test_a_day_whose_logs_were_purged_keeps_its_rollup_unless_forced(make_key):
    key, _ = make_key()
    log(key=key, cost="1")
    log(key=key, cost="2")
    daily_spend_rollup(day=DAY)
    SpendLog.objects.filter(cost=Decimal("1")).delete()  # retention removed part of the day

    result = daily_spend_rollup(day=DAY)
    assert result.kept_because_purged
    assert DailySpend.objects.get(day=DAY).cost == Decimal("3")

    daily_spend_rollup(day=DAY, force=True)
    assert DailySpend.objects.get(day=DAY).cost == Decimal("2")


def test_the_beat_task_rebuilds_today_and_yesterday(settings, make_key):
    key, _ = make_key()
    now = datetime.now(timezone.utc)
    today = utc_today()
    log(key=key, when=now, cost="0.25")
    log(key=key, when=datetime.combine(today - timedelta(days=1), datetime.min.time(), timezone.utc), cost="0.75")
    log(key=key, when=now - timedelta(days=3), cost="9")  # older days are rebuild_rollups' business

    daily_rollup_recent_task.delay()

    assert dict(DailySpend.objects.values_list("day", "cost")) == {
        today: Decimal("0.25"), today - timedelta(days=1): Decimal("0.75"),
    }
    entry = settings.CELERY_BEAT_SCHEDULE["spend-daily-rollup"]
    assert entry["task"] == daily_rollup_recent_task.name and entry["schedule"] == settings.GATEWAY_ROLLUP_INTERVAL


def test_rebuild_rollups_rebuilds_each_day_with_logs_since_a_date(make_key):
    key, _ = make_key()
    for offset in (0, 2, 5):
        log(key=key, when=NOON + timedelta(days=offset), cost="1")
    log(key=key, when=NOON - timedelta(days=1), cost="1")  # before --since: left alone
    DailySpend.objects.create(day=DAY, model="stale", cost=Decimal("42"))  # rebuilt away

    out = StringIO()
    call_command("rebuild_rollups", "--since", DAY.isoformat(), "--until", (DAY + timedelta(days=5)).isoformat(),
                 stdout=out)

    assert sorted(DailySpend.objects.values_list("day", flat=True)) == [
        DAY, DAY + timedelta(days=2), DAY + timedelta(days=5)
    ]
    assert not DailySpend.objects.filter(model="stale").exists()
    assert "Rebuilt 3 day(s)." in out.getvalue()
    assert f"{DAY}  1 request(s) -> 1 row(s)" in out.getvalue()


def test_rebuild_rollups_reports_days_kept_because_their_logs_were_purged(make_key):
    key, _ = make_key()
    log(key=key, cost="1")
    daily_spend_rollup(day=DAY)
    SpendLog.objects.all().delete()

    out = StringIO()
    call_command("rebuild_rollups", "--since", DAY.isoformat(), "--until", DAY.isoformat(), stdout=out)
    assert "kept" in out.getvalue() and DailySpend.objects.get(day=DAY).cost == Decimal("1")

    call_command("rebuild_rollups", "--since", DAY.isoformat(), "--until", DAY.isoformat(), "--force", stdout=out)
    assert not DailySpend.objects.exists()


@pytest.mark.parametrize("args, message", [
    (["--since", "14/03/2026"], "--since: expected a date"),
    (["--since", "2026-03-14", "--until", "2026-03-01"], "--until is before --since"),
])
def test_rebuild_rollups_refuses_bad_dates(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("rebuild_rollups", *args, stdout=StringIO())


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
def test_two_workers_rolling_up_the_same_day_at_once_leave_one_set_of_rows(make_key):
    key, _ = make_key()
    SpendLog.objects.bulk_create([
        SpendLog(request_id=f"r{index}", key=key, call_type="chat_completion", model=f"m{index % 200}",
                 status="success", cost=Decimal("0.001"), start_time=NOON, end_time=NOON)
        for index in range(2000)
    ])
    errors = []
    barrier = threading.Barrier(4)

    def roll():
        try:
            barrier.wait()
            for _ in range(5):
                daily_spend_rollup(day=DAY)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=roll) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert DailySpend.objects.filter(day=DAY).count() == 200
    assert sum(DailySpend.objects.values_list("requests", flat=True)) == 2000


def test_logs_replayed_into_an_old_day_make_the_beat_task_rebuild_it(make_key):
    from apps.spend.records import SpendRecord
    from apps.spend.services import spend_logs_write_batch

    key, _ = make_key()
    long_ago = datetime.now(timezone.utc) - timedelta(days=5)
    log(key=key, when=long_ago, cost="1")
    daily_spend_rollup(day=long_ago.date())
    # A batch that waited out a long outage in the spill lands now.
    spend_logs_write_batch(records=[SpendRecord(
        request_id="late", key_id=key.pk, key_hash=key.token_hash, team_id=None, organization_id=None,
        user_id=None, call_type="chat_completion", model="gpt-4o", deployment_id=None, provider="openai",
        upstream_model="gpt-4o", prompt_tokens=1, completion_tokens=1, cached_tokens=0, reasoning_tokens=0,
        usage_reported=True, cost=Decimal("2"), status="success", http_status=200, error_type="", is_stream=False,
        latency_ms=1, start_time=long_ago, end_time=long_ago,
    )])
    assert SpendRollupDay.objects.get(day=long_ago.date()).stale

    daily_rollup_recent_task.delay()

    assert DailySpend.objects.get(day=long_ago.date()).cost == Decimal("3")
    assert not SpendRollupDay.objects.get(day=long_ago.date()).stale


# --- the tag rollup ------------------------------------------------------------------------------


def tag_rows_of(day: date) -> list[dict]:
    fields = [f.name for f in DailyTagSpend._meta.fields if f.name != "id"]
    return sorted(DailyTagSpend.objects.filter(day=day).values(*fields), key=lambda r: (r["tag"], str(r["key_id"])))


def test_tagged_requests_are_added_up_per_tag_and_owner(make_key, team):
    key_a, _ = make_key(team=team, alias="a")
    key_b, _ = make_key(alias="b")
    log(key=key_a, cost="0.001", metadata={"tags": ["batch", "nightly"], "project": "x"})
    log(key=key_a, cost="0.002", metadata={"tags": ["batch"]})
    log(key=key_a, cost=None, cost_status="unpriced", metadata={"tags": ["batch"]})
    log(key=key_b, cost="0.5", metadata={"tags": ["batch", "batch"]})  # counted once
    log(key=key_a, cost="9", metadata={"project": "untagged"})
    log(key=key_a, cost="9")
    log(key=key_a, cost="9", when=NOON + timedelta(days=1), metadata={"tags": ["batch"]})  # the next day

    result = daily_spend_rollup(day=DAY)

    assert result.tag_rows == 3
    a_batch = DailyTagSpend.objects.get(day=DAY, tag="batch", key_id=key_a.pk)
    assert (a_batch.requests, a_batch.cost, a_batch.unpriced_requests) == (3, Decimal("0.003"), 1)
    assert (a_batch.team_id, a_batch.organization_id) == (team.pk, team.organization_id)
    nightly = DailyTagSpend.objects.get(day=DAY, tag="nightly")
    assert (nightly.key_id, nightly.requests, nightly.cost) == (key_a.pk, 1, Decimal("0.001"))
    b_batch = DailyTagSpend.objects.get(day=DAY, tag="batch", key_id=key_b.pk)
    assert (b_batch.requests, b_batch.cost, b_batch.team_id) == (1, Decimal("0.5"), None)


def test_the_tag_rollup_is_rebuilt_whole_and_the_same_each_time(make_key):
    key, _ = make_key()
    log(key=key, metadata={"tags": ["a", "b"]})
    daily_spend_rollup(day=DAY)
    first = tag_rows_of(DAY)
    daily_spend_rollup(day=DAY)
    assert tag_rows_of(DAY) == first and len(first) == 2

    log(key=key, cost="0.5", metadata={"tags": ["b"]}, when=NOON + timedelta(hours=11))  # written late
    SpendLog.objects.filter(metadata__tags=["a", "b"]).update(metadata={"tags": ["b"]})
    daily_spend_rollup(day=DAY)
    [row] = DailyTagSpend.objects.filter(day=DAY)
    assert (row.tag, row.requests, row.cost) == ("b", 2, Decimal("0.501"))


def test_odd_tags_are_skipped_or_cut_never_failing_the_rollup(make_key):
    key, _ = make_key()
    long_tag = "t" * 1000
    log(key=key, metadata={"tags": [long_tag, 7, "", None, {"a": 1}, "ok"]})
    log(key=key, metadata={"tags": "not-a-list"})
    log(key=key, metadata={"truncated": True, "bytes": 99999, "tags": ["ok"]})

    daily_spend_rollup(day=DAY)

    assert {row["tag"]: row["requests"] for row in tag_rows_of(DAY)} == {"t" * 255: 1, "ok": 2}


def test_a_day_whose_logs_were_purged_keeps_its_tag_rollup_unless_forced(make_key):
    key, _ = make_key()
    log(key=key, cost="1", metadata={"tags": ["x"]})
    log(key=key, cost="2", metadata={"tags": ["x"]})
    daily_spend_rollup(day=DAY)
    SpendLog.objects.filter(cost=Decimal("1")).delete()

    assert daily_spend_rollup(day=DAY).kept_because_purged
    assert DailyTagSpend.objects.get(day=DAY).cost == Decimal("3")
    daily_spend_rollup(day=DAY, force=True)
    assert DailyTagSpend.objects.get(day=DAY).cost == Decimal("2")


def test_the_beat_task_rebuilds_the_tag_rollup_too(make_key):
    key, _ = make_key()
    log(key=key, when=datetime.now(timezone.utc), cost="0.25", metadata={"tags": ["live"]})

    daily_rollup_recent_task.delay()

    assert list(DailyTagSpend.objects.values_list("day", "tag", "cost")) == [(utc_today(), "live", Decimal("0.25"))]
