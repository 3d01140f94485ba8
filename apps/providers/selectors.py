from __future__ import annotations

from apps.providers.models import ModelDeployment


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
