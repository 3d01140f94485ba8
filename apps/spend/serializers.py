"""The spend API's queries and answers (GET /spend/logs, /spend/report, /spend/tags, /global/spend/*,
POST /spend/calculate), in LiteLLM's names."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from django.utils.dateparse import parse_date, parse_datetime
from rest_framework import serializers

from apps.management.pagination import MAX_INT, page_field
from apps.spend.models import SpendLog
from apps.spend.selectors import REPORT_GROUPS

MAX_REPORT_DAYS = 366
ALL_TAGS = "all-tags"  # LiteLLM's UI sends it among the tags to mean every tag


class DateOrDateTimeField(serializers.Field):
    """A date (YYYY-MM-DD) or an ISO 8601 datetime (naive ones are UTC)."""

    default_error_messages = {"invalid": "Expected a date (YYYY-MM-DD) or an ISO 8601 datetime."}

    def to_internal_value(self, value):
        if not isinstance(value, str):
            self.fail("invalid")
        value = value.strip()
        try:
            day = parse_date(value)
            if day is not None:
                return day
            moment = parse_datetime(value)
            if moment is None and " " in value:
                # An unencoded "+02:00" in a query string arrives as " 02:00".
                moment = parse_datetime(value.replace(" ", "+"))
        except ValueError:  # well formed, but no such day or time
            moment = None
        if moment is None:
            self.fail("invalid")
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def to_representation(self, value):
        return value.isoformat()


def _start_of(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, time.min, tzinfo=UTC)


def _end_before(value: date | datetime) -> datetime:
    """The first moment after the range: a date includes its whole (UTC) day, a datetime itself."""
    if isinstance(value, datetime):
        return value + timedelta(microseconds=1)
    return _start_of(value) + timedelta(days=1)


class SpendFilterQuery(serializers.Serializer):
    """The filters both routes take. Empty values are ignored, as if not sent."""

    api_key = serializers.CharField(
        required=False, allow_blank=True, help_text="The key (sk-...) or its sha256 (the key's token)."
    )
    user_id = serializers.CharField(required=False, allow_blank=True, help_text="The user (its user_id).")
    team_id = serializers.CharField(required=False, allow_blank=True)
    organization_id = serializers.CharField(required=False, allow_blank=True)
    model = serializers.CharField(required=False, allow_blank=True, help_text="The public model name.")
    provider = serializers.CharField(required=False, allow_blank=True)

    def validate(self, data):
        return {name: value for name, value in data.items() if value not in ("", None)}


class SpendLogsQuery(SpendFilterQuery):
    request_id = serializers.CharField(required=False, allow_blank=True)
    start_date = DateOrDateTimeField(required=False, help_text="From this date (UTC) or moment.")
    end_date = DateOrDateTimeField(
        required=False, help_text="Until this date (UTC; the whole day included) or moment."
    )
    page = page_field()
    page_size = serializers.IntegerField(min_value=1, max_value=1000, default=100)

    def validate(self, data):
        data = super().validate(data)
        # Logs are matched by when they started: [starts_from, starts_before).
        if "start_date" in data:
            data["starts_from"] = _start_of(data.pop("start_date"))
        if "end_date" in data:
            data["starts_before"] = _end_before(data.pop("end_date"))
        if data.get("starts_from") and data.get("starts_before") and data["starts_from"] >= data["starts_before"]:
            raise serializers.ValidationError({"end_date": ["Must not be before start_date."]})
        return data


class GroupByField(serializers.ListField):
    """Report groups, repeated (group_by=day&group_by=model) or comma separated (day,model)."""

    child = serializers.CharField()

    def to_internal_value(self, data):
        names = []
        for item in super().to_internal_value(data):
            for name in item.split(","):
                name = name.strip()
                if not name:
                    continue
                if name not in REPORT_GROUPS:
                    raise serializers.ValidationError(
                        f"Unknown group {name!r}: expected some of {', '.join(REPORT_GROUPS)}."
                    )
                if name not in names:
                    names.append(name)
        return names


class SpendReportQuery(SpendFilterQuery):
    start_date = serializers.DateField(help_text="The first day (UTC), YYYY-MM-DD.")
    end_date = serializers.DateField(help_text="The last day (UTC), included.")
    group_by = GroupByField(
        required=False, help_text=f"Some of {', '.join(REPORT_GROUPS)}, comma separated or repeated."
    )

    def validate(self, data):
        data = super().validate(data)
        data["group_by"] = data.get("group_by") or ["day"]
        if data["end_date"] < data["start_date"]:
            raise serializers.ValidationError({"end_date": ["Must not be before start_date."]})
        if (data["end_date"] - data["start_date"]).days >= MAX_REPORT_DAYS:
            raise serializers.ValidationError(
                {"end_date": [f"A report covers at most {MAX_REPORT_DAYS} days."]}
            )
        return data


class NoQuery(serializers.Serializer):
    """A route that reads no query parameter (LiteLLM's clients may still send some)."""


class NoBody(serializers.Serializer):
    """A route that takes no body: any field sent is refused, naming it."""


class GlobalSpendReportQuery(serializers.Serializer):
    """LiteLLM's /global/spend/report query. api_key or internal_user_id answer per key (LiteLLM's
    shape for them); else group_by decides."""

    start_date = serializers.DateField(help_text="The first day (UTC), YYYY-MM-DD.")
    end_date = serializers.DateField(help_text="The last day (UTC), included.")
    group_by = serializers.ChoiceField(
        choices=["team", "customer", "api_key"], default="team",
        help_text="team (per day and team), customer (per day and end user) or api_key (per key).",
    )
    api_key = serializers.CharField(
        required=False, allow_blank=True, help_text="Only this key (sk-... or its sha256), per key."
    )
    internal_user_id = serializers.CharField(required=False, allow_blank=True, help_text="Only this user's keys, per key.")
    team_id = serializers.CharField(required=False, allow_blank=True, help_text="Only this team's spend.")
    customer_id = serializers.CharField(required=False, allow_blank=True, help_text="Only this end user's spend.")

    def validate(self, data):
        data = {name: value for name, value in data.items() if value not in ("", None)}
        if data["end_date"] < data["start_date"]:
            raise serializers.ValidationError({"end_date": ["Must not be before start_date."]})
        if (data["end_date"] - data["start_date"]).days >= MAX_REPORT_DAYS:
            raise serializers.ValidationError({"end_date": [f"A report covers at most {MAX_REPORT_DAYS} days."]})
        return data


class GlobalSpendLogsQuery(serializers.Serializer):
    api_key = serializers.CharField(
        required=False, allow_blank=True, help_text="Only this key's spend: the key (sk-...) or its sha256."
    )

    def validate(self, data):
        return {name: value for name, value in data.items() if value not in ("", None)}


class GlobalSpendKeysQuery(serializers.Serializer):
    limit = serializers.IntegerField(
        min_value=1, max_value=MAX_INT, required=False, allow_null=True, help_text="The top n keys by spend (default: every key)."
    )


class GlobalSpendModelsQuery(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=MAX_INT, default=10, help_text="The top n models by spend.")


class TagListField(serializers.CharField):
    """Tags, comma separated (LiteLLM's `tags`); "all-tags" among them, or none at all: every tag."""

    def to_internal_value(self, data):
        names = [name.strip() for name in super().to_internal_value(data).split(",")]
        names = list(dict.fromkeys(name for name in names if name))
        return None if not names or ALL_TAGS in names else names


def _date_range_checked(data: dict) -> dict:
    if data.get("start_date") and data.get("end_date") and data["end_date"] < data["start_date"]:
        raise serializers.ValidationError({"end_date": ["Must not be before start_date."]})
    return data


class SpendTagsQuery(serializers.Serializer):
    start_date = serializers.DateField(required=False, help_text="The first day (UTC), YYYY-MM-DD.")
    end_date = serializers.DateField(required=False, help_text="The last day (UTC), included.")

    def validate(self, data):
        return _date_range_checked(data)


class GlobalSpendTagsQuery(serializers.Serializer):
    start_date = serializers.DateField(help_text="The first day (UTC), YYYY-MM-DD.")
    end_date = serializers.DateField(help_text="The last day (UTC), included.")
    tags = TagListField(required=False, allow_blank=True, help_text="Only these tags, comma separated.")

    def validate(self, data):
        data = _date_range_checked(data)
        data["tags"] = data.get("tags") or None  # a blank `tags` skips to_internal_value
        return data


def _token_count(value, param: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise serializers.ValidationError({param: ["Expected a number of tokens (an integer, 0 or more)."]})


class SpendCalculateInput(serializers.Serializer):
    """LiteLLM's SpendCalculateRequest: a model and the messages to send it (the cost of their
    prompt), or a completion answer with its usage (the cost of that request)."""

    model = serializers.CharField(required=False, allow_null=True, allow_blank=True,
                                  help_text="A model the gateway serves, or a price catalog key.")
    messages = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True,
                                     help_text="Chat messages: their prompt tokens are priced.")
    completion_response = serializers.DictField(
        required=False, allow_null=True, help_text="A chat completion answer: its model and usage are priced."
    )

    def validate(self, data):
        if data.get("model"):
            if data.get("messages") is None:
                raise serializers.ValidationError({"messages": ["Required when 'model' is given."]})
            return {"model": data["model"], "messages": data["messages"]}
        answer = data.get("completion_response")
        if answer is None:
            raise serializers.ValidationError(
                {"model": ["Either 'model' (with 'messages') or 'completion_response' is required."]}
            )
        model, usage = answer.get("model"), answer.get("usage")
        if not isinstance(model, str) or not model:
            raise serializers.ValidationError({"completion_response": {"model": ["Required: the model that answered."]}})
        if not isinstance(usage, dict):
            raise serializers.ValidationError(
                {"completion_response": {"usage": ["Required: the answer's token usage, an object."]}}
            )
        for name in ("prompt_tokens", "completion_tokens"):
            _token_count(usage.get(name), f"completion_response.usage.{name}")
        for details, name in (("prompt_tokens_details", "cached_tokens"),
                              ("completion_tokens_details", "reasoning_tokens")):
            if usage.get(details) is not None and not isinstance(usage[details], dict):
                raise serializers.ValidationError({f"completion_response.usage.{details}": ["Expected an object."]})
            _token_count((usage.get(details) or {}).get(name), f"completion_response.usage.{details}.{name}")
        return {"model": model, "usage": usage}


# --- answers ------------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _spend(log: SpendLog) -> float | None:
    # Unpriced is unknown, not free: null, never 0.
    if log.cost is None or log.cost_status == SpendLog.CostStatus.UNPRICED:
        return None
    return float(log.cost)


def spend_log_data(log: SpendLog, *, usernames: dict, key_aliases: dict) -> dict:
    """A spend log as LiteLLM's /spend/logs shows it. `metadata` is what the client sent with
    what the gateway knows on top (the gateway's values win: a client cannot pose as a team)."""
    team_id = str(log.team_id) if log.team_id else None
    organization_id = str(log.organization_id) if log.organization_id else None
    username = usernames.get(log.user_id)
    client_metadata = log.metadata if isinstance(log.metadata, dict) else {}
    tags = client_metadata.get("tags")
    data = {
        "request_id": log.request_id,
        "call_type": log.call_type,
        "api_key": log.key_hash,
        "spend": _spend(log),
        "total_tokens": log.total_tokens,
        "prompt_tokens": log.prompt_tokens,
        "completion_tokens": log.completion_tokens,
        "startTime": _iso(log.start_time),
        "endTime": _iso(log.end_time),
        "model": log.model,
        "model_group": log.model,
        "model_id": str(log.deployment_id) if log.deployment_id else None,
        "custom_llm_provider": log.provider or None,
        "user": username,
        "end_user": log.end_user,  # the tenant's customer the request named (its `user` field)
        "team_id": team_id,
        "organization_id": organization_id,
        "cache_hit": log.cache_hit,  # answered by the response cache (spend 0 unless budgets are charged)
        "saved_cost": float(log.saved_cost) if log.saved_cost is not None else None,
        "request_tags": tags if isinstance(tags, list) else [],
        "metadata": {
            **client_metadata,
            "user_api_key": log.key_hash,
            "user_api_key_alias": key_aliases.get(log.key_id),
            "user_api_key_team_id": team_id,
            "user_api_key_org_id": organization_id,
            "user_api_key_user_id": username,
            "status": log.status,
            "http_status": log.http_status,
            "error_type": log.error_type or None,
            "provider": log.provider,
            "upstream_model": log.upstream_model,
            "deployment_id": log.deployment_id,
            "cost_status": log.cost_status,
            "price_version": log.price_version,
            "cached_tokens": log.cached_tokens,
            "reasoning_tokens": log.reasoning_tokens,
            "is_stream": log.is_stream,
            "latency_ms": log.latency_ms,
            "usage_reported": log.usage_reported,
        },
    }
    # Prompts and answers are stored only for keys and teams that opted in.
    if log.messages is not None:
        data["messages"] = log.messages
    if log.response is not None:
        data["response"] = log.response
    return data


def report_row_data(row: dict) -> dict:
    """A spend_report row with spend as a JSON number."""
    return {**row, "spend": float(row["spend"])}


def _usd(amount) -> float:
    return float(amount or 0)


def day_spend_data(row: dict, *, api_key: str | None = None) -> dict:
    """A day of LiteLLM's /global/spend/logs (its MonthlyGlobalSpend view's row); `api_key` when
    filtered by one (its MonthlyGlobalSpendPerKey's). Spend leaves out requests with no known
    price: unpriced_requests says how many."""
    data = {"date": row["day"], "spend": _usd(row["spend"]), "unpriced_requests": row["unpriced_requests"]}
    if api_key is not None:
        data["api_key"] = api_key
    return data


def key_spend_data(row: dict) -> dict:
    """A key of LiteLLM's /global/spend/keys (its Last30dKeysBySpend view's row)."""
    return {
        "api_key": row["api_key"],
        "key_alias": row["key_alias"],
        "key_name": row["key_name"],
        "total_spend": _usd(row["spend"]),
        "unpriced_requests": row["unpriced_requests"],
    }


def model_spend_data(row: dict) -> dict:
    """A model of LiteLLM's /global/spend/models (its Last30dModelsBySpend view's row)."""
    return {
        "model": row["model"],
        "total_spend": _usd(row["spend"]),
        "total_tokens": row["total_tokens"],
        "unpriced_requests": row["unpriced_requests"],
    }


def tag_spend_data(row: dict) -> dict:
    """A tag of LiteLLM's /spend/tags."""
    return {
        "individual_request_tag": row["tag"],
        "log_count": row["requests"],
        "total_spend": _usd(row["spend"]),
        "unpriced_requests": row["unpriced_requests"],
    }


def ui_tag_spend_data(row: dict) -> dict:
    """A tag of LiteLLM's /global/spend/tags (`spend_per_tag`, as its UI charts them)."""
    return {
        "name": row["tag"],
        "spend": _usd(row["spend"]),
        "log_count": row["requests"],
        "unpriced_requests": row["unpriced_requests"],
    }


# --- LiteLLM's /global/spend/report, /global/spend and /global/spend/teams --------------------


def _litellm_day(day: date) -> str:
    """A day as LiteLLM's report names it (a timestamp at UTC midnight)."""
    return f"{day.isoformat()}T00:00:00+00:00"


def _per_day(groups: list[dict], owner_of, item_of) -> list[dict]:
    """Groups sorted by day, then owner: one entry per day, one item per owner, its models in metadata."""
    days: dict = {}
    for group in groups:
        owners = days.setdefault(group["day"], {})
        owner = owner_of(group)
        entry = owners.get(owner)
        if entry is None:
            entry = owners[owner] = {**item_of(group), "total_spend": 0.0, "metadata": []}
        entry["total_spend"] += _usd(group["spend"])
        entry["metadata"].append(group["metadata"])
    return [(day, list(owners.values())) for day, owners in days.items()]


def report_per_team_data(groups: list[dict]) -> list[dict]:
    """LiteLLM's group_by=team answer: per day, its teams (team_name: the alias), their models."""
    for group in groups:
        group["metadata"] = {"model": group["model"], "spend": _usd(group["spend"]),
                             "total_tokens": (group["prompt"] or 0) + (group["completion"] or 0)}
    return [
        {"group_by_day": _litellm_day(day), "teams": teams}
        for day, teams in _per_day(
            groups, lambda g: g["team_id"],
            lambda g: {"team_name": g["team_alias"], "team_id": str(g["team_id"]) if g["team_id"] else None},
        )
    ]


def report_per_customer_data(groups: list[dict]) -> list[dict]:
    """LiteLLM's group_by=customer answer: per day, its end users, their models and keys."""
    for group in groups:
        group["metadata"] = {"model": group["model"], "spend": _usd(group["spend"]),
                             "total_tokens": (group["prompt"] or 0) + (group["completion"] or 0),
                             "api_key": group["key_hash"] or None}
    return [
        {"group_by_day": _litellm_day(day), "customers": customers}
        for day, customers in _per_day(groups, lambda g: g["end_user"], lambda g: {"customer": g["end_user"]})
    ]


def report_per_key_data(groups: list[dict]) -> list[dict]:
    """LiteLLM's per-key answer (api_key, internal_user_id, group_by=api_key): each key's cost and
    tokens with its models, the costliest key first."""
    keys: dict[str, dict] = {}
    for group in groups:
        key = keys.setdefault(group["key_hash"], {
            "api_key": group["key_hash"], "total_cost": 0.0, "total_input_tokens": 0, "total_output_tokens": 0,
            "model_details": [],
        })
        key["total_cost"] += _usd(group["spend"])
        key["total_input_tokens"] += group["prompt"] or 0
        key["total_output_tokens"] += group["completion"] or 0
        key["model_details"].append({"model": group["model"], "total_cost": _usd(group["spend"]),
                                     "prompt_tokens": group["prompt"] or 0,
                                     "completion_tokens": group["completion"] or 0})
    return sorted(keys.values(), key=lambda key: key["total_cost"], reverse=True)


TOP_TEAMS_SHOWN = 10  # LiteLLM's /global/spend/teams lists the ten costliest teams' totals
UNASSIGNED_TEAM = "Unassigned"  # LiteLLM's name for spend outside every team


def teams_spend_data(groups: list[dict]) -> dict:
    """LiteLLM's /global/spend/teams: the spend per day of each team (by alias), the teams, and the
    costliest teams' totals."""
    daily: dict = {}
    totals: dict[str, float] = {}
    for group in groups:
        name = group["team_alias"] or (str(group["team_id"]) if group["team_id"] else UNASSIGNED_TEAM)
        spend = _usd(group["spend"])
        day = daily.setdefault(group["day"], {})
        day[name] = day.get(name, 0.0) + spend
        totals[name] = totals.get(name, 0.0) + spend
    ranked = sorted(totals.items(), key=lambda item: item[1], reverse=True)[:TOP_TEAMS_SHOWN]
    return {
        "daily_spend": [{"date": day.isoformat(), **teams} for day, teams in sorted(daily.items())],
        "teams": sorted(totals),
        "total_spend_per_team": [{"team_id": name, "total_spend": spend} for name, spend in ranked],
    }
