from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from apps.providers.config import ConfigError, DeploymentSpec, GatewayConfig, _parse_deployment
from apps.providers.models import ModelDeployment
from apps.providers.selectors import DeploymentPlanEntry, deployment_spec_values, deployments_config_plan


@dataclass
class ConfigSyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deactivated: list[str] = field(default_factory=list)
    router_settings: str = ""  # what happened to the router settings, if the file has any

    def summary(self) -> str:
        summary = (
            f"{len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged, {len(self.deactivated)} deactivated"
        )
        return f"{summary}; {self.router_settings}" if self.router_settings else summary


def _spec_values(spec: DeploymentSpec) -> dict:
    return deployment_spec_values(spec)


@transaction.atomic
def deployments_sync_from_config(*, config: GatewayConfig) -> ConfigSyncReport:
    """Upsert the config file's deployments; those it no longer lists are deactivated.
    (The whole file, router settings included, is applied by routing.services.gateway_config_apply.)

    One transaction: the registry on every replica sees the old set or the new one.
    """
    return deployments_config_plan_apply(plan=deployments_config_plan(config=config, for_update=True))


@transaction.atomic
def deployments_config_plan_apply(*, plan: list[DeploymentPlanEntry]) -> ConfigSyncReport:
    """Carry out a plan of selectors.deployments_config_plan (made in this transaction, rows locked):
    exactly the changes it lists, which is what the admin's import previewed."""
    report = ConfigSyncReport()
    for entry in plan:
        if entry.action == "create":
            ModelDeployment.objects.create(
                config_id=entry.config_id, managed_by_config=True, is_active=True,
                **deployment_spec_values(entry.spec),
            )
            report.created.append(entry.label)
        elif entry.action == "update":
            row = entry.row
            for change in entry.changes:
                setattr(row, change.name, change.new)
            row.save()
            report.updated.append(entry.label)
        elif entry.action == "deactivate":
            entry.row.is_active = False
            entry.row.save(update_fields=["is_active", "updated_at"])
            report.deactivated.append(entry.label)
        else:
            report.unchanged.append(entry.label)
    return report


# --- the management API -------------------------------------------------------------------


class DeploymentEntryError(ValueError):
    """An invalid model_list-style entry; `param` names the field (e.g. litellm_params.model)."""

    def __init__(self, message: str, *, param: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def _entry_error(error: Exception, model_name) -> DeploymentEntryError:
    # The config loader's messages read "model_list[0] (<model_name>).litellm_params.model: ...".
    text = str(error)
    location, _, message = text.partition(": ")
    for prefix in (f"model_list[0] ({model_name})", "model_list[0]"):
        if location.startswith(prefix):
            location = location[len(prefix):]
            break
    param = location.lstrip(".") or None
    return DeploymentEntryError(f"{param}: {message}" if param else text, param=param)


def deployment_spec_from_entry(entry: dict) -> DeploymentSpec:
    """Validate one model_list entry ({model_name, litellm_params, model_info}) exactly as the
    config loader does. Raises DeploymentEntryError naming the field."""
    try:
        return _parse_deployment(0, entry, {})
    except ConfigError as error:
        raise _entry_error(error, entry.get("model_name") if isinstance(entry, dict) else None) from None


@transaction.atomic
def deployment_create(*, spec: DeploymentSpec, model_id: str | None, organization=None, team=None,
                      team_model_rpm_limit: int | None = None,
                      team_model_tpm_limit: int | None = None) -> ModelDeployment:
    """A deployment made through the API (the config file leaves it alone). With an
    organization, only that organization's keys may use it; with a team (LiteLLM's team model),
    only that team's keys, within the team's limits on it; it is then the team's organization's."""
    if team is not None:
        organization = team.organization
    deployment = ModelDeployment(
        config_id=model_id, managed_by_config=False, is_active=True, organization=organization, team=team,
        team_model_rpm_limit=team_model_rpm_limit, team_model_tpm_limit=team_model_tpm_limit,
        **_spec_values(spec),
    )
    deployment.full_clean()
    deployment.save()
    return deployment


@transaction.atomic
def deployment_update(
    *, deployment: ModelDeployment, spec: DeploymentSpec, base_spec: DeploymentSpec | None = None, **fields
) -> ModelDeployment:
    """Write a new spec over the deployment. With `base_spec` (what the deployment's stored values
    parse to), only the values that differ from it are written, so whatever an entry cannot
    express is kept. `fields`: others to set (organization, team, team_model_*_limit); a team
    deployment is always its team's organization's."""
    values = _spec_values(spec)
    if base_spec is not None:
        base = _spec_values(base_spec)
        values = {name: value for name, value in values.items() if value != base[name]}
    for name, value in {**values, **fields}.items():
        setattr(deployment, name, value)
    if deployment.team_id is not None:
        deployment.organization_id = deployment.team.organization_id
    deployment.full_clean()
    deployment.save()
    return deployment


@transaction.atomic
def deployment_delete(*, deployment: ModelDeployment) -> None:
    deployment.delete()
