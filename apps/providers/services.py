from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from apps.providers.config import DeploymentSpec, GatewayConfig
from apps.providers.models import ModelDeployment

_SPEC_FIELDS = (
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
)


@dataclass
class ConfigSyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deactivated: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged, {len(self.deactivated)} deactivated"
        )


def _spec_values(spec: DeploymentSpec) -> dict:
    return {name: getattr(spec, name) for name in _SPEC_FIELDS}


@transaction.atomic
def deployments_sync_from_config(*, config: GatewayConfig) -> ConfigSyncReport:
    """Upsert the config file's deployments; those it no longer lists are deactivated.

    One transaction: the registry on every replica sees the old set or the new one.
    """
    report = ConfigSyncReport()
    existing = {
        d.config_id: d
        for d in ModelDeployment.objects.select_for_update().filter(managed_by_config=True)
    }
    for spec in config.deployments:
        values = _spec_values(spec)
        label = f"{spec.model_name} ({spec.provider}/{spec.upstream_model})"
        row = existing.pop(spec.config_id, None)
        if row is None:
            row = ModelDeployment.objects.filter(config_id=spec.config_id).first()
        if row is None:
            ModelDeployment.objects.create(
                config_id=spec.config_id, managed_by_config=True, is_active=True, **values
            )
            report.created.append(label)
            continue
        changed = not row.is_active or not row.managed_by_config or any(
            getattr(row, name) != value for name, value in values.items()
        )
        if changed:
            for name, value in values.items():
                setattr(row, name, value)
            row.is_active = True
            row.managed_by_config = True
            row.save()
            report.updated.append(label)
        else:
            report.unchanged.append(label)
    for row in existing.values():
        if row.is_active:
            row.is_active = False
            row.save(update_fields=["is_active", "updated_at"])
            report.deactivated.append(f"{row.model_name} ({row.provider}/{row.upstream_model})")
    return report
