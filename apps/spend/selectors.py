from __future__ import annotations

from decimal import Decimal

from django.utils import timezone

from apps.keys.models import VirtualKey
from apps.spend.models import DailySpend, DailyTagSpend, ModelPrice, SpendLog
from apps.spend.price_format import DIRECT_PRICE_FIELDS
from apps.spend.pricing import PRICES_FIELD_NAMES, catalog_keys, deployment_overrides
from apps.teams.models import Organization, Team


def model_price_catalog_rows() -> list[dict]:
    """Every price version, as the in-process catalog (apps.spend.pricing) loads them."""
    return list(
        ModelPrice.objects.order_by("model_key", "effective_from").values(
            "model_key", "effective_from", *PRICES_FIELD_NAMES
        )
    )


def deployment_catalog_entries(*, deployments) -> dict[int, dict]:
    """What is known now of each deployment (ModelDeployment) in LiteLLM's model-map fields, by its
    pk: the catalog version in force of the first key that prices it (as the data plane picks it),
    its prices, context window, provider and LiteLLM's other fields (supports_vision, ...), with the
    deployment's own prices and max_input_tokens over them. {} for what nothing describes."""
    keys = {deployment.pk: catalog_keys(deployment) for deployment in deployments}
    in_force: dict[str, ModelPrice] = {}
    versions = ModelPrice.objects.filter(
        model_key__in={key for candidates in keys.values() for key in candidates},
        effective_from__lte=timezone.now(),
    ).order_by("model_key", "effective_from")
    for price in versions:
        in_force[price.model_key] = price  # the newest version that has begun
    entries = {}
    for deployment in deployments:
        price = next((in_force[key] for key in keys[deployment.pk] if key in in_force), None)
        entry: dict = {}
        if price is not None:
            entry.update(price.extra or {})
            entry["key"] = price.model_key
            for name in ("litellm_provider", "mode"):
                if getattr(price, name):
                    entry[name] = getattr(price, name)
            for name in (*DIRECT_PRICE_FIELDS, "max_input_tokens", "max_output_tokens"):
                if getattr(price, name) is not None:
                    entry[name] = getattr(price, name)
        entry.update({k: v for k, v in deployment_overrides(deployment).items() if k in DIRECT_PRICE_FIELDS})
        if deployment.max_input_tokens:
            entry["max_input_tokens"] = deployment.max_input_tokens
        entries[deployment.pk] = {k: float(v) if isinstance(v, Decimal) else v for k, v in entry.items()}
    return entries


def model_price_latest_by_key() -> dict:
    """Each model key's newest version (in force or not yet), for imports to compare against."""
    latest: dict[str, ModelPrice] = {}
    for price in ModelPrice.objects.order_by("model_key", "effective_from").iterator(chunk_size=2000):
        latest[price.model_key] = price
    return latest


def spend_cost_status_counts(*, since=None) -> dict[str, int]:
    """Requests per cost status (priced, estimated, unpriced, no_usage), for metrics."""
    from django.db.models import Count

    logs = SpendLog.objects.all()
    if since is not None:
        logs = logs.filter(start_time__gte=since)
    return dict(logs.order_by().values_list("cost_status").annotate(n=Count("id")))


def spend_unpriced_models(*, since=None) -> list[dict]:
    """The models requests were made to without a known price: provider, upstream model, requests."""
    from django.db.models import Count, Max

    logs = SpendLog.objects.filter(cost_status=SpendLog.CostStatus.UNPRICED)
    if since is not None:
        logs = logs.filter(start_time__gte=since)
    return list(
        logs.order_by()
        .values("provider", "upstream_model")
        .annotate(requests=Count("id"), last_seen=Max("start_time"))
        .order_by("-requests")
    )


# --- reports over the daily rollups ----------------------------------------------------------

# What a report may group by, and the rollup fields each means.
REPORT_GROUPS = {
    "day": "day",
    "organization": "organization_id",
    "team": "team_id",
    "user": "user_id",
    "key": "key_id",
    "model": "model",
    "provider": "provider",
}
REPORT_METRICS = ("requests", "errors", "cancelled", "prompt_tokens", "completion_tokens", "cached_tokens",
                  "reasoning_tokens", "spend", "unpriced_requests", "estimated_requests")


def daily_spend_in_range(*, scope, start_date, end_date, filters: dict | None = None):
    """The rollup rows of [start_date, end_date] (dates, both included) inside `scope` (a Q
    over organization_id, team_id, user_id and key_id), narrowed by `filters` (field: value)."""
    rows = DailySpend.objects.filter(scope, day__gte=start_date, day__lte=end_date)
    return rows.filter(**(filters or {}))


def spend_report(*, rows, group_by: list[str], order_by: str = "", limit: int | None = None) -> list[dict]:
    """Rollup rows added up per group (names from REPORT_GROUPS; none: one total row). Each row
    has the group's fields (with names for ids: team_alias, organization_name, user_id as the
    username, api_key as the key's hash and key_alias), the REPORT_METRICS, total_tokens and
    error_rate. Ordered by `order_by` (a metric, "-" for descending), else by the groups."""
    from django.db.models import Sum

    fields = [REPORT_GROUPS[name] for name in group_by]
    sums = {
        "requests": Sum("requests"), "errors": Sum("errors"), "cancelled": Sum("cancelled"),
        "prompt_tokens": Sum("prompt_tokens"), "completion_tokens": Sum("completion_tokens"),
        "cached_tokens": Sum("cached_tokens"), "reasoning_tokens": Sum("reasoning_tokens"),
        "spend": Sum("cost"), "unpriced_requests": Sum("unpriced_requests"),
        "estimated_requests": Sum("estimated_requests"),
    }
    query = rows.order_by().values(*fields).annotate(**sums) if fields else [rows.aggregate(**sums)]
    if fields:
        query = query.order_by(order_by, *fields) if order_by else query.order_by(*fields)
        if limit:
            query = query[:limit]
    result = []
    for group in query:
        row = {name: group[field] for name, field in zip(group_by, fields)}
        for metric in REPORT_METRICS:
            row[metric] = group[metric] or 0
        row["total_tokens"] = row["prompt_tokens"] + row["completion_tokens"]
        row["error_rate"] = row["errors"] / row["requests"] if row["requests"] else 0.0
        result.append(row)
    return _named(result, group_by)


def _named(rows: list[dict], group_by: list[str]) -> list[dict]:
    """Ids → what people read (one query per kind of id)."""
    from django.contrib.auth import get_user_model

    def lookup(model, ids, *names):
        ids = {i for i in ids if i is not None}
        return {row["pk"]: row for row in model.objects.filter(pk__in=ids).values("pk", *names)} if ids else {}

    if "team" in group_by:
        teams = lookup(Team, (r["team"] for r in rows), "alias")
        for row in rows:
            team_id = row.pop("team")
            row["team_id"] = str(team_id) if team_id else None
            row["team_alias"] = teams[team_id]["alias"] if team_id in teams else None
    if "organization" in group_by:
        organizations = lookup(Organization, (r["organization"] for r in rows), "name")
        for row in rows:
            organization_id = row.pop("organization")
            row["organization_id"] = str(organization_id) if organization_id else None
            row["organization_name"] = organizations[organization_id]["name"] if organization_id in organizations else None
    if "user" in group_by:
        users = lookup(get_user_model(), (r["user"] for r in rows), "username")
        for row in rows:
            user = users.get(row.pop("user"))
            row["user_id"] = user["username"] if user else None
    if "key" in group_by:
        keys = lookup(VirtualKey, (r["key"] for r in rows), "token_hash", "alias", "key_display")
        for row in rows:
            key = keys.get(row.pop("key"))
            row["api_key"] = key["token_hash"] if key else None
            row["key_alias"] = (key["alias"] or key["key_display"]) if key else None
    if "day" in group_by:
        for row in rows:
            row["day"] = row["day"].isoformat()
    return rows


def spend_per_key_hash(*, rows, limit: int | None = None) -> list[dict]:
    """Rollup rows added up per key hash (LiteLLM's api_key), highest spend first: api_key,
    key_alias and key_name (the key's masked form; both None for a key no longer there),
    spend, requests, unpriced_requests. A regenerated key's old hash is a row of its own,
    named as the key. Rows without a key (the master key's) are left out."""
    from django.db.models import Max, Sum

    query = (
        rows.exclude(key_hash="").order_by().values("key_hash")
        .annotate(spend=Sum("cost"), requests=Sum("requests"), unpriced_requests=Sum("unpriced_requests"),
                  key=Max("key_id"))
        .order_by("-spend", "key_hash")
    )
    groups = list(query[:limit] if limit else query)
    key_ids = {group["key"] for group in groups if group["key"] is not None}
    keys = {
        row["pk"]: row
        for row in VirtualKey.objects.filter(pk__in=key_ids).values("pk", "alias", "key_display")
    } if key_ids else {}
    result = []
    for group in groups:
        key = keys.get(group["key"])
        result.append({
            "api_key": group["key_hash"],
            "key_alias": (key["alias"] or None) if key else None,
            "key_name": (key["key_display"] or None) if key else None,
            "spend": group["spend"] or 0,
            "requests": group["requests"] or 0,
            "unpriced_requests": group["unpriced_requests"] or 0,
        })
    return result


def _activity_metrics(row: dict) -> dict:
    """LiteLLM's SpendMetrics of a report row (cached tokens are the ones read from a cache)."""
    return {
        "spend": row["spend"],
        "prompt_tokens": row["prompt_tokens"],
        "completion_tokens": row["completion_tokens"],
        "cache_read_input_tokens": row["cached_tokens"],
        "cache_creation_input_tokens": 0,
        "total_tokens": row["total_tokens"],
        "successful_requests": row["requests"] - row["errors"],
        "failed_requests": row["errors"],
        "api_requests": row["requests"],
    }


def _added(metrics: dict | None, more: dict) -> dict:
    return dict(more) if metrics is None else {name: metrics[name] + more[name] for name in metrics}


def daily_activity(*, rows) -> list[dict]:
    """LiteLLM's daily activity (/user/daily/activity) over rollup rows: per date, oldest first,
    {date, metrics, breakdown: {models, providers, api_keys}}, each breakdown entry with its
    metrics (and, for a key, its alias)."""
    days: dict[str, dict] = {}
    for row in spend_report(rows=rows, group_by=["day", "model", "provider", "key"]):
        metrics = _activity_metrics(row)
        day = days.setdefault(row["day"], {"date": row["day"], "metrics": None,
                                           "breakdown": {"models": {}, "providers": {}, "api_keys": {}}})
        day["metrics"] = _added(day["metrics"], metrics)
        breakdown = day["breakdown"]
        for kind, name, metadata in (
            ("models", row["model"], {}),
            ("providers", row["provider"] or "unknown", {}),
            ("api_keys", row["api_key"], {"key_alias": row["key_alias"]}),
        ):
            if name is None:
                continue  # the master key's requests belong to no key
            entry = breakdown[kind].setdefault(name, {"metrics": None, "metadata": metadata})
            entry["metrics"] = _added(entry["metrics"], metrics)
    return [days[day] for day in sorted(days)]


def daily_activity_totals(activity: list[dict]) -> dict:
    """LiteLLM's metadata totals (total_spend, total_api_requests, ...) of daily_activity's days."""
    totals = None
    for day in activity:
        totals = _added(totals, day["metrics"])
    totals = totals or _activity_metrics({"spend": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                          "cached_tokens": 0, "total_tokens": 0, "requests": 0, "errors": 0})
    return {name if name.startswith("total_") else f"total_{name}": value for name, value in totals.items()}


# --- LiteLLM's /global/spend/report and /global/spend/teams shapes ---


def _grouped_sums(rows, *fields: str) -> list[dict]:
    from django.db.models import Sum

    return list(
        rows.order_by().values(*fields)
        .annotate(spend=Sum("cost"), prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"))
        .order_by(*fields)
    )


def _team_aliases(team_ids) -> dict:
    ids = {team_id for team_id in team_ids if team_id is not None}
    return dict(Team.objects.filter(pk__in=ids).values_list("pk", "alias")) if ids else {}


def spend_per_day_and_team(*, rows) -> list[dict]:
    """Per day, per team, per model: [{day, team_id, team_alias, model, spend, prompt, completion}]
    (team_id None: requests outside every team)."""
    groups = _grouped_sums(rows, "day", "team_id", "model")
    aliases = _team_aliases(group["team_id"] for group in groups)
    for group in groups:
        group["team_alias"] = aliases.get(group["team_id"])
    return groups


def spend_per_day_and_end_user(*, rows) -> list[dict]:
    """Per day, per end user, per model and key hash: [{day, end_user, model, key_hash, spend,
    prompt, completion}]; requests that named no end user are left out."""
    return _grouped_sums(rows.exclude(end_user=""), "day", "end_user", "model", "key_hash")


def spend_per_key_and_model(*, rows) -> list[dict]:
    """Per key hash and model: [{key_hash, model, spend, prompt, completion}]; requests without a
    key (the master key's) are left out."""
    return _grouped_sums(rows.exclude(key_hash=""), "key_hash", "model")


def spend_total(*, rows) -> Decimal:
    from django.db.models import Sum

    return rows.aggregate(total=Sum("cost"))["total"] or Decimal(0)


# --- the tag rollup ---


def daily_tag_spend_in_range(*, scope, start_date=None, end_date=None, tags: list[str] | None = None):
    """The tag rollup's rows inside `scope` (a Q, as for daily_spend_in_range), of [start_date,
    end_date] (either may be None: no bound) and of these tags (None: every tag)."""
    rows = DailyTagSpend.objects.filter(scope)
    if start_date is not None:
        rows = rows.filter(day__gte=start_date)
    if end_date is not None:
        rows = rows.filter(day__lte=end_date)
    if tags is not None:
        rows = rows.filter(tag__in=tags)
    return rows


def spend_per_tag(*, rows) -> list[dict]:
    """Tag rollup rows added up per tag, highest spend first: tag, requests, spend, unpriced_requests."""
    from django.db.models import Sum

    query = (
        rows.order_by().values("tag")
        .annotate(spend=Sum("cost"), requests=Sum("requests"), unpriced_requests=Sum("unpriced_requests"))
        .order_by("-spend", "tag")
    )
    return [
        {"tag": group["tag"], "requests": group["requests"] or 0, "spend": group["spend"] or 0,
         "unpriced_requests": group["unpriced_requests"] or 0}
        for group in query
    ]


# --- spend log listing (the spend API) ---


def spend_log_list(*, scope, filters: dict | None = None, starts_from=None, starts_before=None):
    """Spend logs inside `scope` (a Q, as for daily_spend_in_range), narrowed by `filters`
    (field: value) and by start time in [starts_from, starts_before); newest first."""
    logs = SpendLog.objects.filter(scope, **(filters or {}))
    if starts_from is not None:
        logs = logs.filter(start_time__gte=starts_from)
    if starts_before is not None:
        logs = logs.filter(start_time__lt=starts_before)
    return logs.order_by("-start_time", "-id")


def spend_key_hash_seen(*, key_hash: str) -> bool:
    """Do spend logs or rollups name this key hash (a deleted or regenerated key's)?"""
    return (
        SpendLog.objects.filter(key_hash=key_hash).exists()
        or DailySpend.objects.filter(key_hash=key_hash).exists()
    )


def spend_log_owner_names(*, logs) -> tuple[dict, dict]:
    """(user id → username, key id → alias) for these logs: one query each."""
    from django.contrib.auth import get_user_model

    user_ids = {log.user_id for log in logs if log.user_id is not None}
    key_ids = {log.key_id for log in logs if log.key_id is not None}
    usernames, key_aliases = {}, {}
    if user_ids:
        usernames = dict(get_user_model().objects.filter(pk__in=user_ids).values_list("pk", "username"))
    if key_ids:
        key_aliases = {
            pk: alias or None for pk, alias in VirtualKey.objects.filter(pk__in=key_ids).values_list("pk", "alias")
        }
    return usernames, key_aliases
