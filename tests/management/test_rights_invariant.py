"""The management API's one rule as an invariant over sequences of calls (hypothesis).

Random principals (proxy admin, org admins, team admin, member, viewer, plain key, across two
organizations, and every key they obtain on the way) make random management calls. After each
call:

- a key the caller obtained (generated, regenerated, or a new user's first key) or moved never
  holds a right the caller lacks, and stays inside the caller's team or organization;
- a membership or role the caller gave never adds to its user a right the caller lacks;
- a principal of one organization never reads another organization's rows in an answer, nor
  changes them;
- what a caller other than the proxy admin gives a team member to use within the team (its own
  budget, rate limits, models) stays within what the team holds, and the models it adds to a
  team within what the team's organization allows.

A principal's rights are measured, not computed: what it sees in every list and which of a
fixed set of writes succeed for it (each tried in a savepoint that is rolled back). So the
test checks the behaviour, whatever apps/management/permissions.py believes.

`make test` runs a few examples (the "bounded" profile). By hand, for a long search:
    HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/management/test_rights_invariant.py
"""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest
from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from rest_framework.test import APIClient

from conftest import MASTER_KEY

settings.register_profile(
    "bounded", max_examples=6, stateful_step_count=5, deadline=None,
    suppress_health_check=list(HealthCheck), database=None,
)
settings.register_profile(
    "long", max_examples=400, stateful_step_count=12, deadline=None,
    suppress_health_check=list(HealthCheck), database=None,
)

ROLES_TEAM = ("admin", "user", "viewer")
ROLES_ORG = ("org_admin", "internal_user", "internal_user_viewer")
USER_ROLES = ("proxy_admin", "org_admin", "internal_user", "internal_user_viewer", None)
BUDGET_IDS = ("acme-tier", "globex-tier", "proxy-tier")  # one per namespace (_world)


class Client:
    def __init__(self) -> None:
        self.client = APIClient()

    def call(self, method: str, path: str, body: dict, key: str):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
        if method == "GET":
            return self.client.get(path, body, **headers)
        return self.client.post(path, json.dumps(body), content_type="application/json", **headers)

    def tried(self, method: str, path: str, body: dict, key: str) -> bool:
        """Would this call succeed? (Tried, then rolled back.)"""
        with transaction.atomic():
            ok = self.call(method, path, body, key).status_code == 200
            transaction.set_rollback(True)
        return ok


def _world():
    """Acme (teams research and ops) and Globex (team sales), their people, and a key each."""
    from django.contrib.auth import get_user_model

    from apps.customers.services import budget_create
    from apps.keys.services import virtual_key_create
    from apps.teams.services import organization_create, organization_member_add, team_create, team_member_add

    User = get_user_model()
    acme = organization_create(name="Acme", models=["gpt-a", "gpt-b", "gpt-c"])
    globex = organization_create(name="Globex")
    # Budgets organizations link to (budget_id): the proxy admin's "tier" here; Acme's "acme-tier"
    # is made below with the ones keys link to.
    budget_create(organization=None, budget_id="tier", max_budget=1000000)
    # Bounds for what its admins may hand its members (member budgets, rates and models).
    research = team_create(organization=acme, alias="research", models=["gpt-a", "gpt-b"], max_budget=50,
                           team_member_budget=10, rpm_limit=100)
    team_create(organization=acme, alias="ops")
    sales = team_create(organization=globex, alias="sales")
    users = {name: User.objects.create_user(name) for name in (
        "acme-admin", "team-admin", "member", "viewer", "accountant", "globex-admin", "outsider", "loner")}
    User.objects.create_superuser("root", "root@example.com", "a-long-password")
    organization_member_add(organization=acme, user=users["acme-admin"], role="admin")
    organization_member_add(organization=acme, user=users["accountant"], role="member")
    organization_member_add(organization=globex, user=users["globex-admin"], role="admin")
    team_member_add(team=research, user=users["team-admin"], role="admin")
    team_member_add(team=research, user=users["member"], role="member")
    team_member_add(team=research, user=users["viewer"], role="viewer")
    team_member_add(team=sales, user=users["outsider"], role="member")
    keys = {
        "acme-admin": virtual_key_create(user=users["acme-admin"]),
        "team-admin": virtual_key_create(user=users["team-admin"], team=research),
        "team-admin-personal": virtual_key_create(user=users["team-admin"]),
        "member": virtual_key_create(user=users["member"], team=research),
        "viewer": virtual_key_create(user=users["viewer"], team=research),
        "accountant": virtual_key_create(user=users["accountant"], organization=acme),
        "plain": virtual_key_create(team=research),
        "globex-admin": virtual_key_create(user=users["globex-admin"]),
        "outsider": virtual_key_create(user=users["outsider"], team=sales),
    }
    from apps.customers.services import budget_create

    for organization, budget_id in ((acme, "acme-tier"), (globex, "globex-tier"), (None, "proxy-tier")):
        budget_create(organization=organization, budget_id=budget_id, max_budget=1000, rpm_limit=1000)
    return {"proxy": MASTER_KEY, **{name: raw for name, (_, raw) in keys.items()}}


# --- what a principal holds ---------------------------------------------------------------------


def _ids():
    from django.contrib.auth import get_user_model

    from apps.keys.models import VirtualKey
    from apps.teams.models import Organization, Team

    return (
        # In an order that replaying the same calls repeats (hypothesis draws by position).
        [str(t) for t in Team.objects.order_by("organization__name", "alias").values_list("pk", flat=True)],
        [str(o) for o in Organization.objects.order_by("name").values_list("pk", flat=True)],
        list(get_user_model().objects.order_by("username").values_list("username", flat=True)),
        list(VirtualKey.objects.order_by("pk").values_list("token_hash", flat=True)),
    )


def rights_of(client: Client, raw_key: str) -> frozenset:
    """Every row the key sees in a list, and every probe write that would succeed for it."""
    teams, organizations, users, keys = _ids()
    held = set()
    listed = client.call("GET", "/key/list", {"size": 100}, raw_key)
    if listed.status_code == 200:
        held |= {("see-key", token) for token in listed.json()["keys"]}
    for path, field, query in (("/team/list", "team_id", {}), ("/organization/list", "organization_id", {}),
                               ("/user/list", "user_id", {"page_size": 100})):
        answer = client.call("GET", path, query, raw_key)
        if answer.status_code == 200:
            rows = answer.json()
            rows = rows["users"] if isinstance(rows, dict) else rows
            held |= {("see", path, row[field]) for row in rows}
    probes = [("org-new", "/organization/new", {"organization_alias": "Probe Inc"}),
              ("model-new", "/model/new", {"model_name": "probe",
                                           "litellm_params": {"model": "openai/x", "api_key": "sk-x"}}),
              ("proxy-user", "/user/new", {"user_id": "probe-root", "user_role": "proxy_admin"}),
              ("spend-reset", "/global/spend/reset", {})]
    for team in teams:
        probes += [
            ("team-rename", team, "/team/update", {"team_id": team, "metadata": {"probe": 1}}),
            ("team-limits", team, "/team/update", {"team_id": team, "max_budget": 1}),
            ("team-models", team, "/team/model/add", {"team_id": team, "models": ["gpt-a"]}),
            ("team-rates", team, "/team/update", {"team_id": team, "model_rpm_limit": {"gpt-a": 1}}),
            ("team-members", team, "/team/member_add", {"team_id": team,
                                                        "member": [{"user_id": "probe-new", "role": "admin"}]}),
            ("team-key", team, "/key/generate", {"team_id": team}),
            ("team-model", team, "/model/new", {"model_name": "probe", "litellm_params": {"model": "openai/x"},
                                                "model_info": {"team_id": team, "team_model_rpm_limit": 1000}}),
        ]
    for organization in organizations:
        probes += [
            ("org-rename", organization, "/organization/update", {"organization_id": organization,
                                                                 "metadata": {"probe": 1}}),
            ("org-limits", organization, "/organization/update", {"organization_id": organization,
                                                                 "max_budget": 1}),
            ("org-budget", organization, "/organization/update", {"organization_id": organization,
                                                                 "budget_id": "tier"}),
            ("org-members", organization, "/organization/member_add", {
                "organization_id": organization, "member": [{"user_id": "probe-new", "role": "org_admin"}]}),
            ("org-team", organization, "/team/new", {"organization_id": organization, "team_alias": "probe"}),
            ("org-key", organization, "/key/generate", {"organization_id": organization}),
        ]
    for user in users:
        probes.append(("user-write", user, "/user/update", {"user_id": user, "max_budget": 1}))
    for token in keys:
        probes += [("key-admin", token, "/key/update", {"key": token, "max_budget": 1}),
                   ("key-regenerate", token, "/key/regenerate", {"key": token})]
    for *name, path, body in probes:
        if client.tried("POST", path, body, raw_key):
            held.add(tuple(name))
    return frozenset(held)


def _without_self(rights: frozenset, raw_key: str) -> frozenset:
    """A key's hold on itself (seeing it, rotating or changing it) is no right over anything else."""
    from apps.keys.services import virtual_key_hash

    token = virtual_key_hash(raw_key)
    return frozenset(r for r in rights if r[-1] != token)


# --- what belongs to an organization -------------------------------------------------------------


def organization_rows(name: str) -> dict:
    """The organization's own rows, canonical: itself, its teams, memberships and keys, and the
    users who belong to it alone (with their limits)."""
    from django.contrib.auth import get_user_model

    from apps.keys.models import VirtualKey
    from apps.teams.models import Organization, OrganizationMembership, Team, TeamMembership, UserLimits

    organization = Organization.objects.get(name=name)

    def organizations_of(user) -> set:
        return {*OrganizationMembership.objects.filter(user=user).values_list("organization_id", flat=True),
                *TeamMembership.objects.filter(user=user).values_list("team__organization_id", flat=True)}

    own_users = [u for u in get_user_model().objects.all() if organizations_of(u) == {organization.pk}]
    return {
        "organization": list(Organization.objects.filter(pk=organization.pk).values()),
        "teams": list(Team.objects.filter(organization=organization).order_by("pk").values()),
        "memberships": sorted(
            map(str, [*OrganizationMembership.objects.filter(organization=organization).values_list("user", "role"),
                      *TeamMembership.objects.filter(team__organization=organization).values_list(
                          "team", "user", "role")])),
        "keys": list(VirtualKey.objects.filter(organization=organization).order_by("pk").values()),
        "users": [(u.username, u.is_superuser, u.is_staff, u.first_name, u.email) for u in own_users],
        "limits": list(UserLimits.objects.filter(user__in=own_users).order_by("pk").values()),
    }


def organization_identifiers(name: str) -> set[str]:
    """What names the organization's own rows in an answer."""
    rows = organization_rows(name)
    return ({str(rows["organization"][0]["id"])} | {str(t["id"]) for t in rows["teams"]}
            | {k["token_hash"] for k in rows["keys"]} | {u[0] for u in rows["users"]})


def _strings(value) -> set[str]:
    if isinstance(value, dict):
        return set().union(*map(_strings, value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*map(_strings, value)) if value else set()
    return {value} if isinstance(value, str) else set()


# --- the machine ---------------------------------------------------------------------------------


class ManagementCalls(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.atomic = transaction.atomic()
        self.atomic.__enter__()
        self.client = Client()
        self.principals: dict[str, str] = {}  # name → raw key
        self.made = 0

    @initialize()
    def build(self):
        self.principals = _world()

    def teardown(self):
        transaction.set_rollback(True)
        self.atomic.__exit__(None, None, None)

    # -- helpers --

    def _foreign_organizations(self, raw: str) -> list[str]:
        """The organizations a principal has no part in: outside the proxy admin's, those its key's
        user has no membership in (a key of an organization or team: all but that one)."""
        from apps.keys.models import VirtualKey
        from apps.teams.models import Organization, OrganizationMembership, TeamMembership

        key = VirtualKey.objects.select_related("user").filter(token_hash=_hash(raw)).first()
        if key is None:  # the master key, or a key just regenerated
            return []
        if key.user is not None and key.user.is_superuser and key.issued_by_proxy_admin:
            return []
        if key.organization_id is not None:
            mine = {key.organization_id}
        else:
            mine = {*OrganizationMembership.objects.filter(user=key.user).values_list("organization_id", flat=True),
                    *TeamMembership.objects.filter(user=key.user).values_list("team__organization_id", flat=True)}
        return list(Organization.objects.exclude(pk__in=mine).filter(name__in=("Acme", "Globex"))
                    .values_list("name", flat=True))

    def _call(self, name: str, path: str, body: dict):
        """Call as principal `name`, checking that it leaves the organizations it has no part in
        untouched and unread."""
        raw = self.principals[name]
        others = self._foreign_organizations(raw)
        before = {o: organization_rows(o) for o in others}
        identifiers = set().union(*(organization_identifiers(o) for o in others)) if others else set()
        response = self.client.call("POST", path, body, raw)
        assert response.status_code < 500, (path, body, response.content)
        for other in others:
            assert organization_rows(other) == before[other], f"{name} changed {other}: {path} {body}"
        if response.status_code == 200:
            # What the caller named in its own request is not read (a refused item says it back).
            leaked = (_strings(response.json()) - _strings(body)) & identifiers
            assert not leaked, f"{name} read {leaked} of another organization: {path} {body}"
        return response

    def _adopt(self, name: str, raw: str) -> str:
        self.made += 1
        new = f"{name}>{self.made}"
        self.principals[new] = raw
        return new

    def _assert_within(self, caller: str, raw_key: str, what: str) -> None:
        """The key holds no right the caller lacks, and stays inside the caller's confinement."""
        from apps.keys.models import VirtualKey
        from apps.keys.services import virtual_key_hash

        caller_raw = self.principals[caller]
        extra = _without_self(rights_of(self.client, raw_key), raw_key) - rights_of(self.client, caller_raw)
        assert not extra, f"{what} by {caller} holds rights its caller lacks: {sorted(extra)[:5]}"
        made = VirtualKey.objects.select_related("user").get(token_hash=virtual_key_hash(raw_key))
        calling = VirtualKey.objects.filter(token_hash=virtual_key_hash(caller_raw)).first()
        if calling is not None and calling.team_id is not None:
            assert made.team_id == calling.team_id, f"{what} by {caller} left the caller's team"
        if calling is not None and calling.organization_id is not None:
            assert made.organization_id == calling.organization_id, f"{what} by {caller} left its organization"
        if caller != "proxy" and made.user is not None and made.user.is_staff:
            assert calling is not None and calling.user_id == made.user_id, f"{what} by {caller}: a staff user's key"

    def _user_rights(self, username: str) -> frozenset:
        """What the user holds across all its memberships (through a key outside every team)."""
        from django.contrib.auth import get_user_model

        from apps.keys.services import virtual_key_create

        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            return frozenset()
        with transaction.atomic():
            _, raw = virtual_key_create(user=user)
            rights = _without_self(rights_of(self.client, raw), raw)
            transaction.set_rollback(True)
        return rights

    def _granting(self, caller: str, usernames: list[str], call):
        """Run a membership or role change; what it adds to each user the caller must hold."""
        before = {u: self._user_rights(u) for u in usernames}
        response = call()
        if response.status_code == 200:
            held = rights_of(self.client, self.principals[caller])
            for username in usernames:
                gained = self._user_rights(username) - before[username]
                assert not (gained - held), f"{caller} gave {username} rights it lacks: {sorted(gained - held)[:5]}"
        return response

    # -- strategies over the current state --

    def principal(self, data):
        return data.draw(st.sampled_from(sorted(self.principals)), label="caller")

    @staticmethod
    def one_of(data, values, label):
        return data.draw(st.sampled_from(values), label=label)

    # -- rules --

    @rule(data=st.data())
    def generate_key(self, data):
        caller = self.principal(data)
        teams, organizations, users, _ = _ids()
        body = {}
        for field, values in (("team_id", teams), ("organization_id", organizations), ("user_id", users)):
            value = self.one_of(data, [None, *values], field)
            if value is not None:
                body[field] = value
        response = self._call(caller, "/key/generate", body)
        if response.status_code == 200:
            raw = response.json()["key"]
            self._assert_within(caller, raw, "a key generated")
            self._adopt(caller, raw)

    @rule(data=st.data())
    def regenerate_key(self, data):
        caller = self.principal(data)
        token = self.one_of(data, _ids()[3], "key")
        response = self._call(caller, "/key/regenerate", {"key": token})
        if response.status_code == 200:
            raw = response.json()["key"]
            from apps.keys.services import virtual_key_hash

            self.principals = {n: p for n, p in self.principals.items() if virtual_key_hash(p) != token}
            if caller in self.principals:
                self._assert_within(caller, raw, "a key regenerated")
                self._adopt(caller, raw)

    @rule(data=st.data())
    def service_account_key(self, data):
        caller = self.principal(data)
        body = {"team_id": self.one_of(data, _ids()[0], "team")}
        if data.draw(st.booleans(), label="with a budget tier"):
            body["budget_id"] = self.one_of(data, BUDGET_IDS, "budget_id")
        response = self._call(caller, "/key/service-account/generate", body)
        if response.status_code == 200:
            raw = response.json()["key"]
            self._assert_within(caller, raw, "a service account's key")
            self._adopt(caller, raw)

    @rule(data=st.data())
    def regenerate_key_with_changes(self, data):
        """/key/{key}/regenerate changes the key's fields (limits, team, budget tier) on the way."""
        caller = self.principal(data)
        teams, _, _, keys = _ids()
        token = self.one_of(data, keys, "key")
        body = {"max_budget": data.draw(st.sampled_from([None, 1, 1000]), label="max_budget")}
        if data.draw(st.booleans(), label="move team"):
            body["team_id"] = self.one_of(data, [None, *teams], "team_id")
        if data.draw(st.booleans(), label="budget tier"):
            body["budget_id"] = self.one_of(data, [None, *BUDGET_IDS], "budget_id")
        response = self._call(caller, f"/key/{token}/regenerate", body)
        if response.status_code == 200:
            raw = response.json()["key"]
            self.principals = {n: p for n, p in self.principals.items() if _hash(p) != token}
            if caller in self.principals:
                self._assert_within(caller, raw, "a key regenerated with changes")
                self._adopt(caller, raw)

    @rule(data=st.data())
    def move_key(self, data):
        caller = self.principal(data)
        teams, organizations, users, keys = _ids()
        token = self.one_of(data, keys, "key")
        body = {"key": token}
        for field, values in (("team_id", teams), ("organization_id", organizations), ("user_id", users)):
            if data.draw(st.booleans(), label=f"move {field}"):
                body[field] = self.one_of(data, [None, *values], field)
        holders = [p for p in self.principals.values() if _hash(p) == token]
        response = self._call(caller, "/key/update", body)
        if response.status_code == 200 and holders and caller in self.principals:
            self._assert_within(caller, holders[0], "a key moved")

    @rule(data=st.data())
    def add_team_member(self, data):
        caller = self.principal(data)
        teams, _, users, _ = _ids()
        username = self.one_of(data, [*users, "newcomer"], "user")
        body = {"team_id": self.one_of(data, teams, "team"),
                "member": [{"user_id": username, "role": self.one_of(data, ROLES_TEAM, "role")}]}
        self._granting(caller, [username], lambda: self._call(caller, "/team/member_add", body))

    @rule(data=st.data())
    def add_organization_member(self, data):
        caller = self.principal(data)
        _, organizations, users, _ = _ids()
        username = self.one_of(data, [*users, "newcomer"], "user")
        body = {"organization_id": self.one_of(data, organizations, "organization"),
                "member": [{"user_id": username, "role": self.one_of(data, ROLES_ORG, "role")}]}
        self._granting(caller, [username], lambda: self._call(caller, "/organization/member_add", body))

    @rule(data=st.data())
    def update_organization_member(self, data):
        caller = self.principal(data)
        _, organizations, users, _ = _ids()
        username = self.one_of(data, users, "user")
        body = {"organization_id": self.one_of(data, organizations, "organization"), "user_id": username,
                "role": self.one_of(data, ROLES_ORG, "role")}
        self._granting(caller, [username], lambda: self._call(caller, "/organization/member_update", body))

    @rule(data=st.data())
    def link_organization_budget(self, data):
        """A budget's limits become the organization's (only the proxy admin's budgets link)."""
        caller = self.principal(data)
        _, organizations, _, _ = _ids()
        body = {"organization_id": self.one_of(data, organizations, "organization"),
                "budget_id": self.one_of(data, ["tier", "acme-tier", None], "budget_id")}
        self._limits_kept(caller, lambda: self._call(caller, "/organization/update", body))

    @rule(data=st.data())
    def raise_budget(self, data):
        """Changing a budget changes the organizations linked to it."""
        caller = self.principal(data)
        _, organizations, _, _ = _ids()
        budget_id = self.one_of(data, ["tier", "acme-tier"], "budget_id")
        body = {"budget_id": budget_id, "max_budget": 2000000}
        if budget_id == "acme-tier":
            body["organization_id"] = organizations[0]  # Acme
        self._limits_kept(caller, lambda: self._call(caller, "/budget/update", body))

    def _limits_kept(self, caller: str, call) -> None:
        """The limits of an organization change only for a caller that may set them itself."""
        from apps.teams.models import Organization

        fields = ("pk", "max_budget", "soft_budget", "budget_duration", "rpm_limit", "tpm_limit")
        before = {row[0]: row for row in Organization.objects.values_list(*fields)}
        may_set = {r[1] for r in rights_of(self.client, self.principals[caller]) if r[0] == "org-limits"}
        call()
        for row in Organization.objects.values_list(*fields):
            if str(row[0]) not in may_set and row[0] in before:
                assert row == before[row[0]], f"{caller} changed the limits of organization {row[0]}"

    @rule(data=st.data())
    def bulk_update_users(self, data):
        caller = self.principal(data)
        users = _ids()[2]
        usernames = data.draw(st.lists(st.sampled_from(users), min_size=1, max_size=2, unique=True), label="users")
        body = {"users": [{"user_id": u, "user_role": self.one_of(data, USER_ROLES[:-1], "user_role")}
                          for u in usernames]}
        self._granting(caller, usernames, lambda: self._call(caller, "/user/bulk_update", body))

    @rule(data=st.data())
    def new_team(self, data):
        caller = self.principal(data)
        _, organizations, users, _ = _ids()
        username = self.one_of(data, users, "member")
        self.made += 1
        body = {"organization_id": self.one_of(data, organizations, "organization"),
                "team_alias": f"t{self.made}",
                "members_with_roles": [{"user_id": username, "role": self.one_of(data, ROLES_TEAM, "role")}]}
        self._granting(caller, [username], lambda: self._call(caller, "/team/new", body))

    @rule(data=st.data())
    def new_user(self, data):
        caller = self.principal(data)
        teams, organizations, _, _ = _ids()
        self.made += 1
        username = f"u{self.made}"
        body = {"user_id": username}
        role = self.one_of(data, USER_ROLES, "user_role")
        if role:
            body["user_role"] = role
        if data.draw(st.booleans(), label="in an organization"):
            body["organizations"] = [self.one_of(data, organizations, "organization")]
        if data.draw(st.booleans(), label="in a team"):
            body["teams"] = [{"team_id": self.one_of(data, teams, "team"), "role": "admin"}]
        response = self._granting(caller, [username], lambda: self._call(caller, "/user/new", body))
        if response.status_code == 200 and response.json().get("key"):
            raw = response.json()["key"]
            self._assert_within(caller, raw, "a new user's first key")
            self._adopt(caller, raw)

    @rule(data=st.data())
    def update_user(self, data):
        caller = self.principal(data)
        username = self.one_of(data, _ids()[2], "user")
        body = {"user_id": username}
        if data.draw(st.booleans(), label="role"):
            body["user_role"] = self.one_of(data, USER_ROLES[:-1], "user_role")
        else:
            body["max_budget"] = data.draw(st.sampled_from([None, 1, 1000]), label="max_budget")
        self._granting(caller, [username], lambda: self._call(caller, "/user/update", body))

    def _assert_member_limits_within_team(self, caller: str, team_id: str, username: str, given: dict) -> None:
        """The limits a caller other than the proxy admin gave a member are within the team's."""
        from apps.keys.context import MASTER_KEY_CONTEXT
        from apps.teams.models import TeamMembership

        if caller == "proxy" or _is_proxy_admin_key(self.principals[caller]):
            return
        membership = TeamMembership.objects.select_related("team__organization").get(
            team_id=team_id, user__username=username)
        team = membership.team
        for field, bounds in (("max_budget", (team.team_member_budget, team.max_budget)),
                              ("rpm_limit", (team.team_member_rpm_limit, team.rpm_limit)),
                              ("tpm_limit", (team.team_member_tpm_limit, team.tpm_limit))):
            value = getattr(membership, field)
            if field in given and value is not None:
                ceiling = min((b for b in bounds if b is not None), default=None)
                assert ceiling is None or value <= ceiling, f"{caller} gave {username} {field}={value} > {ceiling}"
        allowed = team.models or team.organization.models
        if allowed and "models" in given:
            level = replace(MASTER_KEY_CONTEXT, is_master=False, allowed_models=(frozenset(allowed),))
            assert all(level.may_use_model(m) for m in membership.models), (
                f"{caller} gave {username} models {membership.models} beyond the team's {allowed}")

    @rule(data=st.data())
    def set_member_limits(self, data):
        from apps.teams.models import TeamMembership

        caller = self.principal(data)
        team_id = self.one_of(data, _teams_with_member_bounds_first(), "team")
        # One of the team's members (anyone else is a 404).
        members = sorted(TeamMembership.objects.filter(team_id=team_id).values_list("user__username", flat=True))
        username = self.one_of(data, members or ["nobody"], "member")
        body = {"team_id": team_id, "user_id": username}
        given = {}
        # Values beyond research's bounds first: hypothesis tries the first ones most.
        for name, field, values in (("max_budget_in_team", "max_budget", [1000, 1]),
                                    ("rpm_limit", "rpm_limit", [100_000, 5]),
                                    ("models", "models", [["gpt-c"], ["gpt-z"], ["gpt-a"]])):
            if data.draw(st.booleans(), label=f"set {name}"):
                body[name] = given[field] = self.one_of(data, values, name)
        response = self._granting(caller, [username], lambda: self._call(caller, "/team/member_update", body))
        if response.status_code == 200:
            self._assert_member_limits_within_team(caller, team_id, username, given)

    @rule(data=st.data())
    def add_member_with_limits(self, data):
        caller = self.principal(data)
        team_id = self.one_of(data, _teams_with_member_bounds_first(), "team")
        username = self.one_of(data, ["newcomer", *_ids()[2]], "user")
        member = {"user_id": username, "role": self.one_of(data, ROLES_TEAM, "role")}
        body = {"team_id": team_id, "member": [member]}
        given = {}
        if data.draw(st.booleans(), label="member models"):
            member["models"] = given["models"] = self.one_of(data, [["gpt-c"], ["gpt-z"], ["gpt-a"]], "models")
        if data.draw(st.booleans(), label="budget in team"):
            body["max_budget_in_team"] = given["max_budget"] = self.one_of(data, [1000, 1], "budget")
        response = self._granting(caller, [username], lambda: self._call(caller, "/team/member_add", body))
        if response.status_code == 200:
            self._assert_member_limits_within_team(caller, team_id, username, given)

    @rule(data=st.data())
    def add_team_models(self, data):
        from apps.teams.models import Team

        caller = self.principal(data)
        team_id = self.one_of(data, _teams_with_member_bounds_first(), "team")
        models = self.one_of(data, [["gpt-z"], ["gpt-c"], ["gpt-a"]], "models")
        response = self._call(caller, "/team/model/add", {"team_id": team_id, "models": models})
        if response.status_code == 200 and caller != "proxy" and not _is_proxy_admin_key(self.principals[caller]):
            team = Team.objects.select_related("organization").get(pk=team_id)
            allowed = team.organization.models
            assert not allowed or set(models) <= set(allowed), f"{caller} gave team {team.alias} {models}"

    @invariant()
    def keys_without_a_user_only_read_themselves(self):
        from apps.keys.models import VirtualKey

        ownerless = set(VirtualKey.objects.filter(user__isnull=True).values_list("token_hash", flat=True))
        for raw in self.principals.values():
            if _hash(raw) in ownerless:
                assert self.client.call("GET", "/key/list", {}, raw).status_code == 403


def _teams_with_member_bounds_first() -> list[str]:
    """The teams, research (whose limits bound what its members may be given) first."""
    from apps.teams.models import Team

    return sorted(_ids()[0], key=lambda pk: not Team.objects.filter(pk=pk, alias="research").exists())


def _is_proxy_admin_key(raw: str) -> bool:
    from apps.keys.master import key_grants_proxy_admin
    from apps.keys.models import VirtualKey

    key = VirtualKey.objects.select_related("user").filter(token_hash=_hash(raw)).first()
    return key is not None and key_grants_proxy_admin(key)


def _hash(raw: str) -> str:
    from apps.keys.services import virtual_key_hash

    return virtual_key_hash(raw)


PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "bounded")


@pytest.mark.django_db
@pytest.mark.timeout(0 if PROFILE == "long" else 300)
def test_no_sequence_of_calls_yields_more_rights_than_the_caller_holds():
    run_state_machine_as_test(ManagementCalls, settings=settings.get_profile(PROFILE))
