"""Choosing a deployment for a public model name."""

from __future__ import annotations

import random

from apps.core.errors import not_found
from apps.keys.context import KeyContext
from apps.providers.registry import Deployment, deployment_registry


def usable_deployments(group: list[Deployment], context: KeyContext) -> list[Deployment]:
    """The group's deployments this key may reach: shared ones and its organization's own."""
    if context.is_master:
        return group
    return [d for d in group if d.organization_id is None or d.organization_id == context.organization_id]


async def deployment_choose(model: str, context: KeyContext) -> Deployment:
    """Among the active deployments of the model's group this key may reach, one picked by weight."""
    group = usable_deployments((await deployment_registry.groups()).get(model) or [], context)
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
