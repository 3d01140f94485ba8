from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from apps.providers.models import ModelDeployment

if TYPE_CHECKING:  # apps.providers.config imports the registry, which imports this module
    from apps.providers.config import DeploymentSpec, GatewayConfig

# The columns a config.yaml entry (a DeploymentSpec) sets; loading a file overwrites each of them.
CONFIG_FIELDS = (
    "model_name",
    "provider",
    "upstream_model",
    "api_base",
    "api_key",
    "api_version",
    "rpm",
    "tpm",
    "weight",
    "timeout",
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "extra_params",
    "secret_params",
    "access_groups",
    "tags",
    "max_input_tokens",
    "connect_timeout",
    "stream_timeout",
    "mode",
)


def deployment_list_active() -> list[ModelDeployment]:
    return list(ModelDeployment.objects.filter(is_active=True).order_by("model_name", "id"))


def deployment_get_by_model_id(*, model_id: str) -> ModelDeployment | None:
    """A deployment by LiteLLM's model id: its model_info.id, else its database id."""
    deployment = ModelDeployment.objects.filter(config_id=model_id).first()
    # ASCII digits only: "²".isdigit() is true and int() refuses it; 18 digits fit a bigint.
    if deployment is None and model_id.isascii() and model_id.isdigit() and len(model_id) <= 18:
        deployment = ModelDeployment.objects.filter(pk=int(model_id), config_id__isnull=True).first()
    return deployment


def deployment_list(*, include_inactive: bool = False) -> list[ModelDeployment]:
    deployments = ModelDeployment.objects.all()
    if not include_inactive:
        deployments = deployments.filter(is_active=True)
    return list(deployments.order_by("model_name", "id"))


def deployment_list_named(*, model_name: str) -> list[ModelDeployment]:
    """The active deployments serving a public model name."""
    return list(ModelDeployment.objects.filter(model_name=model_name, is_active=True).order_by("id"))


# --- config.yaml: what loading a file would change --------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    name: str
    old: Any
    new: Any


@dataclass
class DeploymentPlanEntry:
    """What loading a config file does to one deployment: create, update, unchanged or deactivate."""

    action: str
    label: str
    config_id: str
    spec: DeploymentSpec | None = None  # None: a deployment the file no longer lists
    row: ModelDeployment | None = field(default=None, repr=False)
    changes: list[FieldChange] = field(default_factory=list)


def deployment_spec_values(spec: DeploymentSpec) -> dict:
    """The values of the columns a config entry sets."""
    return {name: getattr(spec, name) for name in CONFIG_FIELDS}


def _label(model_name: str, provider: str, upstream_model: str) -> str:
    return f"{model_name} ({provider}/{upstream_model})"


def deployments_config_plan(*, config: GatewayConfig, for_update: bool = False) -> list[DeploymentPlanEntry]:
    """What deployments_sync_from_config would do with this file, entry by entry, with the fields it
    would change: the preview of an upload, and the plan the sync then carries out (one logic for both).
    `for_update`: lock the rows (inside the sync's transaction)."""
    rows = ModelDeployment.objects.all()
    if for_update:
        rows = rows.select_for_update()
    existing = {row.config_id: row for row in rows.filter(managed_by_config=True)}
    defaults = ModelDeployment()
    plan = []
    for spec in config.deployments:
        values = deployment_spec_values(spec)
        label = _label(spec.model_name, spec.provider, spec.upstream_model)
        # A row of the same id made through the API (model_info.id) is taken over by the file.
        row = existing.pop(spec.config_id, None) or rows.filter(config_id=spec.config_id).first()
        if row is None:
            changes = [FieldChange(name, None, value) for name, value in values.items()
                       if value != getattr(defaults, name)]
            plan.append(DeploymentPlanEntry("create", label, spec.config_id, spec, None, changes))
            continue
        changes = [FieldChange(name, getattr(row, name), value) for name, value in values.items()
                   if getattr(row, name) != value]
        changes += [FieldChange(name, False, True) for name in ("is_active", "managed_by_config")
                    if not getattr(row, name)]
        action = "update" if changes else "unchanged"
        plan.append(DeploymentPlanEntry(action, label, spec.config_id, spec, row, changes))
    for row in existing.values():
        if row.is_active:
            label = _label(row.model_name, row.provider, row.upstream_model)
            plan.append(DeploymentPlanEntry("deactivate", label, row.config_id, None, row,
                                            [FieldChange("is_active", True, False)]))
    return plan
