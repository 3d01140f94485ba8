from __future__ import annotations

from apps.providers.models import ModelDeployment


def deployment_list_active() -> list[ModelDeployment]:
    return list(ModelDeployment.objects.filter(is_active=True).order_by("model_name", "id"))
