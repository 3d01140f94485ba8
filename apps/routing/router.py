"""Choosing a deployment for a public model name."""

from __future__ import annotations

import random

from apps.core.errors import not_found, permission_denied
from apps.keys.context import KeyContext
from apps.providers.registry import Deployment, deployment_registry


def usable_deployments(group: list[Deployment], context: KeyContext) -> list[Deployment]:
    """The group's deployments this key may reach: shared ones and its organization's own."""
    if context.is_master:
        return group
    return [d for d in group if d.organization_id is None or d.organization_id == context.organization_id]


def may_use_group(context: KeyContext, model: str, group: list[Deployment]) -> bool:
    return context.may_use_model(
        model,
        names=tuple({f"{d.provider}/{d.upstream_model}" for d in group}),
        access_groups=tuple({g for d in group for g in d.access_groups}),
    )


async def deployment_group(model: str, context: KeyContext) -> list[Deployment]:
    """The deployments serving `model` for this key: 404 if none, 403 if the key may not use it."""
    group = usable_deployments((await deployment_registry.groups()).get(model) or [], context)
    if not group:
        raise not_found(
            f"The model '{model}' does not exist on this gateway.", param="model", code="model_not_found"
        )
    if not may_use_group(context, model, group):
        raise permission_denied(
            f"This key may not use the model '{model}'.", param="model", code="model_not_allowed"
        )
    return group


def deployment_pick(group: list[Deployment]) -> Deployment:
    """One deployment of the group, picked by weight."""
    if len(group) == 1:
        return group[0]
    weights = [d.weight for d in group]
    if not any(weights):
        return random.choice(group)
    return random.choices(group, weights=weights, k=1)[0]
