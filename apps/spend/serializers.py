"""The spend API's queries and answers (GET /spend/logs, GET /spend/report), in LiteLLM's names."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from django.utils.dateparse import parse_date, parse_datetime
from rest_framework import serializers

from apps.spend.models import SpendLog
from apps.spend.selectors import REPORT_GROUPS

MAX_REPORT_DAYS = 366


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
    page = serializers.IntegerField(min_value=1, default=1)
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
        "cache_hit": False,
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
