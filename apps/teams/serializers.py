"""Request validation and response shapes of the management API's /organization, /team and
/user routes (LiteLLM's field names). The fields every level shares are in
apps.management.inputs."""

from __future__ import annotations

from rest_framework import serializers

from apps.spend.callback_settings import callback_entries_masked
from apps.management.framework import StrictNestedInput, is_empty_value
from apps.management.inputs import (
    LITELLM_GENERATE_REQUEST_FIELDS,
    LagoIdsInput,
    LimitsInput,
    PromptStorageInput,
    count_field,
    duration_validator,
    lago_data,
    limits_data,
    money_field,
)
from apps.management.pagination import MAX_INT, PageQuery
from apps.teams.models import OrganizationMembership, TeamMembership

# --- members ------------------------------------------------------------------------------

# LiteLLM's roles → ours. A team has admins and users; an organization org_admins,
# internal_users and internal_user_viewers.
TEAM_ROLES = {
    "admin": TeamMembership.Role.ADMIN,
    "user": TeamMembership.Role.MEMBER,
    "member": TeamMembership.Role.MEMBER,
    "viewer": TeamMembership.Role.VIEWER,
}
TEAM_ROLE_NAMES = {
    TeamMembership.Role.ADMIN: "admin",
    TeamMembership.Role.MEMBER: "user",
    TeamMembership.Role.VIEWER: "viewer",
}
ORGANIZATION_ROLES = {
    "org_admin": OrganizationMembership.Role.ADMIN,
    "admin": OrganizationMembership.Role.ADMIN,
    "internal_user": OrganizationMembership.Role.MEMBER,
    "member": OrganizationMembership.Role.MEMBER,
    "internal_user_viewer": OrganizationMembership.Role.VIEWER,
    "viewer": OrganizationMembership.Role.VIEWER,
}
ORGANIZATION_ROLE_NAMES = {
    OrganizationMembership.Role.ADMIN: "org_admin",
    OrganizationMembership.Role.MEMBER: "internal_user",
    OrganizationMembership.Role.VIEWER: "internal_user_viewer",
}


class UserRefInput(serializers.Serializer):
    user_id = serializers.CharField(max_length=150, required=False, allow_null=True)
    user_email = serializers.EmailField(required=False, allow_null=True)

    def validate(self, attrs):
        if not attrs.get("user_id") and not attrs.get("user_email"):
            raise serializers.ValidationError({"user_id": ["Give user_id or user_email."]})
        return super().validate(attrs)


# LiteLLM's member objects (Member, OrgMember) and the requests naming one member.
LITELLM_MEMBER_FIELDS = frozenset({"user_id", "user_email", "role"})
LITELLM_MEMBER_REF_FIELDS = frozenset({"user_id", "user_email"})


def model_names_field(**kwargs) -> serializers.ListField:
    return serializers.ListField(child=serializers.CharField(max_length=200), required=False, allow_null=True,
                                 **kwargs)


class TeamMemberInput(StrictNestedInput, UserRefInput):
    role = serializers.ChoiceField(choices=sorted(TEAM_ROLES), default="user")
    models = model_names_field(
        help_text="Models the member may use within the team (within the team's). Empty: the team's "
        "default_models, else all the team's."
    )

    litellm_fields = LITELLM_MEMBER_FIELDS | {"models"}


class OrganizationMemberInput(StrictNestedInput, UserRefInput):
    role = serializers.ChoiceField(choices=sorted(ORGANIZATION_ROLES), default="internal_user")

    litellm_fields = LITELLM_MEMBER_FIELDS


class OneOrMany(serializers.ListField):
    """A member object or a list of them."""

    def to_internal_value(self, data):
        return super().to_internal_value([data] if isinstance(data, dict) else data)


# --- organizations ------------------------------------------------------------------------


# LiteLLM's LiteLLM_BudgetTable, which its organization requests extend.
LITELLM_BUDGET_FIELDS = frozenset(
    {
        "budget_id", "soft_budget", "max_budget", "max_parallel_requests", "tpm_limit", "rpm_limit",
        "model_max_budget", "budget_duration",
    }
)


class OrganizationBudgetInput(serializers.Serializer):
    budget_id = serializers.CharField(
        max_length=200, required=False, allow_null=True,
        help_text="A budget (POST /budget/new) whose limits the organization has, instead of its own.",
    )


class OrganizationNewInput(OrganizationBudgetInput, LagoIdsInput, LimitsInput):
    organization_alias = serializers.CharField(max_length=200)
    organization_id = serializers.UUIDField(required=False, allow_null=True)

    litellm_fields = LITELLM_BUDGET_FIELDS | {
        "organization_id", "organization_alias", "models", "metadata", "model_rpm_limit", "model_tpm_limit",
        "object_permission",
    }


class OrganizationUpdateInput(OrganizationBudgetInput, LagoIdsInput, LimitsInput):
    organization_id = serializers.CharField()
    organization_alias = serializers.CharField(max_length=200, required=False)

    litellm_fields = OrganizationNewInput.litellm_fields | {"spend", "updated_by"}


class OrganizationDeleteInput(serializers.Serializer):
    organization_ids = serializers.ListField(child=serializers.CharField(), min_length=1)

    litellm_fields = frozenset({"organization_ids"})


class OrganizationQuery(serializers.Serializer):
    organization_id = serializers.CharField()


class OrganizationMemberAddInput(serializers.Serializer):
    organization_id = serializers.CharField()
    member = OneOrMany(child=OrganizationMemberInput(), min_length=1)

    litellm_fields = frozenset({"organization_id", "member", "max_budget_in_organization"})


class OrganizationMemberDeleteInput(UserRefInput):
    organization_id = serializers.CharField()

    litellm_fields = LITELLM_MEMBER_REF_FIELDS | {"organization_id"}


class OrganizationMemberUpdateInput(UserRefInput):
    organization_id = serializers.CharField()
    role = serializers.ChoiceField(choices=sorted(ORGANIZATION_ROLES), required=False, allow_null=True)

    litellm_fields = LITELLM_MEMBER_REF_FIELDS | {"organization_id", "role", "max_budget_in_organization"}


class OrganizationInfoInput(serializers.Serializer):
    """LiteLLM's deprecated POST /organization/info: several organizations at once."""

    organizations = serializers.ListField(child=serializers.CharField(), min_length=1, max_length=1000)

    litellm_fields = frozenset({"organizations"})


def organization_data(organization, *, memberships=None, teams=None) -> dict:
    data = {
        "organization_id": str(organization.pk),
        "organization_alias": organization.name,
        **limits_data(organization),
        **lago_data(organization),
        "budget_id": organization.budget.budget_id if organization.budget_id else None,
        "created_by": organization.created_by or None,
        "updated_by": organization.updated_by or None,
    }
    if memberships is not None:
        data["members"] = [
            {
                "user_id": m.user.username,
                "user_email": m.user.email or None,
                "user_role": ORGANIZATION_ROLE_NAMES.get(m.role, m.role),
            }
            for m in memberships
        ]
    if teams is not None:
        data["teams"] = [{"team_id": str(t.pk), "team_alias": t.alias} for t in teams]
    return data


def organization_membership_data(membership) -> dict:
    return {
        "user_id": membership.user.username,
        "organization_id": str(membership.organization_id),
        "user_role": ORGANIZATION_ROLE_NAMES.get(membership.role, membership.role),
    }


# --- teams --------------------------------------------------------------------------------


class TeamMemberLimitsInput(serializers.Serializer):
    """What each member may use within the team (LiteLLM's team_member_* fields)."""

    team_member_budget = money_field(help_text="USD each member may spend through the team per member period.")
    team_member_budget_duration = serializers.CharField(
        max_length=16, required=False, allow_null=True, allow_blank=True, validators=[duration_validator],
        help_text="30s, 30m, 30h, 30d or 1mo: each member's budget starts again after this.",
    )
    team_member_rpm_limit = count_field(help_text="Requests per minute, per member.")
    team_member_tpm_limit = count_field(help_text="Tokens per minute, per member.")


TEAM_MEMBER_LIMIT_FIELDS = ("team_member_budget", "team_member_budget_duration", "team_member_rpm_limit",
                            "team_member_tpm_limit")


def team_member_limit_values(data: dict) -> dict:
    values = {name: data[name] for name in TEAM_MEMBER_LIMIT_FIELDS if name in data}
    if "team_member_budget_duration" in values:
        values["team_member_budget_duration"] = values["team_member_budget_duration"] or ""
    return values


# LiteLLM's UpdateTeamRequest; its NewTeamRequest adds TeamBase's member lists and the rest below.
LITELLM_UPDATE_TEAM_FIELDS = frozenset(
    {
        "team_id", "team_alias", "organization_id", "metadata", "tpm_limit", "rpm_limit", "max_budget",
        "soft_budget", "models", "blocked", "budget_duration", "tags", "model_aliases", "guardrails",
        "policies",
        "object_permission", "team_member_budget", "team_member_budget_duration", "team_member_rpm_limit",
        "team_member_tpm_limit", "team_member_key_duration", "allowed_passthrough_routes",
        "secret_manager_settings", "prompts", "model_rpm_limit", "model_tpm_limit",
        "allowed_vector_store_indexes", "enforced_batch_output_expires_after", "enforced_file_expires_after",
        "router_settings", "access_group_ids", "team_member_permissions",
    }
)
LITELLM_NEW_TEAM_FIELDS = LITELLM_UPDATE_TEAM_FIELDS | {
    "admins", "members", "members_with_roles", "rpm_limit_type", "tpm_limit_type",
}


class TeamRoutingInput(serializers.Serializer):
    """A team's per-model rate limits, model aliases, routing tags and its members' default models."""

    model_rpm_limit = serializers.DictField(
        child=serializers.IntegerField(min_value=0, max_value=MAX_INT), required=False, allow_null=True,
        help_text='Requests per minute of the whole team, per model: {"gpt-4o": 60}.',
    )
    model_tpm_limit = serializers.DictField(
        child=serializers.IntegerField(min_value=0, max_value=MAX_INT), required=False, allow_null=True,
        help_text='Tokens per minute of the whole team, per model: {"gpt-4o": 100000}.',
    )
    model_aliases = serializers.DictField(
        child=serializers.CharField(max_length=200), required=False, allow_null=True,
        help_text='{"gpt-3.5-turbo": "gpt-3.5-turbo-eu"}: the team\'s requests for a name go to the model named '
        "(which the key must be allowed).",
    )
    tags = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, allow_null=True,
        help_text="Routing tags added to every request of the team (tag-based routing).",
    )
    default_models = model_names_field(
        help_text="Models a member added without its own models list may use (within the team's)."
    )
    guardrails = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, allow_null=True, max_length=20,
        help_text="Guardrails (config.yaml's guardrail_name) every request of the team goes through; set by an "
        "admin of its organization.",
    )


TEAM_ROUTING_DEFAULTS = {"model_rpm_limit": {}, "model_tpm_limit": {}, "model_aliases": {}, "tags": [],
                         "guardrails": [],
                         "default_models": []}
# The request fields that bound what the team's keys may use: like LIMIT_FIELDS, an org admin's.
TEAM_ROUTING_FIELDS = frozenset(TEAM_ROUTING_DEFAULTS)


def team_routing_values(data: dict) -> dict:
    """The model fields of the team's routing settings present in validated data (null: none)."""
    return {name: default if data[name] is None else data[name]
            for name, default in TEAM_ROUTING_DEFAULTS.items() if name in data}


class LiteLLMMemberList(serializers.ListField):
    """LiteLLM's `admins` / `members` on /team/new: user ids, or member objects."""

    def to_internal_value(self, data):
        if isinstance(data, list):
            data = [{"user_id": item} if isinstance(item, str) else item for item in data]
        return super().to_internal_value(data)


class TeamNewInput(TeamRoutingInput, TeamMemberLimitsInput, PromptStorageInput, LagoIdsInput, LimitsInput):
    team_alias = serializers.CharField(max_length=200, required=False, allow_null=True)
    name = serializers.CharField(
        max_length=200, required=False, allow_null=True,
        help_text="The team's name when team_alias is not given (LiteLLM's public-teams page sends it).",
    )
    team_id = serializers.CharField(
        max_length=200, required=False, allow_null=True,
        help_text="The team's id: a UUID, or any other id of yours (LiteLLM's), by which the team is found "
        "too; answers name the team by its UUID.",
    )
    organization_id = serializers.CharField(required=False, allow_null=True)
    members_with_roles = serializers.ListField(child=TeamMemberInput(), required=False, allow_null=True)
    admins = LiteLLMMemberList(child=TeamMemberInput(), required=False, allow_null=True,
                               help_text="Members made team admins: user ids or {user_id | user_email}.")
    members = LiteLLMMemberList(child=TeamMemberInput(), required=False, allow_null=True,
                                help_text="Members made users of the team: user ids or {user_id | user_email}.")

    litellm_fields = LITELLM_NEW_TEAM_FIELDS

    def validate(self, attrs):
        attrs = super().validate(attrs)
        # admins and members are members_with_roles with the role given by the list.
        members = list(attrs.get("members_with_roles") or [])
        members += [{**m, "role": "admin"} for m in attrs.pop("admins", None) or []]
        members += [{**m, "role": "user"} for m in attrs.pop("members", None) or []]
        if members:
            attrs["members_with_roles"] = members
        if not attrs.get("team_alias") and attrs.get("name"):
            attrs["team_alias"] = attrs["name"]
        attrs.pop("name", None)
        return attrs


class TeamUpdateInput(TeamRoutingInput, TeamMemberLimitsInput, PromptStorageInput, LagoIdsInput, LimitsInput):
    team_id = serializers.CharField()
    team_alias = serializers.CharField(max_length=200, required=False)
    organization_id = serializers.CharField(required=False)

    litellm_fields = LITELLM_UPDATE_TEAM_FIELDS


class TeamDeleteInput(serializers.Serializer):
    team_ids = serializers.ListField(child=serializers.CharField(), min_length=1)

    litellm_fields = frozenset({"team_ids"})


class TeamRefInput(serializers.Serializer):
    team_id = serializers.CharField()

    litellm_fields = frozenset({"team_id"})  # LiteLLM's BlockTeamRequest


class TeamQuery(serializers.Serializer):
    team_id = serializers.CharField()


class TeamListQuery(serializers.Serializer):
    organization_id = serializers.CharField(required=False)


class TeamModelsInput(serializers.Serializer):
    """LiteLLM's /team/model/add and /team/model/delete."""

    team_id = serializers.CharField()
    models = serializers.ListField(child=serializers.CharField(max_length=200), min_length=1)

    litellm_fields = frozenset({"team_id", "models"})


class TeamMemberAddInput(serializers.Serializer):
    team_id = serializers.CharField()
    member = OneOrMany(child=TeamMemberInput(), min_length=1)
    max_budget_in_team = money_field(
        help_text="USD each member added may spend through the team per member budget period (its own "
        "team_member_budget)."
    )

    litellm_fields = frozenset({"team_id", "member", "max_budget_in_team"})


class TeamMemberDeleteInput(UserRefInput):
    team_id = serializers.CharField()

    litellm_fields = LITELLM_MEMBER_REF_FIELDS | {"team_id"}


class TeamMemberUpdateInput(UserRefInput):
    team_id = serializers.CharField()
    role = serializers.ChoiceField(choices=sorted(TEAM_ROLES), required=False, allow_null=True)
    max_budget_in_team = money_field(
        help_text="USD the member may spend through the team per member budget period. Null: the team's "
        "team_member_budget."
    )
    rpm_limit = count_field(help_text="The member's requests per minute in the team. Null: the team's per member.")
    tpm_limit = count_field(help_text="The member's tokens per minute in the team. Null: the team's per member.")
    models = model_names_field(help_text="Models the member may use within the team. Empty: all the team's.")

    litellm_fields = LITELLM_MEMBER_REF_FIELDS | {
        "team_id", "role", "max_budget_in_team", "rpm_limit", "tpm_limit", "models",
    }


# Request fields of /team/member_add and /team/member_update → TeamMembership's.
MEMBER_LIMIT_FIELDS = {"max_budget_in_team": "max_budget", "rpm_limit": "rpm_limit", "tpm_limit": "tpm_limit",
                       "models": "models"}


def member_limit_values(data: dict) -> dict:
    """The membership's own limits present in validated data (null models: none of its own)."""
    values = {field: data[name] for name, field in MEMBER_LIMIT_FIELDS.items() if name in data}
    if values.get("models", ()) is None:
        values["models"] = []
    return values


class TeamCallbackInput(serializers.Serializer):
    """LiteLLM's AddTeamCallback (apps.spend.callback_settings says what each callback takes)."""

    callback_name = serializers.CharField(max_length=200)
    callback_type = serializers.ChoiceField(choices=("success", "failure", "success_and_failure"),
                                            required=False, allow_null=True)
    callback_vars = serializers.DictField(child=serializers.CharField(max_length=2000), required=False,
                                          allow_null=True)

    litellm_fields = frozenset({"callback_name", "callback_type", "callback_vars"})


class TeamCallbackDeleteInput(serializers.Serializer):
    callback_name = serializers.CharField(max_length=200)


def team_callbacks_data(team) -> dict:
    """LiteLLM's team callback settings (its success/failure lists and one callback_vars), and the
    entries themselves (`callbacks`); secrets masked."""
    entries = callback_entries_masked(team.logging_callbacks or [])
    callback_vars = {}
    for entry in entries:
        callback_vars.update(entry["callback_vars"])
    return {
        "team_id": str(team.pk),
        "success_callbacks": [e["callback_name"] for e in entries if e["callback_type"] != "failure"],
        "failure_callbacks": [e["callback_name"] for e in entries if e["callback_type"] != "success"],
        "callback_vars": callback_vars,
        "callbacks": entries,
        "store_prompts": team.store_prompts,
    }


def team_membership_data(membership) -> dict:
    return {
        "user_id": membership.user.username,
        "user_email": membership.user.email or None,
        "team_id": str(membership.team_id),
        "role": TEAM_ROLE_NAMES.get(membership.role, membership.role),
        "spend": membership.spend,  # within the team: what the member's budget limits
        "max_budget_in_team": membership.max_budget,
        "rpm_limit": membership.rpm_limit,
        "tpm_limit": membership.tpm_limit,
        "models": list(membership.models),
    }


def team_member_update_data(membership, *, team) -> dict:
    """LiteLLM's TeamMemberUpdateResponse, with the member's role and limits. max_budget_in_team:
    the member's own budget in the team, else the team's team_member_budget."""
    max_budget = membership.max_budget if membership.max_budget is not None else team.team_member_budget
    return {
        "team_id": str(team.pk),
        "user_id": membership.user.username,
        "user_email": membership.user.email or None,
        "role": TEAM_ROLE_NAMES.get(membership.role, membership.role),
        "max_budget_in_team": max_budget,
        "rpm_limit": membership.rpm_limit,
        "tpm_limit": membership.tpm_limit,
        "models": list(membership.models),
    }


def team_data(team, *, memberships=None) -> dict:
    data = {
        "team_id": str(team.pk),
        "team_alias": team.alias,
        "organization_id": str(team.organization_id),
        **limits_data(team),
        **lago_data(team),
        "store_prompts": team.store_prompts,
        **{name: getattr(team, name) for name in TEAM_MEMBER_LIMIT_FIELDS},
        **{name: getattr(team, name) for name in TEAM_ROUTING_FIELDS},
    }
    data["team_member_budget_duration"] = team.team_member_budget_duration or None
    if memberships is not None:
        data["members_with_roles"] = [
            {
                "user_id": m.user.username,
                "user_email": m.user.email or None,
                "role": TEAM_ROLE_NAMES.get(m.role, m.role),
            }
            for m in memberships
        ]
        # LiteLLM's older lists: the user ids of the team's admins and of its other members.
        data["admins"] = [m.user.username for m in memberships if m.role == TeamMembership.Role.ADMIN]
        data["members"] = [m.user.username for m in memberships if m.role != TeamMembership.Role.ADMIN]
    return data


# --- users --------------------------------------------------------------------------------

USER_ROLES = ("proxy_admin", "org_admin", "internal_user", "internal_user_viewer")
# LiteLLM's older names of its roles (its virtual_keys page's "admin").
USER_ROLE_ALIASES = {"admin": "proxy_admin"}


class UserRoleField(serializers.ChoiceField):
    """LiteLLM's user_role (its older names too). Its proxy_admin_viewer, a read-only proxy admin,
    has no counterpart here: viewers are members of a team or organization."""

    def __init__(self, **kwargs):
        super().__init__(choices=(*USER_ROLES, *USER_ROLE_ALIASES), required=False, allow_null=True, **kwargs)

    def to_internal_value(self, data):
        if data == "proxy_admin_viewer":
            raise serializers.ValidationError(
                "'proxy_admin_viewer' (a read-only proxy admin) does not exist here: viewers are members "
                "of a team or organization (internal_user_viewer)."
            )
        role = super().to_internal_value(data)
        return USER_ROLE_ALIASES.get(role, role)


class UserTeamInput(serializers.Field):
    """A team id, or LiteLLM's {team_id, user_role} (its max_budget_in_team only empty: a member's
    budget in a team is the team's team_member_budget here)."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            return {"team_id": data, "role": "user"}
        if isinstance(data, dict) and isinstance(data.get("team_id"), str):
            for name, value in data.items():
                if name not in ("team_id", "user_role", "max_budget_in_team"):
                    raise serializers.ValidationError(f"Unknown field '{name}'.")
                if name == "max_budget_in_team" and not is_empty_value(value):
                    raise serializers.ValidationError(
                        "'max_budget_in_team' is a LiteLLM field this gateway does not act on yet: set the "
                        "team's team_member_budget instead."
                    )
            role = data.get("user_role") or "user"
            if role not in TEAM_ROLES:
                raise serializers.ValidationError(
                    f"user_role must be one of {', '.join(sorted(TEAM_ROLES))}."
                )
            return {"team_id": data["team_id"], "role": role}
        raise serializers.ValidationError("A team id, or {team_id, user_role}.")

    def to_representation(self, value):
        return value


class UserNewInput(LimitsInput):
    user_id = serializers.CharField(max_length=150, required=False, allow_null=True)
    user_email = serializers.EmailField(required=False, allow_null=True)
    user_alias = serializers.CharField(max_length=150, required=False, allow_null=True, allow_blank=True)
    user_role = UserRoleField()
    teams = serializers.ListField(child=UserTeamInput(), required=False, allow_null=True)
    organizations = serializers.ListField(child=serializers.CharField(), required=False, allow_null=True)
    password = serializers.CharField(
        min_length=8, max_length=128, required=False, allow_null=True, write_only=True
    )
    auto_create_key = serializers.BooleanField(default=True)
    key_alias = serializers.CharField(max_length=200, required=False, allow_null=True, allow_blank=True)
    duration = serializers.CharField(max_length=16, required=False, allow_null=True, validators=[duration_validator])
    team_id = serializers.CharField(
        required=False, allow_null=True,
        help_text="A team to add the user to (LiteLLM's older name for teams).",
    )

    # The names /user/new's own docstring uses (LiteLLM drops them and makes a user with a new id).
    username = serializers.CharField(max_length=150, required=False, allow_null=True,
                                     help_text="user_id, by the name LiteLLM's docstring uses.")
    email = serializers.EmailField(required=False, allow_null=True,
                                   help_text="user_email, by the name LiteLLM's docstring uses.")

    litellm_fields = LITELLM_GENERATE_REQUEST_FIELDS | {
        "user_email", "user_alias", "user_role", "teams", "auto_create_key", "send_invite_email",
        "sso_user_id", "organizations", "password",
    }
    ignored_values = {"spend": (0,)}  # a new user's spend

    def validate(self, attrs):
        for alias, name in (("username", "user_id"), ("email", "user_email")):
            value = attrs.pop(alias, None)
            if value is None:
                continue
            if attrs.get(name) not in (None, value):
                raise serializers.ValidationError({alias: [f"Another name of {name}: give one of them."]})
            attrs[name] = value
        return super().validate(attrs)


class UserUpdateInput(LimitsInput):
    user_id = serializers.CharField(max_length=150, required=False, allow_null=True)
    user_email = serializers.EmailField(required=False, allow_null=True)
    user_alias = serializers.CharField(max_length=150, required=False, allow_null=True, allow_blank=True)
    user_role = UserRoleField()
    password = serializers.CharField(
        min_length=8, max_length=128, required=False, allow_null=True, write_only=True
    )

    litellm_fields = LITELLM_GENERATE_REQUEST_FIELDS | {
        "password", "spend", "metadata", "user_alias", "user_role", "max_budget", "user_id", "user_email",
    }

    def validate(self, attrs):
        if not attrs.get("user_id") and not attrs.get("user_email"):
            raise serializers.ValidationError({"user_id": ["Give user_id or user_email."]})
        return super().validate(attrs)


class UserChangesInput(StrictNestedInput, UserUpdateInput):
    """One user's changes in /user/bulk_update's `users` (a /user/update body)."""


class UserUpdatesInput(StrictNestedInput, UserUpdateInput):
    """The changes /user/bulk_update applies to every user (`all_users`): no user named."""

    def validate(self, attrs):
        for name in ("user_id", "user_email"):
            if attrs.get(name):
                raise serializers.ValidationError(
                    {name: ["Not with all_users: the changes apply to every user."]}
                )
        return attrs


class UserBulkUpdateInput(serializers.Serializer):
    users = serializers.ListField(child=UserChangesInput(), required=False, allow_null=True, min_length=1,
                                  max_length=1000)
    all_users = serializers.BooleanField(default=False)
    user_updates = UserUpdatesInput(required=False, allow_null=True)

    litellm_fields = frozenset({"users", "all_users", "user_updates"})

    def validate(self, attrs):
        if attrs["all_users"] and attrs.get("user_updates") is None:
            raise serializers.ValidationError({"user_updates": ["Required with all_users."]})
        if not attrs["all_users"] and not attrs.get("users"):
            raise serializers.ValidationError({"users": ["Give users, or all_users with user_updates."]})
        if attrs["all_users"] and attrs.get("users"):
            raise serializers.ValidationError({"users": ["Give users or all_users, not both."]})
        return attrs


class UserDeleteInput(serializers.Serializer):
    user_ids = serializers.ListField(child=serializers.CharField(), min_length=1)

    litellm_fields = frozenset({"user_ids"})


class UserInfoQuery(serializers.Serializer):
    user_id = serializers.CharField(required=False)


class UserListQuery(PageQuery):
    team_id = serializers.CharField(required=False)
    organization_id = serializers.CharField(required=False)
    user_email = serializers.CharField(required=False)


MAX_ACTIVITY_DAYS = 366


class UserDailyActivityQuery(PageQuery):
    """LiteLLM's /user/daily/activity query: days (UTC, both included) paged by page and page_size."""

    start_date = serializers.DateField(help_text="The first day (UTC), YYYY-MM-DD.")
    end_date = serializers.DateField(help_text="The last day (UTC), included.")
    user_id = serializers.CharField(
        required=False, help_text="Only this user's activity (default: the caller's)."
    )
    model = serializers.CharField(required=False, help_text="Only this model's activity.")
    api_key = serializers.CharField(required=False, help_text="Only this key's activity: the key or its sha256.")
    page_size = serializers.IntegerField(min_value=1, max_value=1000, default=50)

    def validate(self, data):
        if data["end_date"] < data["start_date"]:
            raise serializers.ValidationError({"end_date": ["Must not be before start_date."]})
        if (data["end_date"] - data["start_date"]).days >= MAX_ACTIVITY_DAYS:
            raise serializers.ValidationError({"end_date": [f"At most {MAX_ACTIVITY_DAYS} days."]})
        return data


def user_role_name(user, *, org_roles=(), team_roles=()) -> str:
    """LiteLLM's user_role, derived: proxy_admin, org_admin, internal_user_viewer (viewer
    memberships only) or internal_user."""
    if user.is_superuser:
        return "proxy_admin"
    roles = [*org_roles, *team_roles]
    if OrganizationMembership.Role.ADMIN in org_roles:
        return "org_admin"
    if roles and all(role == OrganizationMembership.Role.VIEWER for role in roles):
        return "internal_user_viewer"
    return "internal_user"


def user_data(user, *, limits=None, org_roles=(), team_roles=()) -> dict:
    data = {
        "user_id": user.username,
        "user_email": user.email or None,
        "user_alias": user.first_name or None,
        "user_role": user_role_name(user, org_roles=org_roles, team_roles=team_roles),
    }
    if limits is not None:
        data.update(limits_data(limits))
    else:
        data.update(
            {
                "models": [],
                "spend": 0,
                "max_budget": None,
                "soft_budget": None,
                "budget_duration": None,
                "budget_reset_at": None,
                "rpm_limit": None,
                "tpm_limit": None,
                "max_parallel_requests": None,
                "metadata": {},
                "blocked": False,
            }
        )
    data["created_at"] = user.date_joined
    data.pop("updated_at", None)
    return data


class AuditLogQuery(PageQuery):
    object_type = serializers.CharField(required=False, help_text="app_label.model, e.g. keys.virtualkey.")
    object_id = serializers.CharField(required=False)
    actor = serializers.CharField(required=False, help_text="Entries whose actor contains this.")
    action = serializers.ChoiceField(choices=["create", "update", "delete"], required=False)
    via = serializers.ChoiceField(choices=["management_api", "admin", "command", "system"], required=False)
    request_id = serializers.CharField(required=False)
    organization_id = serializers.CharField(required=False, help_text="Only this organization's entries.")
    start_date = serializers.DateField(required=False, help_text="From this day (UTC), YYYY-MM-DD.")
    end_date = serializers.DateField(required=False, help_text="To this day (UTC), included.")
    page_size = serializers.IntegerField(min_value=1, max_value=500, default=50)


def audit_log_data(entry) -> dict:
    return {
        "id": entry.pk, "created_at": entry.created_at.isoformat(), "actor": entry.actor, "via": entry.via,
        "action": entry.action, "object_type": entry.object_type, "object_id": entry.object_id,
        "object_repr": entry.object_repr, "organization_id": entry.organization_id or None,
        "changes": entry.changes, "ip": entry.ip, "user_agent": entry.user_agent, "request_id": entry.request_id,
    }
