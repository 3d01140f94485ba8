"""Request validation and response shapes of the management API's /model routes. Deployments
are given as LiteLLM's model_list entries and validated like config.yaml's; their secrets
(api_key, secret_params) are never shown."""

from __future__ import annotations

from rest_framework import serializers

from apps.management.pagination import page_field
from apps.providers.adapters import adapter_for
from apps.providers.adapters.base import OPENAI_CHAT_PARAMS


class ModelNewInput(serializers.Serializer):
    model_name = serializers.CharField(max_length=200, help_text="The public name clients ask for.")
    litellm_params = serializers.DictField(help_text="model (provider/model), api_key, api_base, ...")
    model_info = serializers.DictField(
        required=False,
        allow_null=True,
        help_text="id (a stable id), access_groups, organization_id (only that organization's keys use it), "
        "team_id (only that team's keys use it), team_model_rpm_limit, team_model_tpm_limit (the team's limits on it).",
    )

    litellm_fields = frozenset({"model_name", "litellm_params", "model_info"})  # LiteLLM's ModelParams


class ModelUpdateInput(serializers.Serializer):
    model_id = serializers.CharField(required=False, allow_null=True)
    model_name = serializers.CharField(max_length=200, required=False)
    litellm_params = serializers.DictField(
        required=False, allow_null=True, help_text="Only the parameters to change; null removes one."
    )
    model_info = serializers.DictField(required=False, allow_null=True)

    litellm_fields = frozenset({"model_name", "litellm_params", "model_info"})  # LiteLLM's updateDeployment

    def validate(self, attrs):
        model_id = attrs.get("model_id") or (attrs.get("model_info") or {}).get("id")
        if not model_id:
            raise serializers.ValidationError({"model_id": ["Give model_id (or model_info.id)."]})
        attrs["model_id"] = str(model_id)
        return attrs


class ModelDeleteInput(serializers.Serializer):
    id = serializers.CharField(help_text="The model id.")

    litellm_fields = frozenset({"id"})


class ModelInfoQuery(serializers.Serializer):
    litellm_model_id = serializers.CharField(required=False)


class ModelInfoV2Query(serializers.Serializer):
    """LiteLLM's /v2/model/info query (its other parameters, such as sortBy, are accepted and not read)."""

    model = serializers.CharField(required=False, help_text="Only this public model name.")
    modelId = serializers.CharField(required=False, help_text="Only this model id.")
    search = serializers.CharField(required=False, help_text="Model names containing this (any case).")
    page = page_field()
    size = serializers.IntegerField(min_value=1, max_value=1000, default=50)


class ModelGroupInfoQuery(serializers.Serializer):
    model_group = serializers.CharField(required=False, help_text="Only this public model name.")


def model_id_of(deployment) -> str:
    return deployment.config_id or str(deployment.pk)


# Optional parameters shown when set. getattr: some of them (tags, connect_timeout,
# stream_timeout, max_input_tokens, mode) are routing fields not every schema version has.
_OPTIONAL_PARAMS = (
    "api_base",
    "api_version",
    "rpm",
    "tpm",
    "timeout",
    "connect_timeout",
    "stream_timeout",
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "tags",
)
_OPTIONAL_INFO = ("access_groups", "max_input_tokens", "mode")


def _set(deployment, names) -> dict:
    return {name: value for name in names if (value := getattr(deployment, name, None)) not in (None, "", [])}


def litellm_params_of(deployment, *, with_secrets: bool = False) -> dict:
    """The deployment as litellm_params. Secrets only for rebuilding it on update, never shown."""
    params = {
        "model": deployment.litellm_model,
        **_set(deployment, _OPTIONAL_PARAMS),
        "weight": deployment.weight,
    }
    params.update(deployment.extra_params or {})
    if with_secrets:
        if deployment.api_key:
            params["api_key"] = deployment.api_key
        params.update(deployment.secret_params or {})
    return params


def deployment_entry(deployment) -> dict:
    """The deployment as a model_list entry, secrets included: for rebuilding it on update only."""
    return {
        "model_name": deployment.model_name,
        "litellm_params": litellm_params_of(deployment, with_secrets=True),
        "model_info": _set(deployment, _OPTIONAL_INFO),
    }


# model_info fields that are the deployment's own, not the entry's (the API sets them apart).
_NOT_ENTRY_FIELDS = ("id", "organization_id", "team_id", "team_model_rpm_limit", "team_model_tpm_limit")


def entry_with_changes(entry: dict, data: dict) -> dict:
    """The entry with a /model/update request's changes: litellm_params and model_info merge
    into it (a null parameter removes it); the model's id and organization are not entry fields."""
    params = dict(entry["litellm_params"])
    for name, value in (data.get("litellm_params") or {}).items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    model_info = dict(entry["model_info"])
    for name, value in (data.get("model_info") or {}).items():
        if name not in _NOT_ENTRY_FIELDS:
            model_info[name] = value
    return {
        "model_name": data.get("model_name") or entry["model_name"],
        "litellm_params": params,
        "model_info": model_info,
    }


# What a caller below the proxy admin does not see of a deployment: where it is and how it is
# reached (internal endpoints, API versions, provider-specific parameters such as projects,
# regions or headers). Secrets are never shown to anyone.
_ENDPOINT_PARAMS = ("api_base", "api_version")


def model_data(deployment, *, with_endpoint: bool = True) -> dict:
    params = litellm_params_of(deployment)
    if not with_endpoint:
        extra = set(deployment.extra_params or {})
        params = {name: value for name, value in params.items() if name not in _ENDPOINT_PARAMS and name not in extra}
    return {
        "model_name": deployment.model_name,
        "litellm_params": params,
        "model_info": {
            "id": model_id_of(deployment),
            "access_groups": list(deployment.access_groups or []),
            **_set(deployment, _OPTIONAL_INFO[1:]),
            "organization_id": str(deployment.organization_id) if deployment.organization_id else None,
            # LiteLLM's team model fields: the team whose keys alone may use it, and its limits on it.
            "team_id": str(deployment.team_id) if deployment.team_id else None,
            **_set(deployment, ("team_model_rpm_limit", "team_model_tpm_limit")),
            "db_model": not deployment.managed_by_config,
            "managed_by_config": deployment.managed_by_config,
            "is_active": deployment.is_active,
            "created_at": deployment.created_at,
            "updated_at": deployment.updated_at,
        },
    }


def model_data_v2(deployment, *, catalog_entry: dict, with_endpoint: bool) -> dict:
    """LiteLLM's /v2/model/info item: /model/info's, its model_info completed with what the price
    catalog knows of the model (context window, prices, supports_* flags)."""
    data = model_data(deployment, with_endpoint=with_endpoint)
    data["model_info"] = {**catalog_entry, **data["model_info"], "mode": deployment.mode}
    return data


# LiteLLM's capability flags of a model group (false unless the price catalog says otherwise).
SUPPORTS_FLAGS = (
    "supports_function_calling",
    "supports_parallel_function_calling",
    "supports_vision",
    "supports_web_search",
    "supports_url_context",
    "supports_reasoning",
)


def _chat_params(deployment) -> frozenset[str]:
    adapter = adapter_for(deployment.provider, deployment.upstream_model)
    if adapter is None:
        return frozenset()
    return adapter.chat_params if adapter.chat_params is not None else OPENAI_CHAT_PARAMS


def model_group_data(model_name: str, deployments: list, catalog: dict[int, dict]) -> dict:
    """LiteLLM's ModelGroupInfo of the deployments sharing a public name: the largest context
    window, output limit and prices among them (a request may reach any), the sum of their rpm and
    tpm (None when one is unlimited), a flag when one of them has it, and the OpenAI parameters
    every one of them takes."""
    entries = [catalog.get(deployment.pk, {}) for deployment in deployments]

    def largest(name):
        values = [entry[name] for entry in entries if isinstance(entry.get(name), (int, float))]
        return max(values) if values else None

    def total(name):
        values = [getattr(deployment, name) for deployment in deployments]
        return sum(values) if all(values) else None

    mode = deployments[0].mode
    params = frozenset()
    if mode == "chat":
        params = frozenset.intersection(*(_chat_params(deployment) for deployment in deployments))
    return {
        "model_group": model_name,
        "providers": sorted({deployment.provider for deployment in deployments}),
        "max_input_tokens": largest("max_input_tokens"),
        "max_output_tokens": largest("max_output_tokens"),
        "input_cost_per_token": largest("input_cost_per_token"),
        "output_cost_per_token": largest("output_cost_per_token"),
        "mode": mode,
        "tpm": total("tpm"),
        "rpm": total("rpm"),
        **{flag: any(entry.get(flag) is True for entry in entries) for flag in SUPPORTS_FLAGS},
        "supported_openai_params": sorted(params - {"model", "messages"}),
    }
