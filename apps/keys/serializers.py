"""Request validation and response shapes of the management API's /key routes (LiteLLM's
field names). A raw key appears in a response only when it is made (generate, regenerate)."""

from __future__ import annotations

from rest_framework import serializers

from apps.management.inputs import (
    LITELLM_GENERATE_REQUEST_FIELDS,
    LimitsInput,
    PromptStorageInput,
    duration_validator,
    limits_data,
    limits_values,
    prompt_storage_values,
)
from apps.management.pagination import MAX_INT, PageQuery


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
        child=serializers.FloatField(min_value=0),
        required=False,
        allow_null=True,
        help_text='USD per model on top of the key\'s own budget: {"gpt-4o": 10.0}.',
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

    litellm_fields = LITELLM_KEY_REQUEST_FIELDS | {
        "temp_budget_increase", "temp_budget_expiry", "auto_rotate", "rotation_interval", "organization_id",
    }


class KeyBulkUpdateInput(serializers.Serializer):
    keys = serializers.ListField(
        child=serializers.JSONField(), min_length=1, max_length=500,
        help_text="Each item a /key/update body: {key, ...the fields to change}.",
    )

    litellm_fields = frozenset({"keys"})


class KeyRefInput(serializers.Serializer):
    key = serializers.CharField(help_text="The key, or its hash (token).")

    litellm_fields = frozenset({"key"})  # LiteLLM's BlockKeyRequest


class KeyRegenerateInput(KeyRefInput):
    # LiteLLM's RegenerateKeyRequest also changes the key's fields on the way (and may name the
    # new key, or keep the old one valid for a while): none of that is acted on here.
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


def key_values(data: dict) -> dict:
    """The key's model fields present in validated data: the shared limits and the per-model
    ones (null means none)."""
    values = {**limits_values(data), **prompt_storage_values(data)}
    for name in MODEL_LIMIT_FIELDS:
        if name in data:
            values[name] = data[name] or {}
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
        }
    )
    return data
