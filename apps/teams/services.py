from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from apps.teams.models import Organization, OrganizationMembership, Team, TeamMembership


@transaction.atomic
def organization_create(*, name: str, **fields) -> Organization:
    organization = Organization(name=name, **fields)
    organization.full_clean()
    organization.save()
    return organization


@transaction.atomic
def team_create(*, organization: Organization, alias: str, **fields) -> Team:
    team = Team(organization=organization, alias=alias, **fields)
    team.full_clean()
    team.save()
    return team


@transaction.atomic
def team_member_add(
    *, team: Team, user: AbstractBaseUser, role: str = TeamMembership.Role.MEMBER
) -> TeamMembership:
    membership, _ = TeamMembership.objects.update_or_create(
        team=team, user=user, defaults={"role": role}
    )
    return membership


@transaction.atomic
def organization_member_add(
    *, organization: Organization, user: AbstractBaseUser, role: str = OrganizationMembership.Role.MEMBER
) -> OrganizationMembership:
    membership, _ = OrganizationMembership.objects.update_or_create(
        organization=organization, user=user, defaults={"role": role}
    )
    return membership
