"""The management API's /organization, /team and /user routes (LiteLLM's shapes).

Views validate, check the caller's rights (apps.management.permissions), call a service and shape
the answer; nothing else happens here.
"""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from rest_framework import exceptions
from rest_framework.response import Response

from apps.customers.selectors import budget_get
from apps.keys.selectors import virtual_key_get_by_ref, virtual_key_list
from apps.keys.serializers import key_data
from apps.management.framework import (
    FieldRefused,
    Forbidden,
    ManagementAPIView,
    NotFoundError,
    first_validation_error,
    model_errors_as_fields,
    validated_body,
)
from apps.management.inputs import lago_values, limits_values, logging_callback_entry, prompt_storage_values
from apps.management.lookups import organization_or_404, team_or_404, user_or_404
from apps.management.pagination import page_of
from apps.management.permissions import (
    key_scope,
    membership_grant_check,
    organization_check,
    organization_member_update_check,
    organization_scope,
    organization_update_check,
    request_actor,
    require_proxy_admin,
    require_user,
    spend_filter_check,
    spend_scope,
    team_block_check,
    team_check,
    team_create_check,
    models_outside,
    team_member_limits_check,
    team_member_update_check,
    team_models_check,
    team_scope,
    team_update_check,
    user_bulk_update_check,
    user_check,
    user_create_check,
    user_role_change_check,
    user_scope,
)
from apps.spend.selectors import daily_activity, daily_activity_totals, daily_spend_in_range
from apps.teams import selectors, services
from apps.teams import serializers as s
from apps.teams.models import Organization, UserLimits

TEAM_FIELDS = {"alias": "team_alias", "organization": "organization_id", "id": "team_id", "external_id": "team_id"}
ORGANIZATION_FIELDS = {"name": "organization_alias", "id": "organization_id"}
USER_FIELDS = {"username": "user_id", "email": "user_email", "first_name": "user_alias"}
MEMBER_FIELDS = {"username": "member.user_id", "email": "member.user_email"}


# --- lookups shared by the management API's views -----------------------------------------


def _members_grant_check(actor, members: list[dict], *, organization_id, param: str) -> None:
    """Every existing user among `members` may be given a membership by the caller (new users are
    made by the call itself)."""
    for index, member in enumerate(members):
        user = selectors.user_get(user_id=member.get("user_id"), user_email=member.get("user_email"))
        if user is not None:
            membership_grant_check(actor, user=user, organization_id=organization_id, param=f"{param}[{index}]")


def _one_admin_organization(actor, *, param: str) -> Organization:
    """The organization a request means when it names none: the only one the caller administers."""
    if len(actor.admin_org_ids) != 1:
        raise exceptions.ValidationError({param: ["Required: name the organization."]})
    return selectors.organization_get(organization_id=next(iter(actor.admin_org_ids)))


# --- organizations ------------------------------------------------------------------------


def _actor_name(actor) -> str:
    """Who made or changed something (LiteLLM's created_by / updated_by)."""
    return actor.user.get_username() if actor.user is not None else "proxy_admin"


def _budget_change(data: dict, *, organization: Organization | None) -> dict:
    """{"budget": the Budget} for a request's budget_id ({"budget": None} for null: unlink; {} when
    absent). Only the proxy admin's budgets (outside every organization) are linked: an org admin
    manages its organization's own budgets, and must not raise its organization's limits through
    one. A linked organization's limits are its budget's: a request changes the budget or the
    limits, not both."""
    change = {}
    if data.get("budget_id") is not None:
        budget = budget_get(organization_id=None, budget_id=data["budget_id"])
        if budget is None:
            raise NotFoundError(f"No budget {data['budget_id']!r}.", param="budget_id")
        change["budget"] = budget
    elif "budget_id" in data:
        change["budget"] = None
    linked = change.get("budget") is not None or (
        "budget" not in change and organization is not None and organization.budget_id is not None
    )
    given = [name for name in services.BUDGET_LIMIT_FIELDS if name in data]
    if linked and given:
        raise exceptions.ValidationError({given[0]: [
            "The organization's limits are its budget's (budget_id): change the budget "
            "(POST /budget/update), or unlink it (budget_id null) to give the organization limits of its own."
        ]})
    return change


class OrganizationNewApi(ManagementAPIView):
    """A new organization (organization_alias) with its limits, or linked to a budget (budget_id)."""

    input_serializer = s.OrganizationNewInput

    def post(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        require_proxy_admin(actor, "create organizations")
        fields = {**limits_values(data), **lago_values(data, actor),
                  **_budget_change(data, organization=None)}
        if data.get("organization_id"):
            fields["id"] = data["organization_id"]
        with model_errors_as_fields(ORGANIZATION_FIELDS):
            organization = services.organization_create_with_budget(
                name=data["organization_alias"], created_by=_actor_name(actor), **fields
            )
        return Response(s.organization_data(organization, memberships=[], teams=[]))


class OrganizationUpdateApi(ManagementAPIView):
    """Change an organization; only the fields given change. (LiteLLM: PATCH; POST too.)"""

    input_serializer = s.OrganizationUpdateInput

    def post(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        organization = organization_or_404(data.pop("organization_id"))
        organization_update_check(actor, organization, data)
        changes = {**limits_values(data), **lago_values(data, actor),
                   **_budget_change(data, organization=organization), "updated_by": _actor_name(actor)}
        if "organization_alias" in data:
            changes["name"] = data["organization_alias"]
        with model_errors_as_fields(ORGANIZATION_FIELDS):
            organization = services.organization_update(organization=organization, **changes)
        return Response(_organization_full(organization))

    patch = post


class OrganizationDeleteApi(ManagementAPIView):
    """Delete organizations with their teams and keys. (LiteLLM: DELETE; POST too.)"""

    input_serializer = s.OrganizationDeleteInput

    def post(self, request):
        data = self.validated(request)
        require_proxy_admin(request_actor(request), "delete organizations")
        organizations = [organization_or_404(i, param="organization_ids") for i in data["organization_ids"]]
        deleted = [_organization_full(o) for o in organizations]
        for organization in organizations:
            services.organization_delete(organization=organization)
        if request.method == "DELETE":
            return Response(deleted)  # LiteLLM's DELETE answers the list of deleted organizations
        return Response({"deleted_organizations": deleted})

    delete = post


class OrganizationInfoApi(ManagementAPIView):
    """An organization with its members and teams (GET); POST: LiteLLM's deprecated form, a list
    of organizations."""

    query_serializer = s.OrganizationQuery
    input_serializer = s.OrganizationInfoInput

    def get(self, request):
        data = self.validated(request)
        organization = organization_or_404(data["organization_id"])
        organization_check(request_actor(request), organization, "read")
        return Response(_organization_full(organization))

    def post(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        organizations = [organization_or_404(i, param="organizations") for i in data["organizations"]]
        for organization in organizations:
            organization_check(actor, organization, "read")
        return Response([_organization_full(o) for o in organizations])


class OrganizationListApi(ManagementAPIView):
    """The organizations the caller sees."""

    def get(self, request):
        actor = request_actor(request)
        require_user(actor)
        organizations = selectors.organization_list(scope=organization_scope(actor))
        return Response([_organization_full(o) for o in organizations])


class OrganizationMemberAddApi(ManagementAPIView):
    """Add members (org_admin, internal_user, internal_user_viewer); unknown users are created."""

    input_serializer = s.OrganizationMemberAddInput

    def post(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        organization = organization_or_404(data["organization_id"])
        organization_check(actor, organization, "manage_members")
        _members_grant_check(actor, data["member"], organization_id=organization.pk, param="member")
        members = [{**m, "role": s.ORGANIZATION_ROLES[m["role"]]} for m in data["member"]]
        with model_errors_as_fields(MEMBER_FIELDS):
            added = services.organization_members_add(organization=organization, members=members)
        return Response(
            {
                **_organization_full(organization),
                "updated_users": [_user_full(user) for user, _ in added],
                "updated_organization_memberships": [s.organization_membership_data(m) for _, m in added],
            }
        )


class OrganizationMemberUpdateApi(ManagementAPIView):
    """Change a member's role in an organization (org_admin, internal_user, internal_user_viewer).
    (LiteLLM: PATCH; POST too.)"""

    input_serializer = s.OrganizationMemberUpdateInput

    def post(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        organization = organization_or_404(data["organization_id"])
        user = user_or_404(user_id=data.get("user_id"), user_email=data.get("user_email"))
        role = s.ORGANIZATION_ROLES[data["role"]] if data.get("role") else None
        organization_member_update_check(actor, organization, user=user, role=role)
        membership = selectors.organization_membership_get(organization=organization, user=user)
        if membership is None:
            raise NotFoundError("The user is not a member of this organization.", param="user_id")
        if role is not None:
            membership = services.organization_member_role_set(membership=membership, role=role)
        return Response(s.organization_membership_data(membership))

    patch = post


class OrganizationMemberDeleteApi(ManagementAPIView):
    """Remove a member from an organization. (LiteLLM: DELETE; POST too.)"""

    input_serializer = s.OrganizationMemberDeleteInput

    def post(self, request):
        data = self.validated(request)
        organization = organization_or_404(data["organization_id"])
        organization_check(request_actor(request), organization, "manage_members")
        user = user_or_404(user_id=data.get("user_id"), user_email=data.get("user_email"))
        if not services.organization_member_remove(organization=organization, user=user):
            raise NotFoundError("The user is not a member of this organization.", param="user_id")
        return Response(_organization_full(organization))

    delete = post


def _organization_full(organization: Organization) -> dict:
    return s.organization_data(
        organization,
        memberships=selectors.organization_memberships(organization=organization),
        teams=list(organization.teams.order_by("alias")),
    )


# --- teams --------------------------------------------------------------------------------


class TeamNewApi(ManagementAPIView):
    """A new team in an organization (without organization_id: the only one an org admin
    administers, for the proxy admin the default organization), with its limits and
    members_with_roles."""

    input_serializer = s.TeamNewInput

    def post(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        require_user(actor)
        if data.get("organization_id"):
            organization = organization_or_404(data["organization_id"])
        elif actor.is_proxy_admin:
            # LiteLLM's teams need no organization; ours do: the default one.
            organization = services.organization_get_or_create_default()
        elif actor.admin_org_ids:
            organization = _one_admin_organization(actor, param="organization_id")
        else:
            raise Forbidden("Only the proxy admin and organization admins may create teams.")
        team_create_check(actor, organization)
        _members_grant_check(actor, data.get("members_with_roles") or [], organization_id=organization.pk,
                             param="members_with_roles")
        fields = {**limits_values(data), **lago_values(data, actor), **prompt_storage_values(data),
                  **s.team_member_limit_values(data), **s.team_routing_values(data), **_team_id_values(data)}
        _team_models_check(actor, organization, fields)
        members = [{**m, "role": s.TEAM_ROLES[m["role"]]} for m in data.get("members_with_roles") or []]
        for index, member in enumerate(members):
            _member_models_check(actor, fields.get("models") or organization.models, member.get("models"),
                                 param=f"members_with_roles[{index}].models")
        member_fields = {"username": "members_with_roles", "email": "members_with_roles"}
        with model_errors_as_fields({**TEAM_FIELDS, **member_fields}, other="team_alias"):
            team = services.team_create_with_members(
                organization=organization,
                alias=data.get("team_alias") or f"team-{uuid.uuid4().hex[:8]}",
                members=members,
                **fields,
            )
        return Response(s.team_data(team, memberships=selectors.team_memberships(team=team)))


def _team_id_values(data: dict) -> dict:
    """LiteLLM's chosen team_id: a UUID is the team's id, anything else its external id."""
    team_id = data.get("team_id")
    if not team_id:
        return {}
    try:
        return {"id": uuid.UUID(team_id)}
    except ValueError:
        return {"external_id": team_id}


def _team_models_check(actor, organization, fields: dict) -> None:
    """The team's models within its organization's; its default_models within its own models."""
    if "models" in fields:
        team_models_check(actor, organization, fields["models"])
    if fields.get("default_models"):
        outside = models_outside(fields.get("models", []), fields["default_models"])
        if outside:
            raise exceptions.ValidationError(
                {"default_models": [f"Not among the team's models: {', '.join(outside)}."]}
            )


def _member_models_check(actor, team_models, models, *, param: str) -> None:
    """A new team's member models lie within the team's models (its organization's when it has none)."""
    if actor.is_proxy_admin or not models:
        return
    outside = models_outside(team_models, models)
    if outside:
        raise Forbidden(f"The team does not allow {', '.join(outside)}.", param=param)


def _team_answer(team) -> dict:
    return s.team_data(team, memberships=selectors.team_memberships(team=team))


class TeamUpdateApi(ManagementAPIView):
    """Change a team; only the fields given change."""

    input_serializer = s.TeamUpdateInput

    def post(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        team = team_or_404(data.pop("team_id"))
        organization = organization_or_404(data["organization_id"]) if data.get("organization_id") else None
        team_update_check(actor, team, data, organization=organization)
        changes = {**limits_values(data), **lago_values(data, actor),
                   **prompt_storage_values(data), **s.team_member_limit_values(data), **s.team_routing_values(data)}
        if "team_alias" in data:
            changes["alias"] = data["team_alias"]
        if organization is not None:
            changes["organization"] = organization
        if "models" in changes or organization is not None:
            team_models_check(actor, organization or team.organization, changes.get("models", team.models))
        if "default_models" in changes:
            outside = models_outside(changes.get("models", team.models), changes["default_models"])
            if outside:
                raise exceptions.ValidationError(
                    {"default_models": [f"Not among the team's models: {', '.join(outside)}."]}
                )
        with model_errors_as_fields(TEAM_FIELDS, other="team_alias"):
            team = services.team_update(team=team, **changes)
        answer = _team_answer(team)
        return Response({**answer, "data": answer})  # LiteLLM answers {team_id, data}


class TeamModelAddApi(ManagementAPIView):
    """Add models to a team's list (its limits: an admin of its organization's)."""

    input_serializer = s.TeamModelsInput

    def post(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        team = team_or_404(data["team_id"])
        team_update_check(actor, team, {"models": data["models"]}, organization=None)
        team_models_check(actor, team.organization, data["models"])
        team = services.team_models_add(team=team, models=data["models"])
        return Response(_team_answer(team))


class TeamModelDeleteApi(ManagementAPIView):
    """Remove models from a team's list."""

    input_serializer = s.TeamModelsInput

    def post(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        team = team_or_404(data["team_id"])
        team_update_check(actor, team, {"models": data["models"]}, organization=None)
        if team.models and not [m for m in team.models if m not in data["models"]]:
            # An empty list means every model: removing the last ones would widen the team.
            raise exceptions.ValidationError(
                {"models": ["This would leave the team's models empty, which means every model."]}
            )
        team = services.team_models_remove(team=team, models=data["models"])
        return Response(_team_answer(team))


class TeamDeleteApi(ManagementAPIView):
    """Delete teams with their keys."""

    input_serializer = s.TeamDeleteInput

    def post(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        teams = [team_or_404(i, param="team_ids") for i in data["team_ids"]]
        for team in teams:
            team_check(actor, team, "delete")
        for team in teams:
            services.team_delete(team=team)
        return Response({"deleted_teams": [str(i) for i in data["team_ids"]]})


class TeamInfoApi(ManagementAPIView):
    """A team with its keys (those the caller sees) and memberships."""

    query_serializer = s.TeamQuery

    def get(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        team = team_or_404(data["team_id"])
        team_check(actor, team, "read")
        memberships = selectors.team_memberships(team=team)
        keys = virtual_key_list(scope=key_scope(actor), team_id=team.pk)
        return Response(
            {
                "team_id": str(team.pk),
                "team_info": s.team_data(team, memberships=memberships),
                "keys": [key_data(k) for k in keys],
                "team_memberships": [s.team_membership_data(m) for m in memberships],
            }
        )


class TeamListApi(ManagementAPIView):
    """The teams the caller sees."""

    query_serializer = s.TeamListQuery

    def get(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        require_user(actor)
        organization_id = data.get("organization_id")
        if organization_id is not None:
            organization_id = getattr(selectors.organization_get(organization_id=organization_id), "pk", None)
            if organization_id is None:
                return Response([])
        teams = selectors.team_list(scope=team_scope(actor), organization_id=organization_id)
        teams = teams.prefetch_related("memberships__user")
        return Response(
            [
                s.team_data(t, memberships=sorted(t.memberships.all(), key=lambda m: m.user.username))
                for t in teams
            ]
        )


class TeamMemberAddApi(ManagementAPIView):
    """Add members (admin, user, viewer) to a team; unknown users are created."""

    input_serializer = s.TeamMemberAddInput

    def post(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        team = team_or_404(data["team_id"])
        team_check(actor, team, "manage_members")
        _members_grant_check(actor, data["member"], organization_id=team.organization_id, param="member")
        team_member_limits_check(actor, team, {"max_budget": data.get("max_budget_in_team")})
        for index, member in enumerate(data["member"]):
            team_member_limits_check(actor, team, {"models": member.get("models")}, param_prefix=f"member[{index}].")
        members = [{**m, "role": s.TEAM_ROLES[m["role"]]} for m in data["member"]]
        with model_errors_as_fields(MEMBER_FIELDS):
            added = services.team_members_add(team=team, members=members, max_budget=data.get("max_budget_in_team"))
        return Response(
            {
                **s.team_data(team, memberships=selectors.team_memberships(team=team)),
                "updated_users": [_user_full(user) for user, _ in added],
                "updated_team_memberships": [s.team_membership_data(m) for _, m in added],
            }
        )


class TeamMemberUpdateApi(ManagementAPIView):
    """Change a member's role in a team (admin, user or viewer)."""

    input_serializer = s.TeamMemberUpdateInput

    def post(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        team = team_or_404(data["team_id"])
        user = user_or_404(user_id=data.get("user_id"), user_email=data.get("user_email"))
        role = s.TEAM_ROLES[data["role"]] if data.get("role") else None
        team_member_update_check(actor, team, user=user, role=role)
        limits = s.member_limit_values(data)
        team_member_limits_check(actor, team, limits)
        membership = selectors.team_membership_get(team=team, user=user)
        if membership is None:
            raise NotFoundError("The user is not a member of this team.", param="user_id")
        if role is not None:
            membership = services.team_member_role_set(team=team, user=user, role=role)
        if limits:
            membership = services.team_member_limits_set(membership=membership, **limits)
        return Response(s.team_member_update_data(membership, team=team))


class TeamBlockApi(ManagementAPIView):
    """Block a team: its keys are refused at once, everywhere."""

    input_serializer = s.TeamRefInput
    blocked = True

    def post(self, request):
        data = self.validated(request)
        team = team_or_404(data["team_id"])
        team_block_check(request_actor(request), team)
        team = services.team_update(team=team, blocked=self.blocked)
        return Response(s.team_data(team, memberships=selectors.team_memberships(team=team)))


class TeamUnblockApi(TeamBlockApi):
    """Unblock a team."""

    blocked = False


# What a team's members (role user) may do with their own keys here, whatever the team: LiteLLM's
# team_member_permissions, which its admins set per team, are not configurable (docs/litellm-compat.md).
TEAM_MEMBER_KEY_ROUTES = ("/key/generate", "/key/update", "/key/delete", "/key/info", "/key/list",
                          "/key/regenerate", "/key/bulk_update")


class TeamPermissionsListApi(ManagementAPIView):
    """The key routes a team's members may call on their own keys (the same for every team here)."""

    query_serializer = s.TeamQuery

    def get(self, request):
        data = self.validated(request)
        team = team_or_404(data["team_id"])
        team_check(request_actor(request), team, "read")
        return Response(
            {
                "team_id": str(team.pk),
                "team_member_permissions": list(TEAM_MEMBER_KEY_ROUTES),
                "all_available_permissions": list(TEAM_MEMBER_KEY_ROUTES),
            }
        )


class TeamCallbackApi(ManagementAPIView):
    """LiteLLM's per-team logging callbacks: GET lists them (secrets masked), POST adds one (or
    replaces the team's callback of that name), DELETE {"callback_name"} removes one. The team's
    admins set them; the records are those of the team's own requests."""

    input_serializer = s.TeamCallbackInput

    def get(self, request, team_id):
        team = team_or_404(team_id)
        team_check(request_actor(request), team, "read")
        return Response({"status": "success", "data": s.team_callbacks_data(team)})

    def post(self, request, team_id):
        actor = request_actor(request)
        team = team_or_404(team_id)
        team_check(actor, team, "update")
        entry = logging_callback_entry(actor, self.validated(request), stored=team.logging_callbacks or [])
        team = services.team_logging_callback_set(team=team, entry=entry)
        return Response({"status": "success", "data": s.team_callbacks_data(team)})

    def delete(self, request, team_id):
        actor = request_actor(request)
        team = team_or_404(team_id)
        team_check(actor, team, "update")
        name = validated_body(s.TeamCallbackDeleteInput, request.data)["callback_name"]
        if not any(entry["callback_name"] == name for entry in team.logging_callbacks or []):
            raise NotFoundError(f"The team has no {name} callback.", param="callback_name")
        team = services.team_logging_callback_remove(team=team, callback_name=name)
        return Response({"status": "success", "data": s.team_callbacks_data(team)})


class TeamDisableLoggingApi(ManagementAPIView):
    """LiteLLM's /team/{team_id}/disable_logging: the team's own logging callbacks are removed and its
    messages and answers are no longer kept (store_prompts off, one of its settings an admin of its
    organization sets); its spend rows stay, and the gateway's own callbacks get them without content."""

    def post(self, request, team_id):
        actor = request_actor(request)
        team = team_or_404(team_id)
        team_update_check(actor, team, {"store_prompts": False}, organization=None)
        team = services.team_update(team=team, store_prompts=False, logging_callbacks=[])
        return Response(
            {
                "status": "success",
                "message": f"Logging of prompts and responses disabled for team {team.pk}.",
                "data": s.team_callbacks_data(team),
            }
        )


class TeamMemberDeleteApi(ManagementAPIView):
    """Remove a member from a team."""

    input_serializer = s.TeamMemberDeleteInput

    def post(self, request):
        data = self.validated(request)
        team = team_or_404(data["team_id"])
        team_check(request_actor(request), team, "manage_members")
        user = user_or_404(user_id=data.get("user_id"), user_email=data.get("user_email"))
        if not services.team_member_remove(team=team, user=user):
            raise NotFoundError("The user is not a member of this team.", param="user_id")
        return Response(s.team_data(team, memberships=selectors.team_memberships(team=team)))


# --- users --------------------------------------------------------------------------------


def _user_full(user) -> dict:
    org_roles = [m.role for m in user.organization_memberships.all()]
    team_roles = [m.role for m in user.team_memberships.all()]
    try:
        limits = user.gateway_limits
    except UserLimits.DoesNotExist:
        limits = None
    return s.user_data(user, limits=limits, org_roles=org_roles, team_roles=team_roles)


class UserNewApi(ManagementAPIView):
    """A new user (user_id is its username) with its limits and memberships, and by default a first key."""

    input_serializer = s.UserNewInput

    def post(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        require_user(actor)
        user_role = data.get("user_role")
        organizations = [
            organization_or_404(i, param="organizations") for i in data.get("organizations") or []
        ]
        teams = [(team_or_404(t["team_id"], param="teams"), t["role"]) for t in data.get("teams") or []]
        if data.get("team_id") and data["team_id"] not in {str(team.pk) for team, _ in teams}:
            teams.append((team_or_404(data["team_id"], param="team_id"), "user"))
        if not actor.is_proxy_admin and not organizations and not teams and actor.admin_org_ids:
            organizations = [_one_admin_organization(actor, param="organizations")]
        user_create_check(
            actor, organizations=organizations, teams=[t for t, _ in teams], user_role=user_role
        )
        first_key = {"alias": data.get("key_alias"), "duration": data.get("duration")}
        with model_errors_as_fields({**USER_FIELDS, "alias": "key_alias", "expires_at": "duration"}):
            user, key, raw_key = services.user_create_with_memberships(
                user_fields={
                    "username": data.get("user_id"),
                    "email": data.get("user_email") or "",
                    "alias": data.get("user_alias") or "",
                    "password": data.get("password"),
                    "limits": limits_values(data),
                },
                user_role=user_role,
                organizations=organizations,
                teams=[(team, s.TEAM_ROLES[role]) for team, role in teams],
                first_key=first_key if data["auto_create_key"] else None,
                issued_by_proxy_admin=actor.is_proxy_admin,
            )
        answer = key_data(key, raw_key=raw_key) if key is not None else {"key": None}
        answer.update(_user_full(user))
        # LiteLLM's answer echoes its request's key fields; these are accepted here only empty.
        answer.update(
            {"duration": data.get("duration"), "allowed_cache_controls": [], "aliases": {}, "config": {}}
        )
        answer["teams"] = [str(team.pk) for team, _ in teams]
        answer["organizations"] = [str(o.pk) for o in organizations]
        return Response(answer)


def _user_update(actor, user, data: dict):
    """One /user/update: the caller's rights on the user and on each field, then the change."""
    user_check(actor, user, "write")
    user_role_change_check(actor, data.get("user_role"))
    if data.get("password"):
        require_proxy_admin(actor, "set a user's password", param="password")
    with model_errors_as_fields({**USER_FIELDS, "user_role": "user_role"}):
        return services.user_update(
            user=user,
            email=data.get("user_email") if data.get("user_id") and "user_email" in data else None,
            alias=(data["user_alias"] or "") if "user_alias" in data else None,
            role=data.get("user_role"),
            password=data.get("password"),
            limits=limits_values(data),
        )


class UserUpdateApi(ManagementAPIView):
    """Change a user (by user_id or user_email); only the fields given change."""

    input_serializer = s.UserUpdateInput

    def post(self, request):
        data = self.validated(request)
        user = user_or_404(user_id=data.get("user_id"), user_email=data.get("user_email"))
        return Response(_user_full(_user_update(request_actor(request), user, data)))


class UserBulkUpdateApi(ManagementAPIView):
    """LiteLLM's /user/bulk_update: `users` (each a /user/update body), or `all_users` with
    `user_updates` (the proxy admin's; every user but the admin site's staff). Each user is
    changed alone, with the caller's rights on it; one refused is reported in `results` and
    changes nothing of its own."""

    input_serializer = s.UserBulkUpdateInput

    def post(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        user_bulk_update_check(actor, all_users=data["all_users"])
        if data["all_users"]:
            # The admin site's staff (superusers among them) and the caller stay as they are: a change
            # to everyone must not lock the operators out. Name them in `users` to change them.
            users = selectors.user_list(scope=user_scope(actor)).exclude(is_staff=True).exclude(is_superuser=True)
            users = users.exclude(pk=getattr(actor.user, "pk", None))
            requests = [({**data["user_updates"], "user_id": u.username}, u) for u in users]
        else:
            requests = [
                (c, selectors.user_get(user_id=c.get("user_id"), user_email=c.get("user_email")))
                for c in data["users"]
            ]
        results = [_bulk_result(actor, changes, user) for changes, user in requests]
        succeeded = sum(1 for result in results if result["success"])
        return Response(
            {
                "results": results,
                "total_requested": len(results),
                "successful_updates": succeeded,
                "failed_updates": len(results) - succeeded,
            }
        )


def _bulk_result(actor, changes: dict, user) -> dict:
    # A refused item says back only what the caller named: never the email or username of a user
    # it may not read.
    result = {"user_id": changes.get("user_id"), "user_email": changes.get("user_email")}
    if user is None:
        named = changes.get("user_id") or changes.get("user_email")
        return {**result, "success": False, "error": f"No user {named!r}.", "updated_user": None}
    try:
        with transaction.atomic():
            user = _user_update(actor, user, changes)
    except (exceptions.APIException, DjangoValidationError) as exc:
        return {**result, "success": False, "error": _error_text(exc), "updated_user": None}
    result = {"user_id": user.username, "user_email": user.email or None}
    return {**result, "success": True, "error": None, "updated_user": _user_full(user)}


def _error_text(exc) -> str:
    detail = getattr(exc, "detail", None) or getattr(exc, "message_dict", None) or str(exc)
    param, message = first_validation_error(detail)
    return f"{param}: {message}" if param else message


class UserDeleteApi(ManagementAPIView):
    """Delete users with their keys."""

    input_serializer = s.UserDeleteInput

    def post(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        users = [user_or_404(user_id=i, param="user_ids") for i in data["user_ids"]]
        for user in users:
            user_check(actor, user, "write")
        for user in users:
            services.user_delete(user=user)
        return Response({"deleted_users": list(data["user_ids"])})


class UserInfoApi(ManagementAPIView):
    """A user (without user_id: the caller) with its keys and teams."""

    query_serializer = s.UserInfoQuery

    def get(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        require_user(actor)
        if data.get("user_id"):
            user = user_or_404(user_id=data["user_id"])
        elif actor.user is not None:
            user = actor.user
        else:
            raise exceptions.ValidationError({"user_id": ["Required with the master key."]})
        user_check(actor, user, "read")
        keys = virtual_key_list(scope=key_scope(actor), user_id=user.pk)
        visible_teams = set(selectors.team_list(scope=team_scope(actor)).values_list("pk", flat=True))
        return Response(
            {
                "user_id": user.username,
                "user_info": _user_full(user),
                "keys": [key_data(k) for k in keys],
                "teams": [
                    {**s.team_data(team), "user_role": s.TEAM_ROLE_NAMES.get(role, role)}
                    for team, role in selectors.user_teams(user=user)
                    if team.pk in visible_teams
                ],
            }
        )


class UserListApi(ManagementAPIView):
    """The users the caller sees, paged by page and page_size."""

    query_serializer = s.UserListQuery

    def get(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        require_user(actor)
        filters = {"user_email": data.get("user_email")}
        if data.get("team_id"):
            filters["team_id"] = getattr(selectors.team_get(team_id=data["team_id"]), "pk", None)
        if data.get("organization_id"):
            organization = selectors.organization_get(organization_id=data["organization_id"])
            filters["organization_id"] = getattr(organization, "pk", None)
        if None in (filters.get("team_id", ""), filters.get("organization_id", "")):
            users, total, pages = [], 0, 1  # a filter naming nothing matches nobody
        else:
            users = (
                selectors.user_list(scope=user_scope(actor), **filters)
                .select_related("gateway_limits")
                .prefetch_related("organization_memberships", "team_memberships")
            )
            users, total, pages = page_of(users, page=data["page"], size=data["page_size"])
        return Response(
            {
                "users": [_user_full(u) for u in users],
                "total": total,
                "page": data["page"],
                "page_size": data["page_size"],
                "total_pages": pages,
            }
        )


class UserDailyActivityApi(ManagementAPIView):
    """LiteLLM's daily activity of a user (without user_id: the caller's own; the proxy admin's:
    everyone's) from the daily spend rollups: per date its metrics and breakdown by model,
    provider and key, within what the caller may see (spend_scope)."""

    query_serializer = s.UserDailyActivityQuery

    def get(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        filters = {"model": data["model"]} if data.get("model") else {}
        if data.get("api_key"):
            key = virtual_key_get_by_ref(ref=data["api_key"])
            if key is None:
                raise NotFoundError("No such key.", param="api_key")
            spend_filter_check(actor, key=key)
            filters["key_id"] = key.pk
        if data.get("user_id"):
            user = user_or_404(user_id=data["user_id"])
            spend_filter_check(actor, user=user)
            filters["user_id"] = user.pk
        elif actor.user is not None and not actor.is_proxy_admin:
            filters["user_id"] = actor.user.pk
        rows = daily_spend_in_range(scope=spend_scope(actor), start_date=data["start_date"],
                                    end_date=data["end_date"], filters=filters)
        activity = daily_activity(rows=rows)
        page, size = data["page"], data["page_size"]
        pages = max(1, -(-len(activity) // size))
        return Response(
            {
                "results": activity[(page - 1) * size: page * size],
                "metadata": {**daily_activity_totals(activity), "page": page, "total_pages": pages,
                             "has_more": page < pages},
            }
        )


class AuditLogsApi(ManagementAPIView):
    """The audit log (apps.core.audit): the proxy admin's whole log; an organization admin's,
    its organizations' entries. Anyone else: 403."""

    query_serializer = s.AuditLogQuery

    def get(self, request):
        data = self.validated(request)
        actor = request_actor(request)
        organization_ids = None
        if not actor.is_proxy_admin:
            organization_ids = actor.admin_org_ids
            if not organization_ids:
                raise Forbidden("Only the proxy admin and organization admins may read the audit log.")
        entries = selectors.audit_log_list(organization_ids=organization_ids, filters=data)
        entries, total, pages = page_of(entries, page=data["page"], size=data["page_size"])
        return Response({"data": [s.audit_log_data(e) for e in entries], "total": total, "page": data["page"],
                         "page_size": data["page_size"], "total_pages": pages})
