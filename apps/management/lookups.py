"""The management API's lookups by id: a 404 naming the param when nothing matches (whether the
caller may see what is found is decided in apps.management.permissions)."""

from __future__ import annotations

from apps.management.framework import NotFoundError
from apps.teams import selectors
from apps.teams.models import Organization, Team


def organization_or_404(organization_id, *, param: str = "organization_id") -> Organization:
    organization = selectors.organization_get(organization_id=organization_id)
    if organization is None:
        raise NotFoundError(f"No organization with id {organization_id!r}.", param=param)
    return organization


def team_or_404(team_id, *, param: str = "team_id") -> Team:
    team = selectors.team_get(team_id=team_id)
    if team is None:
        raise NotFoundError(f"No team with id {team_id!r}.", param=param)
    return team


def user_or_404(*, user_id: str | None = None, user_email: str | None = None, param: str = "user_id"):
    user = selectors.user_get(user_id=user_id, user_email=user_email)
    if user is None:
        raise NotFoundError(f"No user {user_id or user_email!r}.", param=param)
    return user
