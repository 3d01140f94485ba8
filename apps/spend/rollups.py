"""Daily rollups: spend logs added up per UTC day, organization, team, user, key, end user, model
and provider (DailySpend), and per UTC day, request tag, organization, team, user and key (DailyTagSpend).

A day is rebuilt whole from its logs, inside one transaction that holds the day's
SpendRollupDay row locked: re-running a day gives the same rows, and two workers never
interleave. Rollups outlive the logs' retention (purge_spend_logs), so a day whose logs
were purged, in part or in all, is left as it was unless the caller forces it.

Inside replica_reads() (the beat task, `manage.py rebuild_rollups`) a day's logs are read from the
read replica when one is configured; the rollup rows are written, and the day locked, on the
primary. A replica a moment behind cannot make a rollup go back: a rebuild that finds fewer logs
than the last one counted keeps the rows it has (as after a purge), and a later run catches up. A
day marked stale (logs replayed into it after its rebuild), and a forced rebuild, read the primary:
the replica might not hold those logs yet, and neither the mark nor a force leaves a later run to
catch up. The reconciliation's rebuild, whose rollups it compares the budget counters with, runs
outside the scope: on the primary.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone as django_timezone

from apps.core.db_router import replica_read_alias
from apps.spend.models import TAG_MAX_LENGTH, DailySpend, DailyTagSpend, HourlySpend, SpendLog, SpendRollupDay

DIMENSIONS = ("organization_id", "team_id", "user_id", "key_id", "key_hash", "end_user", "model", "provider")
TAG_DIMENSIONS = ("organization_id", "team_id", "user_id", "key_id")


@dataclass(frozen=True)
class DayRollup:
    day: date
    logs: int
    rows: int
    kept_because_purged: bool = False  # the day's logs were purged: its rollup was left alone
    tag_rows: int = 0


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=timezone.utc)
    return start, start + timedelta(days=1)


def utc_today(now: datetime | None = None) -> date:
    return (now or django_timezone.now()).astimezone(timezone.utc).date()


def _aggregates() -> dict:
    status, cost_status = SpendLog.Status, SpendLog.CostStatus
    # Named apart from DailySpend's fields: values().annotate() may not reuse a field's name.
    return {
        "n_requests": Count("id"),
        "n_errors": Count("id", filter=Q(status=status.ERROR)),
        "n_cancelled": Count("id", filter=Q(status=status.CANCELLED)),
        "n_prompt_tokens": Sum("prompt_tokens"),
        "n_completion_tokens": Sum("completion_tokens"),
        "n_cached_tokens": Sum("cached_tokens"),
        "n_reasoning_tokens": Sum("reasoning_tokens"),
        "n_cost": Sum("cost"),
        "n_unpriced": Count("id", filter=Q(cost_status=cost_status.UNPRICED)),
        "n_estimated": Count("id", filter=Q(cost_status=cost_status.ESTIMATED)),
    }


def _daily_row(day: date, group: dict) -> DailySpend:
    return DailySpend(
        day=day,
        **{name: group[name] for name in DIMENSIONS},
        requests=group["n_requests"],
        errors=group["n_errors"],
        cancelled=group["n_cancelled"],
        prompt_tokens=group["n_prompt_tokens"] or 0,
        completion_tokens=group["n_completion_tokens"] or 0,
        cached_tokens=group["n_cached_tokens"] or 0,
        reasoning_tokens=group["n_reasoning_tokens"] or 0,
        cost=group["n_cost"] or 0,
        unpriced_requests=group["n_unpriced"],
        estimated_requests=group["n_estimated"],
    )


def _log_tags(metadata_tags) -> set[str]:
    """A log's request tags as the rollup keys them: each once, cut to TAG_MAX_LENGTH."""
    if not isinstance(metadata_tags, list):
        return set()
    return {tag[:TAG_MAX_LENGTH] for tag in metadata_tags if isinstance(tag, str) and tag}


def _tag_rows(day: date, logs) -> list[DailyTagSpend]:
    """The day's tagged logs added up per tag and owner. Tags are a JSON list inside each log's
    metadata, which SQLite and PostgreSQL cannot unnest alike: the tagged logs' tags are read
    (only them, not the whole metadata) and added up here, a chunk at a time."""
    if connections[logs.db].vendor == "postgresql":
        return _tag_rows_in_sql(day, logs)
    unpriced = SpendLog.CostStatus.UNPRICED
    sums: dict[tuple, list] = {}
    tagged = logs.filter(metadata__has_key="tags").order_by().values_list(
        *TAG_DIMENSIONS, "cost", "cost_status", "metadata__tags"
    )
    for *owner, cost, cost_status, metadata_tags in tagged.iterator(chunk_size=2000):
        for tag in _log_tags(metadata_tags):
            group = sums.setdefault((tag, *owner), [0, 0, 0])
            group[0] += 1
            group[1] += cost or 0
            group[2] += cost_status == unpriced
    return [
        DailyTagSpend(day=day, tag=tag, **dict(zip(TAG_DIMENSIONS, owner)), requests=requests, cost=cost,
                      unpriced_requests=unpriced_requests)
        for (tag, *owner), (requests, cost, unpriced_requests) in sums.items()
    ]


def _tag_rows_in_sql(day: date, logs) -> list[DailyTagSpend]:
    """_tag_rows on PostgreSQL: the tags unnested and added up by the database (a day of a few
    hundred thousand logs is seconds of Python otherwise). The same rules: string tags only, not
    empty, cut to TAG_MAX_LENGTH, each counted once per log."""
    tagged = logs.filter(metadata__has_key="tags").order_by().values_list(
        *TAG_DIMENSIONS, "cost", "cost_status", "metadata"
    )
    inner, params = tagged.query.sql_with_params()
    dims = ", ".join(f"l.{name}" for name in TAG_DIMENSIONS)
    sql = (
        f"SELECT t.tag, {dims}, count(*), coalesce(sum(l.cost), 0), count(*) FILTER (WHERE l.cost_status = %s) "
        f"FROM ({inner}) AS l({', '.join(TAG_DIMENSIONS)}, cost, cost_status, metadata) "
        "CROSS JOIN LATERAL (SELECT DISTINCT left(e #>> '{}', %s) AS tag FROM jsonb_array_elements("
        "CASE WHEN jsonb_typeof(l.metadata -> 'tags') = 'array' THEN l.metadata -> 'tags' ELSE '[]'::jsonb END"
        ") AS e WHERE jsonb_typeof(e) = 'string' AND e #>> '{}' <> '') AS t "
        f"GROUP BY t.tag, {dims}"
    )
    with connections[tagged.db].cursor() as cursor:  # the replica's, inside replica_reads()
        cursor.execute(sql, [SpendLog.CostStatus.UNPRICED, *params, TAG_MAX_LENGTH])
        groups = cursor.fetchall()
    return [
        DailyTagSpend(day=day, tag=tag, **dict(zip(TAG_DIMENSIONS, owner)), requests=requests, cost=cost,
                      unpriced_requests=unpriced_requests)
        for tag, *owner, requests, cost, unpriced_requests in groups
    ]


def _hour_rows(logs) -> list[HourlySpend]:
    groups = (
        logs.order_by().annotate(log_hour=TruncHour("start_time", tzinfo=timezone.utc))
        .values("log_hour", "organization_id")
        .annotate(n_requests=Count("id"), n_errors=Count("id", filter=Q(status=SpendLog.Status.ERROR)),
                  n_cost=Sum("cost"))
    )
    return [
        HourlySpend(hour=group["log_hour"], organization_id=group["organization_id"], requests=group["n_requests"],
                    errors=group["n_errors"], cost=group["n_cost"] or 0)
        for group in groups
    ]


def daily_spend_rollup(*, day: date, force: bool = False) -> DayRollup:
    """Rebuild one UTC day's rollup rows from its spend logs. Idempotent.

    A day whose rollup was built from more logs than it now has lost logs to retention:
    its rows are kept (rebuilding would erase spend that only the rollup still knows),
    unless `force`.
    """
    start, end = day_bounds(day)
    with transaction.atomic():
        run, _ = SpendRollupDay.objects.get_or_create(day=day)
        run = SpendRollupDay.objects.select_for_update().get(pk=run.pk)
        # This transaction writes no log: they may come from the replica (the module's docstring).
        source = DEFAULT_DB_ALIAS if run.stale or force else replica_read_alias()
        logs = SpendLog.objects.using(source).filter(start_time__gte=start, start_time__lt=end)
        groups = list(logs.order_by().values(*DIMENSIONS).annotate(**_aggregates()))
        log_count = sum(group["n_requests"] for group in groups)
        if log_count < run.logs and not force:
            return DayRollup(day, log_count, DailySpend.objects.filter(day=day).count(), kept_because_purged=True)
        DailySpend.objects.filter(day=day).delete()
        rows = DailySpend.objects.bulk_create([_daily_row(day, group) for group in groups], batch_size=1000)
        DailyTagSpend.objects.filter(day=day).delete()
        tag_rows = DailyTagSpend.objects.bulk_create(_tag_rows(day, logs), batch_size=1000)
        HourlySpend.objects.filter(hour__gte=start, hour__lt=end).delete()
        HourlySpend.objects.bulk_create(_hour_rows(logs), batch_size=1000)
        run.logs = log_count
        run.rolled_at = django_timezone.now()
        run.stale = False
        run.save(update_fields=["logs", "rolled_at", "stale"])
    return DayRollup(day, log_count, len(rows), tag_rows=len(tag_rows))


def daily_spend_rollup_recent(*, now: datetime | None = None) -> list[DayRollup]:
    """Yesterday and today (UTC): today as it fills, yesterday for logs written late (a
    flush after midnight); and any older day that logs reached after its rebuild (a replay
    after a long outage marks it stale)."""
    today = utc_today(now)
    stale = SpendRollupDay.objects.filter(stale=True, day__lt=today - timedelta(days=1)).order_by("day")
    days = [*stale.values_list("day", flat=True), today - timedelta(days=1), today]
    return [daily_spend_rollup(day=day) for day in days]


def daily_spend_rebuild(*, since: date, until: date | None = None, force: bool = False) -> list[DayRollup]:
    """Rebuild every day from `since` to `until` (default today), oldest first. Days with
    neither logs nor a rollup are skipped without a trace."""
    until = until or utc_today()
    first_log = SpendLog.objects.filter(start_time__gte=day_bounds(since)[0]).order_by("start_time").first()
    known_days = set(SpendRollupDay.objects.filter(day__gte=since, day__lte=until).values_list("day", flat=True))
    results = []
    day = since
    while day <= until:
        start, end = day_bounds(day)
        if day in known_days or (first_log is not None and first_log.start_time < end
                                 and SpendLog.objects.filter(start_time__gte=start, start_time__lt=end).exists()):
            results.append(daily_spend_rollup(day=day, force=force))
        day += timedelta(days=1)
    return results
