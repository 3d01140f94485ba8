from __future__ import annotations

from apps.keys.context import KeyContext
from apps.keys.models import VirtualKey


def _allowed(models: list) -> frozenset[str] | None:
    return frozenset(models) if models else None


def key_context_get(*, token_hash: str) -> KeyContext | None:
    """The whole authorization context of a key in one query (the data plane's cache miss)."""
    key = (
        VirtualKey.objects.select_related("team", "organization", "team__organization")
        .filter(token_hash=token_hash)
        .first()
    )
    if key is None:
        return None
    team = key.team
    organization = key.organization or (team.organization if team else None)
    blocked_reason = None
    if key.blocked:
        blocked_reason = "This key is blocked."
    elif team is not None and team.blocked:
        blocked_reason = "The key's team is blocked."
    elif organization is not None and organization.blocked:
        blocked_reason = "The key's organization is blocked."
    return KeyContext(
        key_id=key.pk,
        token_hash=key.token_hash,
        alias=key.alias,
        user_id=key.user_id,
        team_id=str(team.pk) if team else None,
        organization_id=str(organization.pk) if organization else None,
        key_models=_allowed(key.models),
        team_models=_allowed(team.models) if team else None,
        organization_models=_allowed(organization.models) if organization else None,
        max_budget=key.max_budget,
        rpm_limit=key.rpm_limit,
        tpm_limit=key.tpm_limit,
        expires_at=key.expires_at.timestamp() if key.expires_at else None,
        blocked_reason=blocked_reason,
    )


def virtual_key_get_by_raw(raw_key: str) -> VirtualKey | None:
    from apps.keys.services import virtual_key_hash

    return VirtualKey.objects.filter(token_hash=virtual_key_hash(raw_key)).first()
