"""Choosing a deployment for a public model name."""

from __future__ import annotations

import random

from apps.core.errors import not_found
from apps.providers.registry import Deployment, deployment_registry


async def deployment_choose(model: str) -> Deployment:
    """Among the active deployments of the model's group, one picked by weight."""
    group = (await deployment_registry.groups()).get(model)
    if not group:
        raise not_found(
            f"The model '{model}' does not exist on this gateway.", param="model", code="model_not_found"
        )
    if len(group) == 1:
        return group[0]
    weights = [d.weight for d in group]
    if not any(weights):
        return random.choice(group)
    return random.choices(group, weights=weights, k=1)[0]
