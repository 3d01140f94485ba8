from __future__ import annotations

import uuid

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.keys.services import virtual_key_create, virtual_key_expiry
from apps.teams.models import Organization, OrganizationMembership, Team, TeamMembership, UserLimits
from apps.teams.selectors import user_get


DEFAULT_ORGANIZATION_NAME = "default"


def organization_get_or_create_default() -> Organization:
    """The organization of the teams the proxy admin makes without naming one (LiteLLM's teams need
    none; every team here belongs to an organization), made on first use. Concurrent first uses
    make one: the name is unique, and get_or_create reads the winner's row after losing the race
    (its insert runs in a savepoint, so an enclosing transaction survives)."""
    organization, _ = Organization.objects.get_or_create(name=DEFAULT_ORGANIZATION_NAME)
    return organization


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
    *, team: Team, user: AbstractBaseUser, role: str = TeamMembership.Role.MEMBER, **limits
) -> TeamMembership:
    """Add a member (or change its role); `limits`: its own max_budget, rpm_limit, tpm_limit, models
    in the team, set when given."""
    membership, _ = TeamMembership.objects.update_or_create(
        team=team, user=user, defaults={"role": role, **limits}
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


# --- the management API -------------------------------------------------------------------
# Every write goes through .save()/.delete(): the post_save/post_delete signals are what
# invalidates the key contexts cached on every replica.


def _apply(entity, fields: dict) -> None:
    for name, value in fields.items():
        setattr(entity, name, value)
    entity.full_clean()
    entity.save()


# The limits a linked budget (LiteLLM's budget_id) gives its organizations.
BUDGET_LIMIT_FIELDS = ("max_budget", "soft_budget", "budget_duration", "rpm_limit", "tpm_limit",
                       "max_parallel_requests")


def _budget_limits(budget) -> dict:
    return {name: getattr(budget, name) for name in BUDGET_LIMIT_FIELDS}


@transaction.atomic
def organization_create_with_budget(
    *, name: str, budget=None, created_by: str = "", **fields
) -> Organization:
    """An organization; linked to `budget` (LiteLLM's budget_id), it has the budget's limits."""
    if budget is not None:
        fields = {**fields, **_budget_limits(budget), "budget": budget}
    return organization_create(name=name, created_by=created_by, updated_by=created_by, **fields)


@transaction.atomic
def organization_update(*, organization: Organization, **fields) -> Organization:
    """`budget` (a Budget, or None to unlink) brings the budget's limits with it; unlinking
    keeps them as the organization's own."""
    if fields.get("budget") is not None:
        fields = {**fields, **_budget_limits(fields["budget"])}
    _apply(organization, fields)
    return organization


@transaction.atomic
def organization_budget_sync(*, budget) -> None:
    """A budget changed: the organizations linked to it take its limits (each save reaches every
    key context through the Organization signal)."""
    for organization in Organization.objects.filter(budget=budget):
        _apply(organization, _budget_limits(budget))


@transaction.atomic
def organization_delete(*, organization: Organization) -> None:
    """Deletes the organization with its teams and keys."""
    organization.delete()


@transaction.atomic
def organization_member_role_set(*, membership: OrganizationMembership, role: str) -> OrganizationMembership:
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def organization_member_remove(*, organization: Organization, user: AbstractBaseUser) -> bool:
    membership = OrganizationMembership.objects.filter(organization=organization, user=user).first()
    if membership is None:
        return False
    membership.delete()
    return True


@transaction.atomic
def team_update(*, team: Team, **fields) -> Team:
    _apply(team, fields)
    if "organization" in fields:
        # A team's keys carry its organization; keep them in step with it.
        for key in team.keys.exclude(organization=team.organization):
            key.organization = team.organization
            key.save(update_fields=["organization", "updated_at"])
    return team


@transaction.atomic
def team_logging_callback_set(*, team: Team, entry: dict) -> Team:
    """Add the team's logging callback, or replace its callback of that name (a checked entry:
    apps.management.inputs.logging_callback_entry)."""
    team = Team.objects.select_for_update().get(pk=team.pk)
    others = [e for e in team.logging_callbacks or [] if e["callback_name"] != entry["callback_name"]]
    return team_update(team=team, logging_callbacks=[*others, entry])


@transaction.atomic
def team_logging_callback_remove(*, team: Team, callback_name: str) -> Team:
    team = Team.objects.select_for_update().get(pk=team.pk)
    kept = [e for e in team.logging_callbacks or [] if e["callback_name"] != callback_name]
    return team_update(team=team, logging_callbacks=kept)


@transaction.atomic
def team_delete(*, team: Team) -> None:
    """Deletes the team with its keys and memberships."""
    team.delete()


@transaction.atomic
def team_member_role_set(*, team: Team, user: AbstractBaseUser, role: str) -> TeamMembership | None:
    """Change a member's role in the team; None if the user is not a member."""
    membership = TeamMembership.objects.filter(team=team, user=user).first()
    if membership is None:
        return None
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def team_member_limits_set(*, membership: TeamMembership, **limits) -> TeamMembership:
    """Change a member's own limits in its team (max_budget, rpm_limit, tpm_limit, models)."""
    _apply(membership, limits)
    return membership


@transaction.atomic
def team_models_add(*, team: Team, models: list[str]) -> Team:
    """Add models to the team's list (LiteLLM's /team/model/add); those it has stay once."""
    return team_update(team=team, models=[*team.models, *(m for m in dict.fromkeys(models) if m not in team.models)])


@transaction.atomic
def team_models_remove(*, team: Team, models: list[str]) -> Team:
    """Remove models from the team's list (LiteLLM's /team/model/delete). A list left empty would mean
    every model: refused by the caller's check, not here."""
    return team_update(team=team, models=[m for m in team.models if m not in models])


@transaction.atomic
def team_member_remove(*, team: Team, user: AbstractBaseUser) -> bool:
    membership = TeamMembership.objects.filter(team=team, user=user).first()
    if membership is None:
        return False
    membership.delete()
    return True


@transaction.atomic
def user_create(
    *,
    username: str,
    email: str = "",
    alias: str = "",
    is_superuser: bool = False,
    password: str | None = None,
    limits: dict | None = None,
) -> AbstractBaseUser:
    """A user of the gateway. Its own limits (across every team and key) go to UserLimits."""
    User = get_user_model()
    user = User(username=username, email=email or "", first_name=alias or "")
    user.is_superuser = user.is_staff = is_superuser
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.full_clean(exclude=["password"])
    user.save()
    if limits:
        user_limits_set(user=user, **limits)
    return user


@transaction.atomic
def user_update(
    *,
    user: AbstractBaseUser,
    email: str | None = None,
    alias: str | None = None,
    role: str | None = None,
    password: str | None = None,
    limits: dict | None = None,
) -> AbstractBaseUser:
    """Only what is given changes; `role` is LiteLLM's user_role (user_role_set)."""
    if email is not None:
        user.email = email
    if alias is not None:
        user.first_name = alias
    if password:
        user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    if role is not None:
        user_role_set(user=user, role=role)
    if limits:
        user_limits_set(user=user, **limits)
    return user


@transaction.atomic
def user_role_set(*, user: AbstractBaseUser, role: str) -> AbstractBaseUser:
    """LiteLLM's user_role, in our terms: proxy_admin is a superuser; org_admin administers every
    organization it belongs to (it needs one); internal_user_viewer only views, in all of its
    memberships; internal_user writes where it was a viewer (its admin roles stay: those are
    set per team or organization)."""
    org_memberships = OrganizationMembership.objects.filter(user=user)
    team_memberships = TeamMembership.objects.filter(user=user)
    if role == "org_admin" and not org_memberships.exists():
        raise ValidationError(
            {"user_role": ["An org_admin needs an organization: add the user to one first."]}
        )
    is_superuser = role == "proxy_admin"
    if user.is_superuser != is_superuser:
        user.is_superuser = user.is_staff = is_superuser
        user.save(update_fields=["is_superuser", "is_staff"])
    org_roles, team_roles = OrganizationMembership.Role, TeamMembership.Role
    if role == "org_admin":
        changes = [(org_memberships, org_roles.ADMIN)]
    elif role == "internal_user_viewer":
        changes = [(org_memberships, org_roles.VIEWER), (team_memberships, team_roles.VIEWER)]
    elif role == "internal_user":
        changes = [(org_memberships.filter(role=org_roles.VIEWER), org_roles.MEMBER),
                   (team_memberships.filter(role=team_roles.VIEWER), team_roles.MEMBER)]
    else:
        changes = []
    for memberships, new_role in changes:
        for membership in memberships.exclude(role=new_role):
            membership.role = new_role
            membership.save(update_fields=["role"])  # each save: its signals, as elsewhere
    return user


@transaction.atomic
def user_limits_set(*, user: AbstractBaseUser, **fields) -> UserLimits:
    limits = UserLimits.objects.filter(user=user).first() or UserLimits(user=user)
    _apply(limits, fields)
    return limits


@transaction.atomic
def user_delete(*, user: AbstractBaseUser) -> None:
    """Deletes the user with its keys, limits and memberships."""
    user.delete()


@transaction.atomic
def user_get_or_create(*, user_id: str | None, user_email: str | None) -> tuple[AbstractBaseUser, bool]:
    """The user named by LiteLLM's user_id (our username) or email; created when missing, as
    LiteLLM's member_add does (username: the user_id, else a new uuid)."""
    user = user_get(user_id=user_id, user_email=user_email)
    if user is not None:
        return user, False
    return user_create(username=user_id or str(uuid.uuid4()), email=user_email or ""), True


@transaction.atomic
def team_members_add(
    *, team: Team, members: list[dict], max_budget=None
) -> list[tuple[AbstractBaseUser, TeamMembership]]:
    """Add (or change the role of) members given as {user_id | user_email, role, models?}; unknown
    users are created. A member given no models gets the team's default_models; `max_budget`, when
    given, is each one's own budget in the team."""
    added = []
    for member in members:
        user, _ = user_get_or_create(user_id=member.get("user_id"), user_email=member.get("user_email"))
        limits = {"models": member.get("models") or list(team.default_models)}
        if max_budget is not None:
            limits["max_budget"] = max_budget
        added.append((user, team_member_add(team=team, user=user, role=member["role"], **limits)))
    return added


@transaction.atomic
def team_create_with_members(
    *, organization: Organization, alias: str, members: list[dict], **fields
) -> Team:
    team = team_create(organization=organization, alias=alias, **fields)
    team_members_add(team=team, members=members)
    return team


@transaction.atomic
def organization_members_add(
    *, organization: Organization, members: list[dict]
) -> list[tuple[AbstractBaseUser, OrganizationMembership]]:
    """Add (or change the role of) members given as {user_id | user_email, role}; unknown users
    are created."""
    added = []
    for member in members:
        user, _ = user_get_or_create(user_id=member.get("user_id"), user_email=member.get("user_email"))
        membership = organization_member_add(organization=organization, user=user, role=member["role"])
        added.append((user, membership))
    return added


@transaction.atomic
def user_create_with_memberships(
    *,
    user_fields: dict,
    user_role: str | None,
    organizations: list[Organization],
    teams: list[tuple[Team, str]],
    first_key: dict | None,
    issued_by_proxy_admin: bool,
):
    """A user, its memberships and (when first_key = {alias, duration} is given) its first key.

    LiteLLM's `user_role` decides the roles: proxy_admin is a superuser, org_admin administers
    its organizations (it needs one), internal_user_viewer only views, in its teams too.
    The first key lies in the user's first team (else organization), where its limits hold;
    outside both only when the user has no membership.
    Returns (user, key, raw_key); the raw key is shown once and stored nowhere."""
    username = user_fields.get("username") or str(uuid.uuid4())
    if get_user_model().objects.filter(username=username).exists():
        raise ValidationError({"username": ["A user with this user_id already exists."]})
    if user_role == "org_admin" and not organizations:
        raise ValidationError({"organizations": ["Required for an org_admin."]})
    viewer = user_role == "internal_user_viewer"
    if user_role == "org_admin":
        organization_role = OrganizationMembership.Role.ADMIN
    else:
        organization_role = OrganizationMembership.Role.VIEWER if viewer else OrganizationMembership.Role.MEMBER

    user = user_create(**{**user_fields, "username": username}, is_superuser=user_role == "proxy_admin")
    for organization in organizations:
        organization_member_add(organization=organization, user=user, role=organization_role)
    for team, role in teams:
        team_member_add(team=team, user=user, role=TeamMembership.Role.VIEWER if viewer else role)
    key = raw_key = None
    if first_key is not None:
        key_team = teams[0][0] if teams else None
        key_organization = key_team.organization if key_team else (organizations[0] if organizations else None)
        key, raw_key = virtual_key_create(
            user=user,
            alias=first_key.get("alias") or "",
            expires_at=virtual_key_expiry(first_key.get("duration")),
            team=key_team,
            organization=key_organization,
            issued_by_proxy_admin=issued_by_proxy_admin,
        )
    return user, key, raw_key
