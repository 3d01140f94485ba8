from __future__ import annotations

import uuid

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from apps.teams.models import Organization, OrganizationMembership, Team, TeamMembership, UserLimits


def organization_get_by_ref(ref: str) -> Organization | None:
    """An organization by id or by name."""
    try:
        return Organization.objects.get(pk=uuid.UUID(str(ref)))
    except (ValueError, Organization.DoesNotExist):
        return Organization.objects.filter(name=ref).first()


def team_get_by_ref(ref: str) -> Team | None:
    """A team by id or by alias (an alias must be unambiguous across organizations)."""
    team = team_get(team_id=ref)
    if team is not None:
        return team
    matches = list(Team.objects.select_related("organization").filter(alias=ref)[:2])
    return matches[0] if len(matches) == 1 else None


# --- the management API -------------------------------------------------------------------


def _uuid_or_none(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


def organization_get(*, organization_id) -> Organization | None:
    """An organization by id (a malformed id matches nothing)."""
    pk = _uuid_or_none(organization_id)
    return Organization.objects.filter(pk=pk).first() if pk else None


def team_get(*, team_id) -> Team | None:
    """A team by id, or by the team_id it was created with through LiteLLM's API (external_id)."""
    teams = Team.objects.select_related("organization")
    pk = _uuid_or_none(team_id)
    if pk is not None:
        team = teams.filter(pk=pk).first()
        if team is not None:
            return team
    if not isinstance(team_id, str) or not team_id:
        return None
    return teams.filter(external_id=team_id).first()


def user_get(*, user_id: str | None = None, user_email: str | None = None):
    """A user by LiteLLM's user_id (our username), else by email."""
    users = get_user_model().objects
    if user_id:
        return users.filter(username=user_id).first()
    if user_email:
        return users.filter(email__iexact=user_email).order_by("pk").first()
    return None


def organization_membership_get(*, organization, user) -> OrganizationMembership | None:
    memberships = OrganizationMembership.objects.select_related("user")
    return memberships.filter(organization=organization, user=user).first()


def memberships_of_user(*, user) -> tuple[dict, dict, dict]:
    """(organization id → role, team id → role, team id → its organization id) of a user."""
    org_roles = dict(OrganizationMembership.objects.filter(user=user).values_list("organization_id", "role"))
    team_roles, team_orgs = {}, {}
    for team_id, role, organization_id in TeamMembership.objects.filter(user=user).values_list(
        "team_id", "role", "team__organization_id"
    ):
        team_roles[team_id] = role
        team_orgs[team_id] = organization_id
    return org_roles, team_roles, team_orgs


def user_ids_in_organizations(*, organization_ids) -> QuerySet:
    """The users with a membership in these organizations or in one of their teams."""
    organization_ids = list(organization_ids)
    org_members = OrganizationMembership.objects.filter(organization_id__in=organization_ids)
    team_members = TeamMembership.objects.filter(team__organization_id__in=organization_ids)
    return get_user_model().objects.filter(
        Q(pk__in=org_members.values("user_id")) | Q(pk__in=team_members.values("user_id"))
    ).values("pk")


def user_ids_managed_by_organizations(*, organization_ids) -> QuerySet:
    """The users who belong to these organizations and to no other (superusers excepted)."""
    organization_ids = list(organization_ids)
    elsewhere = Q(
        pk__in=OrganizationMembership.objects.exclude(organization_id__in=organization_ids).values("user_id")
    ) | Q(pk__in=TeamMembership.objects.exclude(team__organization_id__in=organization_ids).values("user_id"))
    return (
        get_user_model().objects.filter(pk__in=user_ids_in_organizations(organization_ids=organization_ids))
        .exclude(elsewhere)
        .exclude(is_superuser=True)
        .values("pk")
    )


def user_ids_in_teams(*, team_ids) -> QuerySet:
    return get_user_model().objects.filter(
        pk__in=TeamMembership.objects.filter(team_id__in=list(team_ids)).values("user_id")
    ).values("pk")


def user_is_in_organizations(*, user_id, organization_ids) -> bool:
    return user_ids_in_organizations(organization_ids=organization_ids).filter(pk=user_id).exists()


def user_is_managed_by_organizations(*, user_id, organization_ids) -> bool:
    return user_ids_managed_by_organizations(organization_ids=organization_ids).filter(pk=user_id).exists()


def user_organization_ids(*, user_id) -> set:
    """The organizations a user belongs to, directly or through one of their teams."""
    direct = OrganizationMembership.objects.filter(user_id=user_id).values_list("organization_id", flat=True)
    through_teams = TeamMembership.objects.filter(user_id=user_id).values_list("team__organization_id", flat=True)
    return set(direct) | set(through_teams)


def user_is_an_org_admin(*, user_id) -> bool:
    return OrganizationMembership.objects.filter(user_id=user_id, role=OrganizationMembership.Role.ADMIN).exists()


def user_is_team_member(*, user_id, team_id) -> bool:
    return TeamMembership.objects.filter(user_id=user_id, team_id=team_id).exists()


def model_restrictions_of_user(*, user, team_ids) -> list[tuple[frozenset[str], ...]]:
    """What restricts the models a user may call, one path per team (the user's own limits, the
    team's, its organization's: each a set of names, access groups and wildcards; a model must
    pass every level of one path), or one path of its own limits without teams."""
    try:
        user_models = list(user.gateway_limits.models)
    except UserLimits.DoesNotExist:
        user_models = []
    if not team_ids:
        return [tuple(frozenset(level) for level in (user_models,) if level)]
    return [
        tuple(frozenset(level) for level in (user_models, team_models, organization_models) if level)
        for team_models, organization_models in Team.objects.filter(pk__in=team_ids).values_list(
            "models", "organization__models"
        )
    ]


def organization_list(*, scope: Q) -> QuerySet:
    return Organization.objects.filter(scope).select_related("budget").order_by("name")


def team_list(*, scope: Q, organization_id=None) -> QuerySet:
    teams = Team.objects.filter(scope).select_related("organization")
    if organization_id is not None:
        teams = teams.filter(organization_id=organization_id)
    return teams.order_by("organization__name", "alias")


def user_list(*, scope: Q, team_id=None, organization_id=None, user_email: str | None = None) -> QuerySet:
    users = get_user_model().objects.filter(scope)
    if team_id is not None:
        users = users.filter(pk__in=user_ids_in_teams(team_ids=[team_id]))
    if organization_id is not None:
        users = users.filter(pk__in=user_ids_in_organizations(organization_ids=[organization_id]))
    if user_email:
        users = users.filter(email__icontains=user_email)
    return users.order_by("username")


def team_membership_get(*, team: Team, user) -> TeamMembership | None:
    return TeamMembership.objects.select_related("user").filter(team=team, user=user).first()


def team_memberships(*, team: Team) -> list[TeamMembership]:
    return list(team.memberships.select_related("user").order_by("user__username"))


def organization_memberships(*, organization: Organization) -> list[OrganizationMembership]:
    return list(organization.memberships.select_related("user").order_by("user__username"))


def user_teams(*, user) -> list[tuple[Team, str]]:
    """The user's teams with its role in each."""
    return [
        (membership.team, membership.role)
        for membership in TeamMembership.objects.filter(user=user)
        .select_related("team", "team__organization")
        .order_by("team__alias")
    ]


def audit_log_list(*, organization_ids=None, filters: dict):
    """Audit entries, newest first; `organization_ids`: only theirs (None: all)."""
    from datetime import datetime, time, timedelta, timezone

    from apps.core.models import AuditLog

    entries = AuditLog.objects.all()
    if organization_ids is not None:
        entries = entries.filter(organization_id__in=[str(o) for o in organization_ids])
    for name in ("object_type", "object_id", "action", "via", "request_id", "organization_id"):
        if filters.get(name):
            entries = entries.filter(**{name: filters[name]})
    if filters.get("actor"):
        entries = entries.filter(actor__icontains=filters["actor"])
    if filters.get("start_date"):
        entries = entries.filter(created_at__gte=datetime.combine(filters["start_date"], time(), timezone.utc))
    if filters.get("end_date"):
        end = datetime.combine(filters["end_date"], time(), timezone.utc) + timedelta(days=1)
        entries = entries.filter(created_at__lt=end)
    return entries.order_by("-created_at", "-id")
