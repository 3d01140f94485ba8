"""Request validation and response shapes of /customer/* and /budget/* (LiteLLM's
NewCustomerRequest, UpdateCustomerRequest, BudgetNewRequest and their tables)."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import serializers

from apps.core.durations import current_period
from apps.management.inputs import count_field, duration_validator, money_field
from apps.management.pagination import page_field

# LiteLLM fields of an end user this gateway does not act on: accepted only empty (the management
# framework's rule for `litellm_fields`), refused when set, never ignored.
CUSTOMER_UNSUPPORTED = ("allowed_model_region", "default_model", "object_permission", "model_max_budget",
                        "allowed_models")
BUDGET_LIMIT_FIELDS = ("max_budget", "soft_budget", "budget_duration", "rpm_limit", "tpm_limit",
                       "max_parallel_requests", "budget_reset_at")


class NamespaceInput(serializers.Serializer):
    """Whose end users and budgets: an organization's, else the caller's own (the proxy admin's are
    those of keys outside every organization; an org admin's, its organization's)."""

    organization_id = serializers.CharField(
        required=False, allow_null=True, allow_blank=True,
        help_text="The organization whose end users these are. Default: the caller's.",
    )


class BudgetLimitsInput(serializers.Serializer):
    """LiteLLM's BudgetNewRequest limits."""

    max_budget = money_field(help_text="USD per budget period (or in all); a hard cap.")
    soft_budget = money_field(help_text="USD; crossing it raises an alert.")
    budget_duration = serializers.CharField(
        max_length=16, required=False, allow_null=True, allow_blank=True, validators=[duration_validator],
        help_text="30s, 30m, 30h, 30d or 1mo: the budget starts again after each period.",
    )
    rpm_limit = count_field(help_text="Requests per minute, per end user.")
    tpm_limit = count_field(help_text="Tokens per minute, per end user.")
    max_parallel_requests = count_field(help_text="Requests in flight at once, per end user.")
    budget_reset_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="When the first budget period ends (default: one duration from now).",
    )
    litellm_fields = frozenset({"model_max_budget", "allowed_models"})


def budget_limit_values(data: dict) -> dict:
    """The Budget fields of the limits present in validated data (null: no limit)."""
    values = {name: data[name] for name in BUDGET_LIMIT_FIELDS if name in data and name != "budget_reset_at"}
    if "budget_duration" in values:
        values["budget_duration"] = values["budget_duration"] or ""
    if data.get("budget_reset_at") is not None:
        values["budget_anchor"] = data["budget_reset_at"]  # shifted back one period by the view
    return values


# --- budgets ------------------------------------------------------------------------------


class BudgetNewInput(NamespaceInput, BudgetLimitsInput):
    budget_id = serializers.CharField(max_length=200, required=False, allow_null=True, allow_blank=True)


class BudgetUpdateInput(NamespaceInput, BudgetLimitsInput):
    budget_id = serializers.CharField(max_length=200)


class BudgetInfoInput(NamespaceInput):
    budgets = serializers.ListField(child=serializers.CharField(max_length=200), min_length=1)


class BudgetDeleteInput(NamespaceInput):
    id = serializers.CharField(max_length=200)


class BudgetQuery(NamespaceInput):
    budget_id = serializers.CharField(max_length=200)


class BudgetListQuery(NamespaceInput):
    pass


def budget_reset_at(budget):
    """When the budget's current period ends (None without a duration)."""
    if not budget.budget_duration:
        return None
    return current_period(budget.budget_anchor, budget.budget_duration, timezone.now())[1]


def budget_data(budget) -> dict:
    """A budget as LiteLLM's budget table shows it."""
    return {
        "budget_id": budget.budget_id,
        "organization_id": str(budget.organization_id) if budget.organization_id else None,
        "max_budget": budget.max_budget,
        "soft_budget": budget.soft_budget,
        "max_parallel_requests": budget.max_parallel_requests,
        "tpm_limit": budget.tpm_limit,
        "rpm_limit": budget.rpm_limit,
        "model_max_budget": None,
        "budget_duration": budget.budget_duration or None,
        "budget_reset_at": budget_reset_at(budget),
        "created_at": budget.created_at,
        "created_by": budget.created_by,
        "updated_at": budget.updated_at,
        "updated_by": budget.updated_by,
    }


# LiteLLM's /budget/settings: the configurable fields, their types and descriptions.
BUDGET_SETTINGS = (
    ("max_parallel_requests", "Integer", "Max concurrent requests allowed for this budget id."),
    ("tpm_limit", "Integer", "Max tokens per minute, allowed for this budget id."),
    ("rpm_limit", "Integer", "Max requests per minute, allowed for this budget id."),
    ("budget_duration", "String", "Max duration budget should be set for (e.g. '30d', '1mo')."),
    ("max_budget", "Float", "Requests will fail if this budget (in USD) is exceeded."),
    ("soft_budget", "Float", "Requests will NOT fail if this is exceeded. Will fire alerting though."),
)


def budget_settings_data(budget) -> list[dict]:
    values = budget_data(budget)
    return [
        {
            "field_name": name,
            "field_type": field_type,
            "field_description": description,
            "field_value": values[name],
            "stored_in_db": True,
            "field_default_value": None,
        }
        for name, field_type, description in BUDGET_SETTINGS
    ]


# --- end users ----------------------------------------------------------------------------


class CustomerFieldsInput(serializers.Serializer):
    alias = serializers.CharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    blocked = serializers.BooleanField(required=False, allow_null=True)
    budget_id = serializers.CharField(max_length=200, required=False, allow_null=True,
                                      help_text="An existing budget of the same organization.")
    metadata = serializers.DictField(required=False, allow_null=True)

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if attrs.get("budget_id"):
            for name in BUDGET_LIMIT_FIELDS:
                if attrs.get(name) is not None:
                    raise serializers.ValidationError(
                        {name: [f"Set either '{name}' or 'budget_id', not both."]}
                    )
        return attrs


class CustomerNewInput(NamespaceInput, CustomerFieldsInput, BudgetLimitsInput):
    user_id = serializers.CharField(max_length=255)
    spend = money_field(help_text="USD already spent (in the current period).")

    litellm_fields = frozenset(CUSTOMER_UNSUPPORTED)


class CustomerUpdateInput(NamespaceInput, CustomerFieldsInput, BudgetLimitsInput):
    user_id = serializers.CharField(max_length=255)

    litellm_fields = frozenset(CUSTOMER_UNSUPPORTED)


class CustomerIdsInput(NamespaceInput):
    user_ids = serializers.ListField(child=serializers.CharField(max_length=255), min_length=1)


class CustomerQuery(NamespaceInput):
    end_user_id = serializers.CharField(max_length=255, required=False, help_text="The end user (LiteLLM's name).")
    user_id = serializers.CharField(max_length=255, required=False, help_text="The same, by its other name.")

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if not attrs.get("end_user_id") and not attrs.get("user_id"):
            raise serializers.ValidationError({"end_user_id": ["This field is required."]})
        return attrs


class CustomerListQuery(NamespaceInput):
    page = page_field()
    page_size = serializers.IntegerField(min_value=1, max_value=1000, default=100)


def customer_data(end_user) -> dict:
    """An end user as LiteLLM's end-user table shows it, with its budget."""
    budget = end_user.budget
    return {
        "user_id": end_user.user_id,
        "organization_id": str(end_user.organization_id) if end_user.organization_id else None,
        "alias": end_user.alias or None,
        "blocked": end_user.blocked,
        "spend": end_user.spend,
        "allowed_model_region": None,
        "default_model": None,
        "budget_id": budget.budget_id if budget else None,
        "litellm_budget_table": budget_data(budget) if budget else None,
        "budget_reset_at": budget_reset_at(budget) if budget else None,
        "object_permission_id": None,
        "object_permission": None,
        "metadata": end_user.metadata,
        "created_at": end_user.created_at,
        "updated_at": end_user.updated_at,
    }
