"""Who may do what through the management API (and the admin), and which rows each caller sees.

The one rule: no principal can create, obtain or change anything that carries more rights than
it holds, nor touch another organization's rows. How it is kept (docs/permissions.md):

- A key's rights are the intersection of its owner's, its team's and its organization's: a key
  in a team acts only inside that team (at most as the team's admin), a key in an organization
  only inside that organization, and whatever a key makes stays inside the same team or
  organization. Only a key outside both carries all of its owner's memberships.
- A superuser's key is the proxy admin only when the proxy admin issued it and it lies outside
  every team and organization (`apps.keys.master.key_grants_proxy_admin`).
- A key is made (or regenerated, or moved) for another user only by someone who administers
  that user where the key would be: an admin of its team or organization, never for the admin
  site's staff (the proxy admin's). A key outside every team and organization is bound by no
  organization's limits: only the proxy admin makes one, or a user without memberships for itself.
- Memberships never bring in staff users, nor users of an organization the caller does not
  administer. Nobody but the proxy admin changes its own user (its limits).

Roles, strongest first:

- proxy admin: the master key, a superuser's admin session, or a superuser's key as above.
- org admin (OrganizationMembership admin) → everything inside its organizations: the
  organization (but not its limits), its teams, their members, the keys of its teams and
  organization, and the users who belong only to its organizations (their keys and limits).
- team admin (TeamMembership admin) → its team's name and metadata (not its limits), its
  members, its keys.
- member → its own keys (their name and metadata; limits only when creating one, where the
  user's, team's and organization's limits still apply on top); itself.
- viewer (only viewer memberships) → reads its own keys, its teams, itself.
- a plain key (no user) → GET /key/info on itself.

Something that exists but lies outside the caller's scope is 403; an id that matches nothing
is 404. Lists are filtered to the caller's scope.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q
from rest_framework import exceptions

from apps.keys.context import MASTER_KEY_CONTEXT
from apps.keys.selectors import key_context_get
from apps.management.framework import Forbidden, Principal
from apps.providers.selectors import deployment_list_named
from apps.spend.callback_settings import callback_entry_reach
from apps.teams import selectors
from apps.teams.models import Organization, Team

ADMIN, MEMBER, VIEWER = "admin", "member", "viewer"
_WRITER_ROLES = (ADMIN, MEMBER)

# What a key's owner may change on its own key (limits are for admins).
KEY_OWNER_FIELDS = frozenset({"key_alias", "metadata"})
# What a team admin may change on its team, and an org admin on its organization.
TEAM_ADMIN_FIELDS = frozenset({"team_alias", "metadata"})
ORGANIZATION_ADMIN_FIELDS = frozenset({"organization_alias", "metadata"})


@dataclass(frozen=True)
class Actor:
    """A caller with its memberships, loaded once per request."""

    is_proxy_admin: bool
    user: AbstractBaseUser | None = None
    key: object | None = None  # the calling VirtualKey, if one was sent
    org_roles: dict[UUID, str] = field(default_factory=dict)  # organization id → role
    team_roles: dict[UUID, str] = field(default_factory=dict)  # team id → role
    team_orgs: dict[UUID, UUID] = field(default_factory=dict)  # the actor's teams → organization
    # The calling key's team and organization: the actor acts only inside them (memberships above
    # are already cut down to them), and every key it makes stays there. A team key has both.
    confined_team_id: UUID | None = None
    confined_organization_id: UUID | None = None

    @property
    def admin_org_ids(self) -> frozenset[UUID]:
        return frozenset(org for org, role in self.org_roles.items() if role == ADMIN)

    @property
    def admin_team_ids(self) -> frozenset[UUID]:
        return frozenset(team for team, role in self.team_roles.items() if role == ADMIN)

    @property
    def is_viewer_only(self) -> bool:
        roles = [*self.org_roles.values(), *self.team_roles.values()]
        return bool(roles) and all(role == VIEWER for role in roles)

    def is_org_admin(self, organization_id) -> bool:
        return self.is_proxy_admin or organization_id in self.admin_org_ids

    def is_team_admin(self, team: Team) -> bool:
        return (
            self.is_proxy_admin
            or self.team_roles.get(team.pk) == ADMIN
            or team.organization_id in self.admin_org_ids
        )

    @property
    def has_memberships(self) -> bool:
        return bool(self.org_roles or self.team_roles)

    def reaches(self, *, team_id, organization_id) -> bool:
        """Does something of this team and organization lie inside the actor's confinement?"""
        if self.confined_team_id is not None:
            return team_id == self.confined_team_id
        if self.confined_organization_id is not None:
            return organization_id == self.confined_organization_id
        return True


def actor_for(principal: Principal) -> Actor:
    if principal.is_proxy_admin:
        return Actor(is_proxy_admin=True, user=principal.user, key=principal.key)
    if principal.user is None:
        return Actor(is_proxy_admin=False, key=principal.key)
    org_roles, team_roles, team_orgs = selectors.memberships_of_user(user=principal.user)
    key = principal.key
    team_id = getattr(key, "team_id", None)
    organization_id = getattr(key, "organization_id", None)
    if team_id is not None:
        # A team key: at most an admin of that one team (an org admin's team key included).
        role = ADMIN if org_roles.get(organization_id) == ADMIN else team_roles.get(team_id)
        team_roles = {team_id: role} if role else {}
        team_orgs = {team_id: organization_id} if role else {}
        org_roles = {}
    elif organization_id is not None:
        # An organization key: the user's roles in that organization and its teams only.
        org_roles = {org: role for org, role in org_roles.items() if org == organization_id}
        team_roles = {t: role for t, role in team_roles.items() if team_orgs[t] == organization_id}
        team_orgs = {t: team_orgs[t] for t in team_roles}
    return Actor(
        is_proxy_admin=False,
        user=principal.user,
        key=key,
        org_roles=org_roles,
        team_roles=team_roles,
        team_orgs=team_orgs,
        confined_team_id=team_id,
        confined_organization_id=organization_id,
    )


def _confined(actor: Actor, scope: Q, *, team_field: str = "team_id",
              organization_field: str = "organization_id") -> Q:
    """`scope` cut down to the actor's confinement (rows with these team / organization fields)."""
    if actor.confined_team_id is not None:
        return scope & Q(**{team_field: actor.confined_team_id})
    if actor.confined_organization_id is not None:
        return scope & Q(**{organization_field: actor.confined_organization_id})
    return scope


def admin_actor(request) -> Actor:
    """The actor behind an admin page: the logged-in staff user (a superuser is the proxy admin)."""
    actor = getattr(request, "_management_actor", None)
    if actor is None:
        user = request.user
        actor = actor_for(Principal(via="session", user=user, is_proxy_admin=user.is_superuser))
        request._management_actor = actor
    return actor


def request_actor(request) -> Actor:
    """The request's actor (memberships are read once per request)."""
    actor = getattr(request, "_management_actor", None)
    if actor is None:
        actor = actor_for(request.auth)
        request._management_actor = actor
    return actor


def require_user(actor: Actor) -> None:
    """Everything but reading one's own key needs a user behind the call."""
    if not actor.is_proxy_admin and actor.user is None:
        raise Forbidden("A key that belongs to no user may only read itself (GET /key/info).")


def require_proxy_admin(actor: Actor, what: str, *, param: str | None = None) -> None:
    if not actor.is_proxy_admin:
        raise Forbidden(f"Only the proxy admin may {what}.", param=param)


def _is_self(actor: Actor, user) -> bool:
    return user is not None and actor.user is not None and user.pk == actor.user.pk


# --- keys ---------------------------------------------------------------------------------


def key_scope(actor: Actor) -> Q:
    """The keys a caller sees."""
    if actor.is_proxy_admin:
        return Q()
    if actor.user is None:
        return Q(pk=actor.key.pk) if actor.key is not None else Q(pk__in=[])
    scope = Q(user_id=actor.user.pk) | Q(team_id__in=actor.admin_team_ids)
    if actor.admin_org_ids:
        orgs = actor.admin_org_ids
        scope |= Q(organization_id__in=orgs) | Q(team__organization_id__in=orgs)
    scope = _confined(actor, scope)  # a team key's organization is its team's
    if actor.admin_org_ids:
        # The personal keys of the users only its organizations hold are an org admin's too (even
        # through an organization key: they belong to nothing else).
        scope |= Q(
            organization__isnull=True,
            team__isnull=True,
            user_id__in=selectors.user_ids_managed_by_organizations(organization_ids=actor.admin_org_ids),
        )
    return scope


def _key_organization_id(key):
    if key.organization_id:
        return key.organization_id
    return key.team.organization_id if key.team_id else None


def _key_powers(actor: Actor, key) -> str | None:
    """'admin' (anything on the key), 'owner' (its own key), 'read' (a fellow org admin's personal
    key), 'self' (a plain key, itself) or None."""
    if actor.is_proxy_admin:
        return "admin"
    if actor.user is None:
        return "self" if actor.key is not None and key.pk == actor.key.pk else None
    organization_id = _key_organization_id(key)
    if actor.reaches(team_id=key.team_id, organization_id=organization_id):
        if organization_id is not None and organization_id in actor.admin_org_ids:
            return "admin"
        if key.team_id is not None and key.team_id in actor.admin_team_ids:
            return "admin"
        if key.user_id == actor.user.pk:
            return "owner"
    elif organization_id is not None or key.user_id == actor.user.pk:
        return None
    if (
        organization_id is None
        and key.user_id is not None
        and actor.admin_org_ids
        and selectors.user_is_managed_by_organizations(
            user_id=key.user_id, organization_ids=actor.admin_org_ids
        )
    ):
        # An org admin's own keys are its peers' to read only (else an admin could make a second
        # admin and through it raise its own key's limits).
        return "read" if selectors.user_is_an_org_admin(user_id=key.user_id) else "admin"
    return None


def _may_write_own_keys(actor: Actor, team_id) -> bool:
    """Viewers only read: in a team, the role there counts; outside teams, any non-viewer role."""
    if team_id is not None:
        return actor.team_roles.get(team_id) in _WRITER_ROLES
    return not actor.is_viewer_only


def key_check(actor: Actor, key, action: str) -> None:
    """action: "read", "write" (update, delete, regenerate) or "block" (block, unblock)."""
    powers = _key_powers(actor, key)
    if powers is None:
        raise Forbidden("This key is outside what you may manage.", param="key")
    if action == "read" or powers == "admin":
        return
    if powers == "read":
        raise Forbidden("The key belongs to an organization admin: only the proxy admin changes it.",
                        param="key")
    if powers == "self":
        raise Forbidden("A key that belongs to no user may only read itself (GET /key/info).", param="key")
    if action == "block":
        raise Forbidden(
            "Only an admin of the key's team or organization may block or unblock it.", param="key"
        )
    if not _may_write_own_keys(actor, key.team_id):
        raise Forbidden("Viewers have read-only access.", param="key")


def key_update_check(actor: Actor, key, fields) -> None:
    """May the caller change these request fields of the key? (Placement is checked apart.)"""
    key_check(actor, key, "write")
    if _key_powers(actor, key) == "owner":
        for name in fields:
            if name not in KEY_OWNER_FIELDS:
                raise Forbidden(
                    f"Only an admin of the key's team or organization may change {name}.", param=name
                )


def key_default_placement(actor: Actor) -> tuple[UUID | None, UUID | None]:
    """(team id, organization id) of a new key whose request names neither: the calling key's
    own team or organization; else the only organization the caller administers, or the only
    team (else organization) it may make keys in; outside both only for the proxy admin and
    for users without memberships. LiteLLM's `/key/generate {}` works unchanged this way."""
    if actor.is_proxy_admin:
        return None, None
    if actor.confined_team_id is not None:
        return actor.confined_team_id, actor.confined_organization_id
    if actor.confined_organization_id is not None:
        return None, actor.confined_organization_id
    if not actor.has_memberships:
        return None, None
    writer_teams = [t for t, role in actor.team_roles.items() if role in _WRITER_ROLES]
    writer_orgs = [o for o, role in actor.org_roles.items() if role in _WRITER_ROLES]
    for candidates, as_team in ((list(actor.admin_org_ids), False), (writer_teams, True), (writer_orgs, False)):
        if len(candidates) == 1:
            return (candidates[0], None) if as_team else (None, candidates[0])
        if candidates:
            break
    raise exceptions.ValidationError(
        {"team_id": ["Required: name the team (or organization_id) the key belongs to."]}
    )


def key_default_owner(actor: Actor, *, team: Team | None, organization: Organization | None,
                      placement_named: bool = True):
    """The user a new key belongs to when the request names none: the caller's own, except the
    proxy admin's keys and the team or organization keys an admin names, which belong to no user."""
    if actor.is_proxy_admin:
        return None
    if not placement_named:
        return actor.user
    if team is not None and actor.is_team_admin(team):
        return None
    if team is None and organization is not None and actor.is_org_admin(organization.pk):
        return None
    return actor.user


def _is_staff(user) -> bool:
    return bool(user.is_staff or user.is_superuser)


def key_placement_check(actor: Actor, *, user, team: Team | None, organization: Organization | None) -> None:
    """May the caller have a key belong to this user, team and organization (making it, moving
    it there, or handing out a new secret for it)?"""
    if actor.is_proxy_admin:
        return
    require_user(actor)
    organization_id = team.organization_id if team is not None else getattr(organization, "pk", None)
    if not actor.reaches(team_id=getattr(team, "pk", None), organization_id=organization_id):
        confined_to_team = actor.confined_team_id is not None
        raise Forbidden(
            f"This key acts only inside its own {'team' if confined_to_team else 'organization'}, "
            "and the keys it makes stay there.",
            param="organization_id" if team is None and organization is not None else "team_id",
        )
    if user is not None and not _is_self(actor, user) and _is_staff(user):
        raise Forbidden("Only the proxy admin may make keys for the admin site's staff users.", param="user_id")
    if team is not None:
        if actor.is_org_admin(team.organization_id):
            if (
                user is not None
                and not _is_self(actor, user)
                and not selectors.user_is_in_organizations(
                    user_id=user.pk, organization_ids=[team.organization_id]
                )
            ):
                raise Forbidden("The user is not in the team's organization.", param="user_id")
            return
        if actor.team_roles.get(team.pk) == ADMIN:
            if (
                user is not None
                and not _is_self(actor, user)
                and not selectors.user_is_team_member(user_id=user.pk, team_id=team.pk)
            ):
                raise Forbidden("The user is not a member of the team.", param="user_id")
            return
        if actor.team_roles.get(team.pk) not in _WRITER_ROLES:
            raise Forbidden("You may not create keys in this team.", param="team_id")
        if not _is_self(actor, user):
            raise Forbidden("You may only create keys for yourself.", param="user_id")
        return
    if organization is not None:
        if actor.is_org_admin(organization.pk):
            if (
                user is not None
                and not _is_self(actor, user)
                and not selectors.user_is_in_organizations(
                    user_id=user.pk, organization_ids=[organization.pk]
                )
            ):
                raise Forbidden("The user is not in this organization.", param="user_id")
            return
        if actor.org_roles.get(organization.pk) not in _WRITER_ROLES:
            raise Forbidden("You may not create keys in this organization.", param="organization_id")
        if not _is_self(actor, user):
            raise Forbidden("You may only create keys for yourself.", param="user_id")
        return
    # Outside every team and organization a key is bound by no organization's limits.
    if _is_self(actor, user) and not actor.has_memberships:
        return
    raise Forbidden(
        "A key outside every team and organization escapes their limits: only the proxy admin makes "
        "one (for a user without memberships, that user too). Name team_id or organization_id.",
        param="team_id" if user is None or _is_self(actor, user) else "user_id",
    )


def key_regenerate_check(actor: Actor, key) -> None:
    """A new secret hands the key to the caller: its owner may rotate it; anyone else only if it
    could make this very key (owner, team and organization) now."""
    key_check(actor, key, "write")
    if actor.is_proxy_admin or _key_powers(actor, key) == "owner":
        return
    key_placement_check(actor, user=key.user, team=key.team, organization=key.organization)


def key_budget_check(actor: Actor, organization_id) -> None:
    """May the caller hold a key to a budget (LiteLLM's budget_id) of this organization (None: the
    proxy admin's budgets)? Budgets are their managers' (customer_namespace_check): only they link
    one, so a key never reads, nor is held to, another organization's tier."""
    if actor.is_proxy_admin:
        return
    if organization_id is None or not actor.is_org_admin(organization_id):
        raise Forbidden(
            "Only the proxy admin and the admins of the key's organization link it to a budget.",
            param="budget_id",
        )


# --- memberships ----------------------------------------------------------------------------


def membership_grant_check(actor: Actor, *, user, organization_id, param: str) -> None:
    """May the caller give this existing user a membership (any role) in `organization_id` or one
    of its teams? Never staff users (the proxy admin's), nor users of another organization
    unless the caller administers them there too. (The right to manage that team's or
    organization's members is checked apart.)"""
    if actor.is_proxy_admin or _is_self(actor, user):
        return
    if _is_staff(user):
        raise Forbidden("Only the proxy admin may give memberships to the admin site's staff users.",
                        param=param)
    elsewhere = selectors.user_organization_ids(user_id=user.pk) - {organization_id}
    if elsewhere - actor.admin_org_ids:
        raise Forbidden(
            "The user belongs to another organization: only an admin of that organization may add it here.",
            param=param,
        )


# --- teams --------------------------------------------------------------------------------


def logging_callback_check(actor: Actor, entry: dict, *, param: str = "") -> None:
    """May the caller give a team or key this logging callback? Anyone who may change the team or
    key may send its own records where they like, but only the proxy admin may have them read the
    gateway's environment or reach the gateway's own network (apps.spend.callback_settings)."""
    reach = callback_entry_reach(entry)
    if reach is not None and not actor.is_proxy_admin:
        field, why = reach
        raise Forbidden(f"Only the proxy admin may set a logging callback that {why}.",
                        param=f"{param}.{field}" if param else field)


def team_scope(actor: Actor) -> Q:
    if actor.is_proxy_admin:
        return Q()
    if actor.user is None:
        return Q(pk__in=[])
    return Q(pk__in=list(actor.team_roles)) | Q(organization_id__in=actor.admin_org_ids)


def team_check(actor: Actor, team: Team, action: str) -> None:
    """action: "read", "update", "manage_members" or "delete"."""
    require_user(actor)
    if actor.is_org_admin(team.organization_id):
        return
    role = actor.team_roles.get(team.pk)
    if role is None:
        raise Forbidden("This team is outside what you may manage.", param="team_id")
    if action == "read":
        return
    if role == ADMIN and action in ("update", "manage_members"):
        return
    raise Forbidden(
        "Only the team's admins may do this."
        if action != "delete"
        else "Only an admin of the team's organization may delete it.",
        param="team_id",
    )


def team_update_check(actor: Actor, team: Team, fields, *, organization: Organization | None) -> None:
    team_check(actor, team, "update")
    if not actor.is_org_admin(team.organization_id):
        for name in fields:
            if name not in TEAM_ADMIN_FIELDS:
                raise Forbidden(f"Only an admin of the team's organization may change {name}.", param=name)
    moving = organization is not None and organization.pk != team.organization_id
    if moving and not actor.is_org_admin(organization.pk):
        raise Forbidden("You may not move teams into this organization.", param="organization_id")


def team_block_check(actor: Actor, team: Team) -> None:
    """Blocking a team is one of its limits (LIMIT_FIELDS' `blocked`): an admin of its organization
    (or the proxy admin) sets it, not the team's own admins."""
    team_check(actor, team, "update")
    if not actor.is_org_admin(team.organization_id):
        raise Forbidden("Only an admin of the team's organization may block or unblock it.", param="team_id")


_ROLE_RANK = {VIEWER: 0, MEMBER: 1, ADMIN: 2}


def team_member_update_check(actor: Actor, team: Team, *, user, role: str | None) -> None:
    """May the caller change this member of the team (its role)? Those who manage the team's members,
    for a user they could add to it (membership_grant_check), and never to a role above their own
    in the team."""
    team_check(actor, team, "manage_members")
    membership_grant_check(actor, user=user, organization_id=team.organization_id, param="user_id")
    own_role = ADMIN if actor.is_team_admin(team) else actor.team_roles.get(team.pk)
    if role is not None and _ROLE_RANK[role] > _ROLE_RANK.get(own_role, -1):
        raise Forbidden("Nobody gives a member a role above its own in the team.", param="role")


def models_outside(allowed, requested) -> list[str]:
    """The names of `requested` that `allowed` (a level's models: names, access groups, wildcards;
    empty: all) does not cover."""
    allowed = frozenset(allowed or ())
    if not allowed:
        return []
    level = replace(MASTER_KEY_CONTEXT, is_master=False, allowed_models=(allowed,))
    outside = []
    for model in requested or ():
        groups = () if model in allowed else tuple(
            group for deployment in deployment_list_named(model_name=model) for group in deployment.access_groups or ()
        )
        if not level.may_use_model(model, access_groups=groups):
            outside.append(model)
    return outside


def team_models_check(actor: Actor, organization: Organization, models, *, param: str = "models") -> None:
    """A team's models lie within its organization's, when the organization restricts them: only
    the proxy admin names others (they would be unusable anyway: every level must allow a model)."""
    if actor.is_proxy_admin:
        return
    outside = models_outside(organization.models, models)
    if outside:
        raise Forbidden(f"The team's organization does not allow {', '.join(outside)}.", param=param)


def team_member_limits_check(actor: Actor, team: Team, limits: dict, *, param_prefix: str = "") -> None:
    """A member's own limits in a team (TeamMembership's max_budget, rpm_limit, tpm_limit, models)
    stay within what the team holds: its models (else its organization's), and no more budget or
    rate than the team has per member and in all. Who may set them (manage_members) is checked
    apart; the proxy admin is bound by nothing."""
    if actor.is_proxy_admin:
        return
    names = {"max_budget": "max_budget_in_team", "rpm_limit": "rpm_limit", "tpm_limit": "tpm_limit"}
    bounds = {"max_budget": (team.team_member_budget, team.max_budget),
              "rpm_limit": (team.team_member_rpm_limit, team.rpm_limit),
              "tpm_limit": (team.team_member_tpm_limit, team.tpm_limit)}
    for field_name, team_values in bounds.items():
        value = limits.get(field_name)
        if value is None:
            continue  # none of its own: the team's per-member and whole-team limits hold
        ceiling = min((v for v in team_values if v is not None), default=None)
        if ceiling is not None and value > ceiling:
            raise Forbidden(f"A member's {names[field_name]} may not exceed the team's ({ceiling}).",
                            param=param_prefix + names[field_name])
    outside = models_outside(team.models or team.organization.models, limits.get("models"))
    if outside:
        raise Forbidden(f"The team does not allow {', '.join(outside)}.", param=param_prefix + "models")


def team_create_check(actor: Actor, organization: Organization) -> None:
    require_user(actor)
    if not actor.is_org_admin(organization.pk):
        raise Forbidden("Only an admin of the organization may create teams in it.", param="organization_id")


# --- organizations ------------------------------------------------------------------------


def organization_scope(actor: Actor) -> Q:
    if actor.is_proxy_admin:
        return Q()
    return Q(pk__in=list(actor.org_roles))


def organization_check(actor: Actor, organization: Organization, action: str) -> None:
    """action: "read", "update" or "manage_members" (creating, deleting and limits are the proxy
    admin's)."""
    require_user(actor)
    if actor.is_proxy_admin:
        return
    role = actor.org_roles.get(organization.pk)
    if role is None:
        raise Forbidden("This organization is outside what you may manage.", param="organization_id")
    if action == "read" or role == ADMIN:
        return
    raise Forbidden("Only the organization's admins may do this.", param="organization_id")


def organization_update_check(actor: Actor, organization: Organization, fields) -> None:
    organization_check(actor, organization, "update")
    if not actor.is_proxy_admin:
        for name in fields:
            if name not in ORGANIZATION_ADMIN_FIELDS:
                raise Forbidden(f"Only the proxy admin may change {name}.", param=name)


def organization_member_update_check(
    actor: Actor, organization: Organization, *, user, role: str | None
) -> None:
    """May the caller change this member of the organization (its role)? Those who manage the
    organization's members, for a user they could add to it (membership_grant_check), and never
    to a role above their own there."""
    organization_check(actor, organization, "manage_members")
    membership_grant_check(actor, user=user, organization_id=organization.pk, param="user_id")
    own_role = ADMIN if actor.is_org_admin(organization.pk) else actor.org_roles.get(organization.pk)
    if role is not None and _ROLE_RANK[role] > _ROLE_RANK.get(own_role, -1):
        raise Forbidden("Nobody gives a member a role above its own in the organization.", param="role")


# --- users --------------------------------------------------------------------------------


def user_scope(actor: Actor) -> Q:
    if actor.is_proxy_admin:
        return Q()
    if actor.user is None:
        return Q(pk__in=[])
    scope = Q(pk=actor.user.pk)
    if actor.admin_org_ids:
        scope |= Q(pk__in=selectors.user_ids_in_organizations(organization_ids=actor.admin_org_ids))
    if actor.admin_team_ids:
        scope |= Q(pk__in=selectors.user_ids_in_teams(team_ids=actor.admin_team_ids))
    return scope


def user_check(actor: Actor, user, action: str) -> None:
    """action: "read", or "write" (update, delete): the proxy admin's, and an org admin's for
    the users who belong only to its organizations and are not staff."""
    require_user(actor)
    if actor.is_proxy_admin:
        return
    if action == "read":
        if _is_self(actor, user):
            return
        if actor.admin_org_ids and selectors.user_is_in_organizations(
            user_id=user.pk, organization_ids=actor.admin_org_ids
        ):
            return
        if (
            actor.admin_team_ids
            and selectors.user_ids_in_teams(team_ids=actor.admin_team_ids).filter(pk=user.pk).exists()
        ):
            return
        raise Forbidden("This user is outside what you may see.", param="user_id")
    if _is_self(actor, user):
        raise Forbidden("Only the proxy admin may change or delete your own user (its limits included).",
                        param="user_id")
    if (
        actor.admin_org_ids
        and not _is_staff(user)  # the admin site's users are the proxy admin's
        and selectors.user_is_managed_by_organizations(user_id=user.pk, organization_ids=actor.admin_org_ids)
        # Fellow org admins are the proxy admin's to change: else an admin could make a second
        # admin and through it raise its own limits.
        and not selectors.user_is_an_org_admin(user_id=user.pk)
    ):
        return
    raise Forbidden(
        "Only the proxy admin, or an admin of every organization the user belongs to, may change "
        "or delete a user (not another organization admin).",
        param="user_id",
    )


# The user_role values an org admin may set on the users it manages (user_check "write"): none
# above a plain member; proxy_admin and org_admin are the proxy admin's to give.
ORG_ADMIN_USER_ROLES = frozenset({"internal_user", "internal_user_viewer"})


def user_role_change_check(actor: Actor, role: str | None) -> None:
    """May the caller set this user_role (on a user it may already change, user_check "write")?"""
    if role is None or actor.is_proxy_admin:
        return
    if role not in ORG_ADMIN_USER_ROLES or not actor.admin_org_ids:
        raise Forbidden(f"Only the proxy admin may make a user {role}.", param="user_role")


def user_bulk_update_check(actor: Actor, *, all_users: bool) -> None:
    """Who may call /user/bulk_update at all (each user is then checked as by /user/update): the
    users' managers, the proxy admin and org admins; every user at once only the proxy admin."""
    require_user(actor)
    if all_users:
        require_proxy_admin(actor, "change every user at once", param="all_users")
    elif not actor.is_proxy_admin and not actor.admin_org_ids:
        raise Forbidden("Only the proxy admin and organization admins may change users.")


def user_create_check(actor: Actor, *, organizations, teams, user_role: str | None) -> None:
    require_user(actor)
    if actor.is_proxy_admin:
        return
    if user_role == "proxy_admin":
        raise Forbidden("Only the proxy admin may create proxy admins.", param="user_role")
    if not actor.admin_org_ids:
        raise Forbidden("Only the proxy admin and organization admins may create users.")
    for organization in organizations:
        if organization.pk not in actor.admin_org_ids:
            raise Forbidden("You may not add users to this organization.", param="organizations")
    for team in teams:
        if team.organization_id not in actor.admin_org_ids:
            raise Forbidden("You may not add users to this team.", param="teams")


# --- models -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelAccess:
    """Which deployments a caller may list: shared ones and those of `organization_ids` (a team's
    own deployment only with its team in `team_ids`; None: any team's), whose model passes every
    level of one of `paths` (the data plane's rules: names, access groups, wildcards). `paths`
    None: any model."""

    organization_ids: frozenset
    paths: list | None
    team_ids: frozenset | None = None

    def allows(self, deployment) -> bool:
        if deployment.organization_id is not None and deployment.organization_id not in self.organization_ids:
            return False
        if self.team_ids is not None and deployment.team_id is not None and deployment.team_id not in self.team_ids:
            return False
        if self.paths is None:
            return True
        names, groups = (deployment.litellm_model,), tuple(deployment.access_groups or ())
        return any(
            replace(MASTER_KEY_CONTEXT, is_master=False, allowed_models=path).may_use_model(
                deployment.model_name, names=names, access_groups=groups
            )
            for path in self.paths
        )


def model_access_of_key(actor: Actor) -> ModelAccess | None:
    """What the caller's key may use on /v1 (LiteLLM's /model_group/info and /v2/model/info answer
    that): None for the proxy admin; for a key, the models every level of its context allows (its
    own, its user's, team's and organization's), among deployments shared or of its organization.
    A caller without a key (an admin session) sees what model_access gives it."""
    if actor.is_proxy_admin:
        return None
    if actor.key is None:
        return model_access(actor)
    context = key_context_get(actor.key.token_hash)
    if context is None:
        return ModelAccess(organization_ids=frozenset(), paths=[])
    organization_ids = frozenset({UUID(context.organization_id)}) if context.organization_id else frozenset()
    team_ids = frozenset({UUID(context.team_id)}) if context.team_id else frozenset()
    return ModelAccess(organization_ids=organization_ids, paths=[context.allowed_models], team_ids=team_ids)


def model_access(actor: Actor) -> ModelAccess | None:
    """None for the proxy admin (every deployment). Org admins see every model shared or of
    their organizations; others the models their teams (or, without teams, their own limits)
    allow."""
    require_user(actor)
    if actor.is_proxy_admin:
        return None
    organization_ids = frozenset(actor.org_roles) | frozenset(actor.team_orgs.values())
    if actor.confined_organization_id is not None:
        organization_ids |= {actor.confined_organization_id}
    if actor.admin_org_ids:
        return ModelAccess(organization_ids=organization_ids, paths=None)
    # A team key is held to its team's models even when its owner has left the team.
    team_ids = [actor.confined_team_id] if actor.confined_team_id is not None else list(actor.team_roles)
    paths = selectors.model_restrictions_of_user(user=actor.user, team_ids=team_ids)
    return ModelAccess(organization_ids=organization_ids, paths=paths, team_ids=frozenset(team_ids))


def model_price_access(actor: Actor) -> ModelAccess | None:
    """Whose deployments' prices a caller may calculate with (POST /spend/calculate): the models
    /model/info lists it; a key without a user, the models it may call itself (its own, its
    team's and its organization's restrictions). The price catalog is public to every caller."""
    if actor.is_proxy_admin or actor.user is not None:
        return model_access(actor)
    key = actor.key
    organization_id = _key_organization_id(key)
    organization = key.organization if key.organization_id else (key.team.organization if key.team_id else None)
    levels = (key.models, key.team.models if key.team_id else None, organization.models if organization else None)
    return ModelAccess(
        organization_ids=frozenset({organization_id} if organization_id else ()),
        paths=[tuple(frozenset(level) for level in levels if level)],
        team_ids=frozenset({key.team_id} if key.team_id else ()),
    )


# --- spend (GET /spend/logs, /spend/report) ------------------------------------------------


def spend_scope(actor: Actor) -> Q:
    """The spend a caller sees, as a Q over the fields SpendLog and DailySpend share
    (organization_id, team_id, user_id, key_id): its own spend, its admin teams' and its admin
    organizations' (team keys carry their organization), and, like key_scope, the personal keys
    of the users only its organizations hold. A key without a user sees its own key's spend."""
    if actor.is_proxy_admin:
        return Q()
    if actor.user is None:
        return Q(key_id=actor.key.pk) if actor.key is not None else Q(pk__in=[])
    scope = Q(user_id=actor.user.pk)
    if actor.admin_team_ids:
        scope |= Q(team_id__in=actor.admin_team_ids)
    if actor.admin_org_ids:
        scope |= Q(organization_id__in=actor.admin_org_ids)
    scope = _confined(actor, scope)
    if actor.admin_org_ids:
        scope |= Q(
            organization_id__isnull=True,
            team_id__isnull=True,
            user_id__in=selectors.user_ids_managed_by_organizations(organization_ids=actor.admin_org_ids),
        )
    return scope


def spend_filter_check(actor: Actor, *, key=None, team=None, organization=None, user=None) -> None:
    """May the caller filter spend by these (existing) entities? Only by what it could read
    elsewhere in the management API, or what its own spend lies in (a member's team and that
    team's organization); the rows shown stay within spend_scope either way."""
    if actor.is_proxy_admin:
        return
    plain_key = actor.key if actor.user is None else None
    if key is not None and _key_powers(actor, key) is None:
        raise Forbidden("This key is outside what you may see.", param="api_key")
    if team is not None:
        if plain_key is not None:
            allowed = plain_key.team_id == team.pk
        else:
            allowed = team.pk in actor.team_roles or team.organization_id in actor.admin_org_ids
        if not allowed:
            raise Forbidden("This team is outside what you may see.", param="team_id")
    if organization is not None:
        if plain_key is not None:
            allowed = _key_organization_id(plain_key) == organization.pk
        else:
            allowed = organization.pk in actor.org_roles or organization.pk in actor.team_orgs.values()
        if not allowed:
            raise Forbidden("This organization is outside what you may see.", param="organization_id")
    if user is not None:
        if plain_key is not None:
            raise Forbidden("A key that belongs to no user sees only its own spend.", param="user_id")
        user_check(actor, user, "read")


# --- end users and budgets (/customer/*, /budget/*) ----------------------------------------


def customer_scope(actor: Actor) -> Q:
    """The end users and budgets a caller sees, as a Q over their `organization_id`: every one for
    the proxy admin, those of the organizations it administers for an org admin."""
    if actor.is_proxy_admin:
        return Q()
    return Q(organization_id__in=actor.admin_org_ids)


def customer_manager_check(actor: Actor) -> None:
    """End users and budgets belong to an organization (the one of the keys that name them), shared
    by its teams: only the proxy admin and org admins manage them."""
    require_user(actor)
    if not actor.is_proxy_admin and not actor.admin_org_ids:
        raise Forbidden("Only the proxy admin and organization admins manage end users and budgets.")


def customer_default_organization_id(actor: Actor):
    """The namespace a request means when it names no organization_id: the proxy admin's own (keys
    outside every organization), the calling key's organization, else the only organization the
    caller administers. LiteLLM's bodies, which name none, work unchanged this way."""
    customer_manager_check(actor)
    if actor.is_proxy_admin:
        return None
    if actor.confined_organization_id is not None:
        return actor.confined_organization_id
    if len(actor.admin_org_ids) == 1:
        return next(iter(actor.admin_org_ids))
    raise exceptions.ValidationError(
        {"organization_id": ["Required: name the organization whose end users and budgets these are."]}
    )


def customer_namespace_check(actor: Actor, organization: Organization | None) -> None:
    """May the caller read and change the end users and budgets of this organization (None: those
    of the keys outside every organization, the proxy admin's)?"""
    customer_manager_check(actor)
    if actor.is_proxy_admin:
        return
    if organization is None:
        raise Forbidden(
            "The end users and budgets of keys outside every organization are the proxy admin's.",
            param="organization_id",
        )
    if not actor.is_org_admin(organization.pk):
        raise Forbidden("This organization's end users and budgets are outside what you may manage.",
                        param="organization_id")
