from __future__ import annotations

import uuid

from apps.teams.models import Organization, Team


def organization_get_by_ref(ref: str) -> Organization | None:
    """An organization by id or by name."""
    try:
        return Organization.objects.get(pk=uuid.UUID(str(ref)))
    except (ValueError, Organization.DoesNotExist):
        return Organization.objects.filter(name=ref).first()


def team_get_by_ref(ref: str) -> Team | None:
    """A team by id or by alias (an alias must be unambiguous across organizations)."""
    try:
        return Team.objects.select_related("organization").get(pk=uuid.UUID(str(ref)))
    except (ValueError, Team.DoesNotExist):
        matches = list(Team.objects.select_related("organization").filter(alias=ref)[:2])
        return matches[0] if len(matches) == 1 else None
