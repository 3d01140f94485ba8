"""Budget spend counters checked against the daily rollups.

Two counters hold what an entity (key, user, team, organization) spent in its budget period:
the database's `spend` (added to by the batch writer in the spend logs' transaction, reset by
budget_periods_roll) and, with Redis, the limiter's shared counter that budgets are enforced
with (settled by each request, seeded from the database). Both should equal what the spend
logs add up to; reconciliation recomputes that from the rollups (whole days, which outlive
the logs' retention) plus today's logs, and records each difference above a tolerance.

The database counter is compared under its row's lock, as the batch writer updates it in the
transaction that inserts the logs: both are seen or neither. The limiter's counter runs ahead
of the logs by the requests not yet flushed (about a second's worth), so its drift is only
meaningful above that.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from apps.core.durations import current_period
from apps.core.redis import redis_enabled, redis_key, sync_redis
from apps.keys.limits import NANOS_PER_USD
from apps.keys.models import VirtualKey
from apps.spend.models import DailySpend, SpendCounterDrift, SpendLog, SpendReset
from apps.spend.rollups import daily_spend_rollup_recent, day_bounds, utc_today
from apps.teams.models import Organization, Team, TeamMembership, UserLimits

logger = logging.getLogger(__name__)

# (model, the limiter's kind, the spend-log field naming the entity)
ENTITIES = ((VirtualKey, "key", "key_id"), (UserLimits, "user", "user_id"), (Team, "team", "team_id"),
            (Organization, "organization", "organization_id"))


@dataclass
class ReconcileReport:
    checked: int = 0
    drifts: list[SpendCounterDrift] = field(default_factory=list)
    limiter_checked: bool = False  # False without Redis: the limiter lives in each server's memory


def _sum(queryset, name: str) -> Decimal:
    return queryset.aggregate(total=Sum(name))["total"] or Decimal(0)


def period_spend_expected(*, owner: dict, period_start: datetime | None, now: datetime) -> Decimal:
    """What the entity (`owner`: the fields naming it in logs and rollups, e.g. {"key_id": 3})
    spent from `period_start` (None: ever) until now: rollups for whole past days, the logs
    themselves for today and for a period that began mid-day."""
    today = utc_today(now)
    today_start = day_bounds(today)[0]
    logs = SpendLog.objects.filter(**owner)
    rollups = DailySpend.objects.filter(**owner, day__lt=today)
    since_today = max(period_start or today_start, today_start)
    total = _sum(logs.filter(start_time__gte=since_today), "cost")
    if period_start is None:
        return total + _sum(rollups, "cost")
    if period_start >= today_start:
        return total
    first_day = period_start.date()
    first_day_start, first_day_end = day_bounds(first_day)
    if period_start > first_day_start:  # a period that began mid-day: that day from its logs
        total += _sum(logs.filter(start_time__gte=period_start, start_time__lt=first_day_end), "cost")
        first_day += timedelta(days=1)
    return total + _sum(rollups.filter(day__gte=first_day), "cost")


def _counted_since(period_start: datetime | None, reset_at: datetime | None) -> datetime | None:
    """Where a budget's spend starts counting: its period's start, or the last global spend reset
    (POST /global/spend/reset) when that came later."""
    if reset_at is None:
        return period_start
    return reset_at if period_start is None else max(period_start, reset_at)


def _limiter_counter_key(kind: str, entity_id, period_start: datetime | None) -> str:
    period = str(int(period_start.timestamp())) if period_start else "all"
    return f"{redis_key('lim')}:{{{kind}:{entity_id}}}:spend:{period}"


def _entity_name(entity) -> str:
    for name in ("alias", "name"):
        if getattr(entity, name, ""):
            return getattr(entity, name)
    return str(getattr(entity, "user", "") or entity.pk)


def spend_counters_reconcile(
    *, now: datetime | None = None, fix: bool = False, tolerance: Decimal | None = None, everyone: bool = False,
) -> ReconcileReport:
    """Check every entity with a budget (with `everyone`, every entity) and record its drifts.
    With `fix`, a drifted counter is set to what the rollups say (the limiter's by adding the
    difference, atomically beside requests settling)."""
    now = now or timezone.now()
    tolerance = Decimal(settings.GATEWAY_RECONCILE_TOLERANCE) if tolerance is None else tolerance
    daily_spend_rollup_recent(now=now)  # yesterday's late logs and today's, before comparing
    redis = None
    if redis_enabled():
        redis = sync_redis()
    report = ReconcileReport(limiter_checked=redis is not None)
    last_reset = SpendReset.objects.order_by("-reset_at").values_list("reset_at", flat=True).first()
    for model, kind, log_field in ENTITIES:
        entities = model.objects.all()
        if not everyone:
            entities = entities.filter(Q(max_budget__isnull=False) | Q(soft_budget__isnull=False))
        for entity in entities.only("pk").iterator(chunk_size=500):
            report.checked += 1
            report.drifts += _entity_reconcile(model, kind, log_field, entity.pk, now, fix, tolerance, redis,
                                               last_reset)
    report.drifts += _team_members_reconcile(report, now, fix, tolerance, redis, everyone, last_reset)
    for drift in report.drifts:
        logger.warning("spend counter drift: %s %s (%s) %s counter %s, rollups %s, drift %+f%s",
                       drift.kind, drift.entity_id, drift.entity_name, drift.counter, drift.counted, drift.expected,
                       drift.drift, " (fixed)" if drift.fixed else "")
    return report


@dataclass
class _Counters:
    """One entity's two counters, read under its row's lock, and how to mend the database's."""

    kind: str  # the limiter's kind: key, user, team, organization, team-member
    entity_id: str  # as the limiter names it
    entity_name: str
    period_start: datetime | None
    database: Decimal
    database_in_period: bool  # False: budget_periods_roll has not rolled it into this period yet
    database_fix: object  # a queryset whose update(spend=...) sets the database counter


def _counters_compare(counters: _Counters, expected: Decimal, *, now, fix, tolerance, redis) -> list[SpendCounterDrift]:
    found = []
    if counters.database_in_period and abs(counters.database - expected) > tolerance:
        found.append((SpendCounterDrift.Counter.DATABASE, counters.database))
        if fix:
            counters.database_fix.update(spend=expected)
    if redis is not None:
        counter_key = _limiter_counter_key(counters.kind, counters.entity_id, counters.period_start)
        raw = redis.get(counter_key)
        if raw is not None:  # no counter yet: it is seeded from the database when next used
            counted = Decimal(int(raw)) / NANOS_PER_USD
            if abs(counted - expected) > tolerance:
                found.append((SpendCounterDrift.Counter.LIMITER, counted))
                if fix:
                    redis.incrby(counter_key, int((expected - counted) * NANOS_PER_USD))
    drifts = [
        SpendCounterDrift(
            checked_at=now, kind=counters.kind, entity_id=counters.entity_id,
            entity_name=counters.entity_name[:255], counter=counter, period_start=counters.period_start,
            expected=expected, counted=counted, drift=counted - expected, fixed=fix,
        )
        for counter, counted in found
    ]
    SpendCounterDrift.objects.bulk_create(drifts)
    return drifts


def _entity_reconcile(model, kind, log_field, pk, now, fix, tolerance, redis, last_reset) -> list[SpendCounterDrift]:
    with transaction.atomic():
        entity = model.objects.select_for_update().get(pk=pk)
        owner = entity.user_id if model is UserLimits else entity.pk
        period_start = current_period(entity.budget_anchor, entity.budget_duration, now)[0] \
            if entity.budget_duration else None
        expected = period_spend_expected(
            owner={log_field: owner}, period_start=_counted_since(period_start, last_reset), now=now
        )
        counters = _Counters(
            kind=kind, entity_id=str(owner), entity_name=_entity_name(entity), period_start=period_start,
            database=entity.spend,
            database_in_period=period_start is None or entity.budget_period_start == period_start,
            database_fix=model.objects.filter(pk=pk),
        )
        return _counters_compare(counters, expected, now=now, fix=fix, tolerance=tolerance, redis=redis)


def _team_members_reconcile(report, now, fix, tolerance, redis, everyone, last_reset) -> list[SpendCounterDrift]:
    """Each member's spend within a team with member limits (team_member_budget)."""
    teams = Team.objects.all() if everyone else Team.objects.filter(team_member_budget__isnull=False)
    drifts = []
    for team in teams.only("pk", "alias", "team_member_budget_duration", "budget_anchor"):
        period_start = current_period(team.budget_anchor, team.team_member_budget_duration, now)[0] \
            if team.team_member_budget_duration else None
        for membership_pk in TeamMembership.objects.filter(team=team).values_list("pk", flat=True):
            report.checked += 1
            with transaction.atomic():
                membership = TeamMembership.objects.select_for_update().select_related("user").get(pk=membership_pk)
                expected = period_spend_expected(owner={"team_id": team.pk, "user_id": membership.user_id},
                                                 period_start=_counted_since(period_start, last_reset), now=now)
                counters = _Counters(
                    kind="team-member", entity_id=f"{team.pk}:{membership.user_id}",
                    entity_name=f"{membership.user} in {team.alias}", period_start=period_start,
                    database=membership.spend,
                    database_in_period=period_start is None or membership.budget_period_start == period_start,
                    database_fix=TeamMembership.objects.filter(pk=membership_pk),
                )
                drifts += _counters_compare(counters, expected, now=now, fix=fix, tolerance=tolerance, redis=redis)
    return drifts
