"""The request fields every level of the management API shares (organization, team, user,
key): limits, prompt storage and Lago ids, with their validation and their answer shapes."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from rest_framework import serializers

from apps.core.durations import current_period, validate_duration
from apps.management.framework import FieldRefused, Forbidden
from apps.management.permissions import logging_callback_check
from apps.spend.callback_settings import (
    MAX_ENTRIES,
    CallbackEntryError,
    callback_entries_masked,
    callback_entries_merge,
    callback_entry_parse,
)
from apps.management.pagination import MAX_INT


# Request fields that limit what a level may spend or use (admins' business, not members').
LIMIT_FIELDS = frozenset(
    {
        "models",
        "max_budget",
        "soft_budget",
        "budget_duration",
        "rpm_limit",
        "tpm_limit",
        "max_parallel_requests",
        "blocked",
    }
)


def duration_validator(value: str) -> None:
    if value:
        try:
            validate_duration(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None


MONEY_UNIT = Decimal("0.000001")  # USD: the database keeps 6 decimal places


class MoneyField(serializers.DecimalField):
    """USD as the database keeps it: more than 6 decimal places are rounded (LiteLLM takes floats
    such as 1e-07), and a positive amount below a millionth becomes a millionth, never 0."""

    def validate_precision(self, value):
        if value.is_finite() and value.as_tuple().exponent < MONEY_UNIT.as_tuple().exponent:
            try:
                rounded = value.quantize(MONEY_UNIT, rounding=ROUND_HALF_UP)
            except InvalidOperation:  # too many digits to round: refused as too large below
                return super().validate_precision(value)
            value = MONEY_UNIT if rounded == 0 and value > 0 else rounded
        return super().validate_precision(value)


def money_field(**kwargs) -> serializers.DecimalField:
    return MoneyField(
        max_digits=18,
        decimal_places=6,
        min_value=0,
        rounding=ROUND_HALF_UP,
        required=False,
        allow_null=True,
        **kwargs,
    )


def count_field(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(
        min_value=0, max_value=MAX_INT, required=False, allow_null=True, **kwargs
    )


# LiteLLM's fields of GenerateRequestBase (litellm/proxy/_types.py), which its key and user
# requests share. Each input serializer lists LiteLLM's fields on its route as `litellm_fields`:
# those it does not declare are refused unless sent empty (apps.management.framework).
LITELLM_GENERATE_REQUEST_FIELDS = frozenset(
    {
        "key_alias", "duration", "models", "spend", "max_budget", "user_id", "team_id", "agent_id",
        "max_parallel_requests", "metadata", "tpm_limit", "rpm_limit", "budget_duration",
        "allowed_cache_controls", "config", "permissions", "model_max_budget", "model_rpm_limit",
        "model_tpm_limit", "guardrails", "policies", "prompts", "blocked", "aliases", "object_permission",
    }
)


class LimitsInput(serializers.Serializer):
    """The limits of any level (organization, team, user, key)."""

    models = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        allow_null=True,
        help_text="Model names this level may use; empty means all.",
    )
    max_budget = money_field(help_text="USD per budget period (or in all); a hard cap.")
    soft_budget = money_field(help_text="USD; crossing it raises an alert.")
    budget_duration = serializers.CharField(
        max_length=16,
        required=False,
        allow_null=True,
        allow_blank=True,
        validators=[duration_validator],
        help_text="30s, 30m, 30h, 30d or 1mo.",
    )
    rpm_limit = count_field(help_text="Requests per minute.")
    tpm_limit = count_field(help_text="Tokens per minute.")
    max_parallel_requests = count_field()
    metadata = serializers.DictField(required=False, allow_null=True)
    blocked = serializers.BooleanField(required=False, allow_null=True)


def limits_values(data: dict) -> dict:
    """The model fields of the limits present in validated data (null means the default)."""
    defaults = {"models": [], "budget_duration": "", "metadata": {}, "blocked": False}
    values = {}
    for name in (*LIMIT_FIELDS, "metadata"):
        if name in data:
            value = data[name]
            values[name] = defaults.get(name) if value is None and name in defaults else value
    return values


class PromptStorageInput(serializers.Serializer):
    """Whether the spend logs keep each request's messages and answer (keys and teams)."""

    store_prompts = serializers.BooleanField(
        required=False, allow_null=True,
        help_text="Keep messages and answers in the spend logs. Null: as the team (or the gateway) says.",
    )


def prompt_storage_values(data: dict) -> dict:
    return {"store_prompts": data["store_prompts"]} if "store_prompts" in data else {}


LAGO_ID_FIELDS = ("lago_external_customer_id", "lago_external_subscription_id")


class LagoIdsInput(serializers.Serializer):
    """Where the entity's usage is billed in Lago (apps/billing)."""

    lago_external_customer_id = serializers.CharField(max_length=255, required=False, allow_blank=True)
    lago_external_subscription_id = serializers.CharField(max_length=255, required=False, allow_blank=True)


def lago_values(data: dict, actor) -> dict:
    """The Lago ids present in validated data; only the proxy admin may set them (anyone else
    could move its usage onto another subscription, or off billing)."""
    values = {name: data[name] for name in LAGO_ID_FIELDS if name in data}
    if values and not actor.is_proxy_admin:
        raise Forbidden("Only the proxy admin may set the Lago billing ids.")
    return values


def lago_data(entity) -> dict:
    return {name: getattr(entity, name) or None for name in LAGO_ID_FIELDS}


def budget_reset_at(entity):
    """When the entity's current budget period ends (None without a budget duration)."""
    if not entity.budget_duration:
        return None
    return current_period(entity.budget_anchor, entity.budget_duration, timezone.now())[1]


def limits_data(entity) -> dict:
    return {
        "models": list(entity.models),
        "spend": entity.spend,
        "max_budget": entity.max_budget,
        "soft_budget": entity.soft_budget,
        "budget_duration": entity.budget_duration or None,
        "budget_reset_at": budget_reset_at(entity),
        "rpm_limit": entity.rpm_limit,
        "tpm_limit": entity.tpm_limit,
        "max_parallel_requests": entity.max_parallel_requests,
        "metadata": entity.metadata,
        "blocked": entity.blocked,
        "created_at": entity.created_at,
        "updated_at": entity.updated_at,
    }


def logging_callback_entry(actor, raw, *, stored: list[dict], param: str = "") -> dict:
    """One logging callback a caller gives a team or key (LiteLLM's AddTeamCallback): validated
    (a 400 naming the field), its masked secrets filled from `stored`, checked by the one rule."""
    try:
        entry = callback_entry_parse(raw, param=param)
    except CallbackEntryError as exc:
        raise FieldRefused(str(exc), param=exc.param, code="invalid_logging_callback") from None
    entry = callback_entries_merge([entry], stored)[0]
    logging_callback_check(actor, entry, param=param)
    entry["trusted"] = bool(entry.get("trusted") or actor.is_proxy_admin)
    return entry


def key_logging_values(actor, values: dict, *, stored: list[dict]) -> None:
    """A key's metadata.logging (LiteLLM's per-key callbacks), when the request sets metadata: its
    entries move to the key's encrypted logging_callbacks and stay in metadata with secrets masked."""
    metadata = values.get("metadata")
    if metadata is None:
        return
    logging = metadata.get("logging")
    if logging is None or logging == []:
        values["logging_callbacks"] = []
        return
    if not isinstance(logging, list) or len(logging) > MAX_ENTRIES:
        raise FieldRefused(f"metadata.logging is a list of at most {MAX_ENTRIES} callbacks.",
                           param="metadata.logging", code="invalid_logging_callback")
    entries = [logging_callback_entry(actor, item, stored=stored, param=f"metadata.logging[{index}]")
               for index, item in enumerate(logging)]
    if len({e["callback_name"] for e in entries}) != len(entries):
        raise FieldRefused("metadata.logging names a callback twice.", param="metadata.logging",
                           code="invalid_logging_callback")
    values["logging_callbacks"] = entries
    values["metadata"] = {**metadata, "logging": callback_entries_masked(entries)}
