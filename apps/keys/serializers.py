"""Request validation and response shapes of the management API's /key routes (LiteLLM's
field names). A raw key appears in a response only when it is made (generate, regenerate)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import ROUND_HALF_UP
from datetime import timezone as dt_timezone

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework import serializers

from apps.core.durations import DurationError, duration_seconds
from apps.customers.serializers import budget_data
from apps.management.framework import StrictNestedInput
from apps.management.inputs import (
    LITELLM_GENERATE_REQUEST_FIELDS,
    LimitsInput,
    MoneyField,
    PromptStorageInput,
    duration_validator,
    limits_data,
    limits_values,
    money_field,
    prompt_storage_values,
)
from apps.management.pagination import MAX_INT, PageQuery


_USD = MoneyField(max_digits=18, decimal_places=6, min_value=0, rounding=ROUND_HALF_UP)


class ModelBudgetField(serializers.Field):
    """One model's budget in model_max_budget: USD, or LiteLLM's {"budget_limit": 0.5,
    "time_period": "1d"} (a period of its own; without one, the key's budget_duration)."""

    default_error_messages = {"invalid": 'Give USD, or {{"budget_limit": USD, "time_period": "1d"}}.'}

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = set(data) - {"budget_limit", "time_period"}
            if unknown or "budget_limit" not in data:
                self.fail("invalid")
            period = data.get("time_period") or None
            if period is not None:
                if not isinstance(period, str):
                    self.fail("invalid")
                duration_validator(period)
            return {"budget_limit": self._usd(data["budget_limit"]), "time_period": period}
        return self._usd(data)

    def _usd(self, value) -> float:
        if isinstance(value, bool) or value is None:
            self.fail("invalid")
        return float(_USD.run_validation(value))

    def to_representation(self, value):
        return value


class KeyPermissionsInput(StrictNestedInput):
    """LiteLLM's key `permissions`, those that hold here."""

    hide_secrets = serializers.BooleanField(
        required=False, allow_null=True,
        help_text="false (as every key here: no secret masking runs); true is refused.",
    )
    get_spend_routes = serializers.BooleanField(
        required=False, allow_null=True,
        help_text="Kept for LiteLLM's clients: every key here reads the spend routes within its own scope.",
    )

    litellm_fields = frozenset(
        {"hide_secrets", "get_spend_routes", "enable_llm_guard_check", "allow_pii_controls"}
    )

    def validate_hide_secrets(self, value):
        if value:
            raise serializers.ValidationError(
                "No secret detection runs on this gateway: hide_secrets can only be false."
            )
        return value


def temp_budget_expiry(value: str) -> datetime:
    """LiteLLM's temp_budget_expiry: a duration from now ("10d") or a date or datetime (UTC)."""
    now = timezone.now()
    try:
        return now + timedelta(seconds=duration_seconds(value))
    except DurationError:
        pass
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise serializers.ValidationError("Give a duration (10d) or a date (2025-01-15).")
        moment = datetime.combine(day, time.min)
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=dt_timezone.utc)
    if moment <= now:
        raise serializers.ValidationError(
            "The temporary budget increase would already have expired: give a future temp_budget_expiry."
        )
    return moment


class KeyFieldsInput(PromptStorageInput, LimitsInput):
    key_alias = serializers.CharField(max_length=200, required=False, allow_null=True, allow_blank=True)
    duration = serializers.CharField(
        max_length=16,
        required=False,
        allow_null=True,
        validators=[duration_validator],
        help_text="How long the key lives: 30s, 30m, 30h, 30d or 1mo. Null: forever.",
    )
    user_id = serializers.CharField(max_length=150, required=False, allow_null=True)
    team_id = serializers.CharField(required=False, allow_null=True)
    organization_id = serializers.CharField(required=False, allow_null=True)

    model_max_budget = serializers.DictField(
        child=ModelBudgetField(),
        required=False,
        allow_null=True,
        help_text='USD per model on top of the key\'s own budget: {"gpt-4o": 10.0} or LiteLLM\'s '
        '{"gpt-4o": {"budget_limit": 10.0, "time_period": "1d"}}.',
    )
    model_rpm_limit = serializers.DictField(
        child=serializers.IntegerField(min_value=0, max_value=MAX_INT),
        required=False,
        allow_null=True,
        help_text='Requests per minute per model: {"gpt-4o": 60}.',
    )
    model_tpm_limit = serializers.DictField(
        child=serializers.IntegerField(min_value=0, max_value=MAX_INT),
        required=False,
        allow_null=True,
        help_text='Tokens per minute per model: {"gpt-4o": 100000}.',
    )
    aliases = serializers.DictField(
        child=serializers.CharField(max_length=200), required=False, allow_null=True,
        help_text='Model aliases of the key: {"gpt-3.5-turbo": "my-free-tier"} (the target\'s access '
        "applies).",
    )
    tags = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, allow_null=True, max_length=50,
        help_text="Added to the tags of every spend log of the key.",
    )
    permissions = KeyPermissionsInput(required=False, allow_null=True)
    enforced_params = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, allow_null=True, max_length=20,
        help_text='Request fields every request must carry: ["user", "metadata.generation_name"].',
    )
    guardrails = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, allow_null=True, max_length=20,
        help_text="Guardrails (config.yaml's guardrail_name) every request of the key goes through; set by "
        "an admin of its team or organization.",
    )
    budget_id = serializers.CharField(
        max_length=200, required=False, allow_null=True, allow_blank=True,
        help_text="A budget (/budget/new) of the key's organization, whose limits hold where the key "
        "sets none.",
    )


# LiteLLM's KeyRequestBase: its generate and update requests' shared fields.
LITELLM_KEY_REQUEST_FIELDS = LITELLM_GENERATE_REQUEST_FIELDS | {
    "key", "budget_id", "tags", "enforced_params", "allowed_routes", "allowed_passthrough_routes",
    "allowed_vector_store_indexes", "rpm_limit_type", "tpm_limit_type", "router_settings", "access_group_ids",
}
LITELLM_GENERATE_KEY_FIELDS = LITELLM_KEY_REQUEST_FIELDS | {
    "soft_budget", "send_invite_email", "key_type", "auto_rotate", "rotation_interval", "organization_id",
    "project_id",
}
# key_type: every key here calls both the LLM API and the management API (within its rights), which
# is what LiteLLM's "default" and the UI's "llm_api" ask for on /v1; spend 0 is a new key's spend.
GENERATE_KEY_IGNORED_VALUES = {"key_type": ("default", "llm_api"), "spend": (0,)}


class KeyGenerateInput(KeyFieldsInput):
    # `key` (a key of the caller's choosing) is not declared: keys are always random.
    litellm_fields = LITELLM_GENERATE_KEY_FIELDS
    ignored_values = GENERATE_KEY_IGNORED_VALUES


class KeyUpdateInput(KeyFieldsInput):
    key = serializers.CharField(help_text="The key, or its hash (token).")
    temp_budget_increase = money_field(help_text="USD added to max_budget until temp_budget_expiry.")
    temp_budget_expiry = serializers.CharField(
        max_length=40, required=False, allow_null=True,
        help_text='When the increase ends: a duration from now ("10d") or a date ("2025-01-15", UTC).',
    )

    def validate_temp_budget_expiry(self, value):
        return temp_budget_expiry(value) if value else None

    def validate(self, attrs):
        if attrs.get("temp_budget_increase") and not attrs.get("temp_budget_expiry"):
            raise serializers.ValidationError({"temp_budget_expiry": ["Required with temp_budget_increase."]})
        return attrs

    litellm_fields = LITELLM_KEY_REQUEST_FIELDS | {
        "temp_budget_increase", "temp_budget_expiry", "auto_rotate", "rotation_interval", "organization_id",
    }


class KeyServiceAccountGenerateInput(KeyGenerateInput):
    team_id = serializers.CharField(help_text="The team the key belongs to (it belongs to no user).")

    def validate_user_id(self, value):
        if value:
            raise serializers.ValidationError("A service account's key belongs to its team, no user.")
        return value


class KeyBulkUpdateInput(serializers.Serializer):
    keys = serializers.ListField(
        child=serializers.JSONField(), min_length=1, max_length=500,
        help_text="Each item a /key/update body: {key, ...the fields to change}.",
    )

    litellm_fields = frozenset({"keys"})


class KeyRefInput(serializers.Serializer):
    key = serializers.CharField(help_text="The key, or its hash (token).")

    litellm_fields = frozenset({"key"})  # LiteLLM's BlockKeyRequest


class KeyRegenerateInput(KeyUpdateInput):
    """LiteLLM's RegenerateKeyRequest: a new secret, and the key's fields changed on the way (as
    /key/update). Naming the new key, or keeping the old one valid a while, is not acted on here."""

    key = serializers.CharField(required=False, help_text="The key, or its hash (token); or in the path.")

    litellm_fields = LITELLM_GENERATE_KEY_FIELDS | {"new_key", "new_master_key", "grace_period"}
    ignored_values = {"key_type": GENERATE_KEY_IGNORED_VALUES["key_type"]}


class KeyDeleteInput(serializers.Serializer):
    keys = serializers.ListField(child=serializers.CharField(), required=False, allow_null=True)
    key_aliases = serializers.ListField(child=serializers.CharField(), required=False, allow_null=True)

    litellm_fields = frozenset({"keys", "key_aliases"})

    def validate(self, attrs):
        if not attrs.get("keys") and not attrs.get("key_aliases"):
            raise serializers.ValidationError({"keys": ["Give keys or key_aliases."]})
        return attrs


class KeyInfoQuery(serializers.Serializer):
    key = serializers.CharField(
        required=False, help_text="The key or its hash; without it, the caller's key."
    )


class KeyListQuery(PageQuery):
    page_size = None
    size = serializers.IntegerField(min_value=1, max_value=100, default=10)
    user_id = serializers.CharField(required=False)
    team_id = serializers.CharField(required=False)
    organization_id = serializers.CharField(required=False)
    key_alias = serializers.CharField(required=False)
    key_hash = serializers.CharField(required=False)
    return_full_object = serializers.BooleanField(default=False)


MODEL_LIMIT_FIELDS = ("model_max_budget", "model_rpm_limit", "model_tpm_limit")
# LiteLLM's key fields kept as given ({} or [] when null).
REQUEST_SHAPING_FIELDS = {"aliases": dict, "tags": list, "permissions": dict, "enforced_params": list,
                          "guardrails": list}


def key_values(data: dict) -> dict:
    """The key's model fields present in validated data: the shared limits and the per-model
    ones (null means none)."""
    values = {**limits_values(data), **prompt_storage_values(data)}
    for name in MODEL_LIMIT_FIELDS:
        if name in data:
            values[name] = data[name] or {}
    for name, empty in REQUEST_SHAPING_FIELDS.items():
        if name in data:
            values[name] = empty(data[name] or empty())
    if "temp_budget_increase" in data:
        values["temp_budget_increase"] = data["temp_budget_increase"]
        if data["temp_budget_increase"] is None:
            values["temp_budget_expiry"] = None
    if data.get("temp_budget_expiry"):
        values["temp_budget_expiry"] = data["temp_budget_expiry"]
    return values


def key_data(key, *, raw_key: str | None = None) -> dict:
    """A key as LiteLLM shows it: `token` (and `token_id`) is the sha256 of the key."""
    data = {"key": raw_key} if raw_key is not None else {}
    data.update(
        {
            "token": key.token_hash,
            "token_id": key.token_hash,
            "key_name": key.key_display,
            "key_alias": key.alias or None,
            "user_id": key.user.username if key.user_id else None,
            "team_id": str(key.team_id) if key.team_id else None,
            "organization_id": str(key.organization_id) if key.organization_id else None,
            "expires": key.expires_at,
            **limits_data(key),
            **{name: getattr(key, name) for name in MODEL_LIMIT_FIELDS},
            "store_prompts": key.store_prompts,
            **{name: getattr(key, name) for name in REQUEST_SHAPING_FIELDS},
            "budget_id": key.budget.budget_id if key.budget_id else None,
            "litellm_budget_table": budget_data(key.budget) if key.budget_id else None,
            "temp_budget_increase": key.temp_budget_increase,
            "temp_budget_expiry": key.temp_budget_expiry,
            "key_max_budget": key.effective_max_budget(),
            # LiteLLM's fields with no counterpart here, shown empty as LiteLLM shows them unset.
            "duration": None,
            "allowed_cache_controls": [],
            "config": {},
        }
    )
    return data
