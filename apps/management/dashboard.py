"""What the admin's index shows: the gateway's state at a glance, inside the staff user's scope.

Every figure comes from the rollups (DailySpend, HourlySpend), the budget fields the spend
flush keeps current, small status tables and the process's own state (deployment cooldowns,
the spend buffer): nothing here reads the spend logs, so the page costs the same with a
thousand logs or a hundred million.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import urlencode

from asgiref.sync import async_to_sync
from django.db.models import Count, DecimalField, ExpressionWrapper, F, Max, Q, Sum
from django.urls import reverse
from django.utils import timezone as django_timezone

from apps.billing.models import BillingEvent
from apps.keys.models import VirtualKey
from apps.management.admin_scope import admin_organization_ids
from apps.providers.models import ModelDeployment
from apps.providers.registry import deployment_state_key
from apps.routing.selection.deployment_state import StateNeeds, deployment_state
from apps.spend.buffer import spend_buffer
from apps.spend.models import DailySpend, HourlySpend, SpendCounterDrift, SpendRollupDay
from apps.spend.selectors import spend_report
from apps.spend.spill import spill_for_process
from apps.teams.models import Organization, Team

# A budget this full is shown as an alert (fraction of max_budget).
BUDGET_ALERT_RATIO = Decimal("0.8")
TOP_N = 5
DEPLOYMENTS_SHOWN = 50


@dataclass
class Alert:
    level: str  # "warning" or "error"
    text: str
    url: str = ""


@dataclass
class Dashboard:
    scope_label: str
    today: dict
    month: dict
    last_24h: dict
    last_30d: dict
    daily_series: list[dict]
    hourly_series: list[dict]
    top_keys: list[dict]
    top_teams: list[dict]
    top_models: list[dict]
    budgets: list[dict]
    deployments: list[dict]
    deployments_total: int
    alerts: list[Alert] = field(default_factory=list)
    rolled_at: datetime | None = None
    counts: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)


def _changelist(admin_model, **filters) -> str:
    url = reverse(f"admin:{admin_model._meta.app_label}_{admin_model._meta.model_name}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def _change(model, pk) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[pk])


def _totals(rows, *, requests: str = "requests", errors: str = "errors", cost: str = "cost") -> dict:
    sums = rows.aggregate(requests=Sum(requests), errors=Sum(errors), cost=Sum(cost))
    count = sums["requests"] or 0
    return {"requests": count, "errors": sums["errors"] or 0, "cost": sums["cost"] or Decimal(0),
            "error_percent": 100 * (sums["errors"] or 0) / count if count else 0.0}


def _daily_series(rows, first_day, last_day) -> list[dict]:
    by_day = {
        row["day"]: row
        for row in rows.filter(day__gte=first_day, day__lte=last_day).order_by()
        .values("day").annotate(requests=Sum("requests"), errors=Sum("errors"), cost=Sum("cost"))
    }
    series, day = [], first_day
    while day <= last_day:
        row = by_day.get(day, {})
        series.append({"t": day.isoformat(), "requests": row.get("requests") or 0,
                       "errors": row.get("errors") or 0, "cost": float(row.get("cost") or 0)})
        day += timedelta(days=1)
    return series


def daily_series_get(*, scope: Q, days: int = 30, today=None) -> list[dict]:
    """The last `days` UTC days of the rollups inside `scope` (a Q over DailySpend), one point a
    day, as the dashboard's 30-day chart draws them (static/management/dashboard.js): a team's page
    draws its own with it."""
    today = today or django_timezone.now().astimezone(timezone.utc).date()
    return _daily_series(DailySpend.objects.filter(scope), today - timedelta(days=days - 1), today)


def _hourly_series(rows, first_hour: datetime, hours: int) -> list[dict]:
    by_hour = {
        row["hour"]: row
        for row in rows.filter(hour__gte=first_hour).order_by()
        .values("hour").annotate(requests=Sum("requests"), errors=Sum("errors"), cost=Sum("cost"))
    }
    series = []
    for n in range(hours):
        hour = first_hour + timedelta(hours=n)
        row = by_hour.get(hour, {})
        series.append({"t": hour.isoformat(), "requests": row.get("requests") or 0,
                       "errors": row.get("errors") or 0, "cost": float(row.get("cost") or 0)})
    return series


def _budget_rows(organizations: set | None) -> list[dict]:
    """Organizations, teams and keys with a budget, fullest first (at most TOP_N of each)."""
    ratio = ExpressionWrapper(F("spend") / F("max_budget"), output_field=DecimalField())
    levels = [
        ("organization", Organization, Organization.objects.all(), "pk", "name"),
        ("team", Team, Team.objects.all(), "organization_id", "alias"),
        ("key", VirtualKey, VirtualKey.objects.all(), "organization_id", "alias"),
    ]
    budgets = []
    for level, model, queryset, organization_field, name_field in levels:
        if organizations is not None:
            queryset = queryset.filter(**{f"{organization_field}__in": organizations})
        queryset = queryset.filter(max_budget__gt=0).annotate(used=ratio).order_by("-used")
        extra = ("key_display",) if model is VirtualKey else ()
        for row in queryset.values("pk", name_field, "spend", "max_budget", "budget_duration", "blocked", "used",
                                   *extra)[:TOP_N]:
            name = row[name_field] or (row.get("key_display") or str(row["pk"]))
            used = float(row["used"] or 0)
            budgets.append({"level": level, "name": name, "spend": row["spend"], "max_budget": row["max_budget"],
                            "period": row["budget_duration"] or "total", "used": used,
                            "percent": min(round(used * 100), 999), "blocked": row["blocked"],
                            "url": _change(model, row["pk"])})
    return sorted(budgets, key=lambda b: -b["used"])


def deployment_health_get(*, user, limit: int | None = DEPLOYMENTS_SHOWN) -> tuple[list[dict], int]:
    """Active deployments in the staff user's scope (theirs and the shared ones) with health and live state."""
    return _deployment_rows(admin_organization_ids(user), limit=limit)


def _deployment_rows(organizations: set | None, *, limit: int | None = DEPLOYMENTS_SHOWN) -> tuple[list[dict], int]:
    if organizations is not None and not organizations:
        return [], 0  # staff in no organization: nothing of the gateway is theirs to see
    queryset = ModelDeployment.objects.filter(is_active=True)
    if organizations is not None:
        queryset = queryset.filter(Q(organization__in=organizations) | Q(organization__isnull=True))
    total = queryset.count()
    queryset = queryset.only("id", "model_name", "provider", "upstream_model", "health_status", "health_checked_at",
                             "health_error", "health_latency_ms", "created_at").order_by("model_name", "id")
    deployments = list(queryset[:limit] if limit else queryset)
    keys = [deployment_state_key(d.pk, d.created_at) for d in deployments]
    loads = _deployment_loads(keys)
    now = datetime.now(timezone.utc).timestamp()
    rows = []
    for deployment, load in zip(deployments, loads):
        cooling = load is not None and load.cooldown_until > now
        rows.append({
            "model_name": deployment.model_name, "provider": deployment.provider,
            "upstream_model": deployment.upstream_model, "health": deployment.health_status or "unknown",
            "checked_at": deployment.health_checked_at, "error": (deployment.health_error or "")[:200],
            "latency_ms": deployment.health_latency_ms,
            "cooldown_seconds": round(load.cooldown_until - now) if cooling else 0,
            "requests_last_minute": load.requests if load else None,
            "in_flight": load.in_flight if load else None,
            "url": _change(ModelDeployment, deployment.pk),
        })
    return rows, total


def _deployment_loads(keys: list[str]) -> list:
    """Cooldowns, last minute's requests and in-flight counts, as the router reads them (Redis when
    configured, else this process's memory). A dashboard must render when Redis is down: then none."""
    if not keys:
        return []
    try:
        return async_to_sync(deployment_state().read)(keys, StateNeeds(usage=True, in_flight=True))
    except Exception:  # noqa: BLE001 - the state store is down: the page says "unknown" instead
        return [None] * len(keys)


def _spill_backlog() -> int | None:
    spill = spill_for_process()
    if spill is None:
        return None
    try:
        return async_to_sync(spill.length)()
    except Exception:  # noqa: BLE001 - Redis is down: unknown
        return None


def _billing_scope(organizations: set | None) -> Q:
    if organizations is None:
        return Q()
    team_ids = [str(pk) for pk in Team.objects.filter(organization__in=organizations).values_list("pk", flat=True)]
    return (Q(entity_kind="organization", entity_id__in=[str(pk) for pk in organizations])
            | Q(entity_kind="team", entity_id__in=team_ids))


def dashboard_get(*, user, now: datetime | None = None) -> Dashboard:
    """The dashboard of a staff user: a superuser sees the whole gateway, organization staff
    their organizations (apps.management.admin_scope)."""
    now = now or django_timezone.now()
    organizations = admin_organization_ids(user)
    today = now.astimezone(timezone.utc).date()
    days = DailySpend.objects.all()
    hours = HourlySpend.objects.all()
    if organizations is not None:
        days = days.filter(organization_id__in=organizations)
        hours = hours.filter(organization_id__in=organizations)

    month_rows = days.filter(day__gte=today.replace(day=1), day__lte=today)
    first_hour = now.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    dashboard = Dashboard(
        scope_label="all organizations" if organizations is None else ", ".join(
            Organization.objects.filter(pk__in=organizations).order_by("name").values_list("name", flat=True)[:5]
        ) or "no organization",
        today=_totals(days.filter(day=today)),
        month=_totals(month_rows),
        last_24h=_totals(hours.filter(hour__gte=first_hour)),
        last_30d=_totals(days.filter(day__gt=today - timedelta(days=30), day__lte=today)),
        daily_series=_daily_series(days, today - timedelta(days=29), today),
        hourly_series=_hourly_series(hours, first_hour, 24),
        top_keys=spend_report(rows=month_rows, group_by=["key"], order_by="-spend", limit=TOP_N),
        top_teams=spend_report(rows=month_rows, group_by=["team"], order_by="-spend", limit=TOP_N),
        top_models=spend_report(rows=month_rows, group_by=["model"], order_by="-spend", limit=TOP_N),
        budgets=_budget_rows(organizations),
        deployments=[], deployments_total=0,
        rolled_at=SpendRollupDay.objects.aggregate(last=Max("rolled_at"))["last"],
    )
    dashboard.deployments, dashboard.deployments_total = _deployment_rows(organizations)
    key_pks = dict(VirtualKey.objects.filter(token_hash__in=[row["api_key"] for row in dashboard.top_keys
                                                             if row.get("api_key")]).values_list("token_hash", "pk"))
    for row in dashboard.top_keys:
        key_pk = key_pks.get(row.get("api_key"))
        row["url"] = _change(VirtualKey, key_pk) if key_pk else ""
        row["label"] = row.get("key_alias") or (f"{row['api_key'][:12]}…" if row.get("api_key") else "master key")
    for row in dashboard.top_teams:
        row["url"] = _change(Team, row["team_id"]) if row.get("team_id") else ""
        row["label"] = row.get("team_alias") or ("no team" if not row.get("team_id") else row["team_id"])
    for row in dashboard.top_models:
        row["url"] = _changelist(DailySpend, model=row["model"])
        row["label"] = row["model"]

    dashboard.counts = {
        "organizations": (Organization.objects.count() if organizations is None else len(organizations)),
        "keys": (VirtualKey.objects.all() if organizations is None
                 else VirtualKey.objects.filter(organization_id__in=organizations)).count(),
    }
    dashboard.links = {
        "deployments": _changelist(ModelDeployment),
        "add_deployment": reverse("admin:providers_modeldeployment_add"),
        "keys": _changelist(VirtualKey),
        "add_key": reverse("admin:keys_virtualkey_add"),
        "daily_spend": _changelist(DailySpend),
    }
    dashboard.alerts = _alerts(dashboard, organizations, user)
    return dashboard


def _alerts(dashboard: Dashboard, organizations: set | None, user) -> list[Alert]:
    alerts = []
    for budget in dashboard.budgets:
        if budget["used"] >= 1:
            alerts.append(Alert("error", f"{budget['level'].title()} {budget['name']} has spent its budget "
                                         f"(${budget['spend']:.2f} of ${budget['max_budget']:.2f}).", budget["url"]))
        elif budget["used"] >= BUDGET_ALERT_RATIO:
            alerts.append(Alert("warning", f"{budget['level'].title()} {budget['name']} is at {budget['percent']}% "
                                           f"of its budget.", budget["url"]))
    billing = BillingEvent.objects.filter(_billing_scope(organizations))
    by_status = dict(billing.filter(status__in=[BillingEvent.Status.DEAD, BillingEvent.Status.PENDING])
                     .order_by().values_list("status").annotate(n=Count("id")))
    if dead := by_status.get(BillingEvent.Status.DEAD):
        alerts.append(Alert("error", f"{dead} billing event(s) in the dead letter: Lago refused them.",
                            _changelist(BillingEvent, status__exact=BillingEvent.Status.DEAD)))
    stuck = billing.filter(status=BillingEvent.Status.PENDING, attempts__gt=0).count() if by_status.get(
        BillingEvent.Status.PENDING) else 0
    if stuck:
        alerts.append(Alert("warning", f"{stuck} billing event(s) waiting for a retry (Lago unreachable?).",
                            _changelist(BillingEvent, status__exact=BillingEvent.Status.PENDING)))
    unhealthy = [d for d in dashboard.deployments if d["health"] == ModelDeployment.Health.UNHEALTHY]
    if unhealthy:
        alerts.append(Alert("error", f"{len(unhealthy)} deployment(s) failed their last health check.",
                            _changelist(ModelDeployment, health_status=ModelDeployment.Health.UNHEALTHY)))
    cooling = [d for d in dashboard.deployments if d["cooldown_seconds"]]
    if cooling:
        alerts.append(Alert("warning", f"{len(cooling)} deployment(s) cooling down after failures.",
                            _changelist(ModelDeployment)))
    if user.is_superuser:
        # Proxy-wide state: organization staff have no part in it.
        backlog = _spill_backlog()
        if backlog:
            alerts.append(Alert("error", f"{backlog} spend record(s) spilled to Redis wait for the database."))
        if pending := len(spend_buffer):
            if pending > 1000:
                alerts.append(Alert("warning", f"{pending} spend record(s) waiting in this process's buffer."))
        drifts = SpendCounterDrift.objects.count()
        if drifts:
            alerts.append(Alert("warning", f"{drifts} budget counter(s) disagreed with the spend logs.",
                                _changelist(SpendCounterDrift)))
    return alerts
