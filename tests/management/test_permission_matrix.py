"""Every cell of the permission matrix (tests/management/matrix.py, docs/permissions.md), then
the edges of each role's scope: what lies just outside it is 403, lists show only what is in it."""

import re
from decimal import Decimal
from pathlib import Path

import pytest

from apps.management.urls import api_urlpatterns
from tests.management.conftest import assert_error
from tests.management.matrix import ALIASES, DENIED, MATRIX, ROLES, render_markdown

pytestmark = pytest.mark.django_db

DOCS = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"


def _target_key(world, role) -> str:
    """The key each role acts on: its own for a member, viewer or plain key; the member's (in
    the team or organization they administer) for the admins."""
    name = {"viewer": "viewer", "plain_key": "plain"}.get(role, "member")
    return world.key(name).token_hash


def _target_user(role) -> str:
    return {"viewer": "viewer"}.get(role, "member")


# One request per endpoint, aimed at what the role should be able to reach if allowed at all.
LANGFUSE_CALLBACK = {"callback_name": "langfuse", "callback_type": "success",
                     "callback_vars": {"langfuse_public_key": "pk-lf-1", "langfuse_secret_key": "sk-lf-1",
                                       "langfuse_host": "https://cloud.langfuse.com"}}


def _with_callback(world, body):
    """The research team with a Langfuse callback (set by the proxy admin), and `body`."""
    from apps.teams.services import team_logging_callback_set

    team_logging_callback_set(team=world.research, entry={**LANGFUSE_CALLBACK, "trusted": True})
    return body


REQUESTS = {
    "POST /key/generate": lambda w, r: {"team_id": str(w.research.pk), "key_alias": "new"},
    "POST /key/update": lambda w, r: {"key": _target_key(w, r), "key_alias": "renamed"},
    "POST /key/delete": lambda w, r: {"keys": [_target_key(w, r)]},
    "GET /key/info": lambda w, r: {"key": _target_key(w, r)},
    "GET /key/list": lambda w, r: {},
    "POST /key/regenerate": lambda w, r: {"key": _target_key(w, r)},
    "POST /key/block": lambda w, r: {"key": _target_key(w, r)},
    "POST /key/unblock": lambda w, r: {"key": _target_key(w, r)},
    "POST /key/bulk_update": lambda w, r: {"keys": [{"key": _target_key(w, r), "key_alias": "renamed"}]},
    "POST /key/service-account/generate": lambda w, r: {"team_id": str(w.research.pk), "key_alias": "svc"},
    "POST /key/health": lambda w, r: {},
    "POST /team/new": lambda w, r: {"team_alias": "new-team", "organization_id": str(w.acme.pk)},
    "POST /team/update": lambda w, r: {"team_id": str(w.research.pk), "team_alias": "renamed"},
    "POST /team/delete": lambda w, r: {"team_ids": [str(w.research.pk)]},
    "GET /team/info": lambda w, r: {"team_id": str(w.research.pk)},
    "GET /team/list": lambda w, r: {},
    "POST /team/member_add": lambda w, r: {
        "team_id": str(w.research.pk),
        "member": {"user_id": "newbie", "role": "user"},
    },
    "POST /team/member_delete": lambda w, r: {"team_id": str(w.research.pk), "user_id": "member"},
    "POST /team/member_update": lambda w, r: {"team_id": str(w.research.pk), "user_id": "member", "role": "admin"},
    "POST /team/block": lambda w, r: {"team_id": str(w.research.pk)},
    "POST /team/unblock": lambda w, r: {"team_id": str(w.research.pk)},
    "POST /team/model/add": lambda w, r: {"team_id": str(w.research.pk), "models": ["gpt-api"]},
    "POST /team/model/delete": lambda w, r: {"team_id": str(w.research.pk), "models": ["gpt-api"]},
    "GET /team/permissions_list": lambda w, r: {"team_id": str(w.research.pk)},
    "GET /team/{team_id}/callback": lambda w, r: None,
    "POST /team/{team_id}/callback": lambda w, r: LANGFUSE_CALLBACK,
    "DELETE /team/{team_id}/callback": lambda w, r: _with_callback(w, {"callback_name": "langfuse"}),
    "POST /team/{team_id}/disable_logging": lambda w, r: None,
    "POST /user/new": lambda w, r: {"user_id": "newbie", "organizations": [str(w.acme.pk)]},
    "POST /user/update": lambda w, r: {"user_id": "member", "user_alias": "M"},
    "POST /user/bulk_update": lambda w, r: {
        "users": [{"user_id": "accountant", "user_role": "internal_user_viewer"}],
    },
    "POST /user/delete": lambda w, r: {"user_ids": ["member"]},
    "GET /user/daily/activity": lambda w, r: {"start_date": "2025-01-01", "end_date": "2025-01-31"},
    "GET /user/info": lambda w, r: {"user_id": _target_user(r)},
    "GET /user/list": lambda w, r: {},
    "POST /organization/new": lambda w, r: {"organization_alias": "Initech"},
    "POST /organization/update": lambda w, r: {
        "organization_id": str(w.acme.pk),
        "organization_alias": "Acme 2",
    },
    "PATCH /organization/update": lambda w, r: {
        "organization_id": str(w.acme.pk),
        "organization_alias": "Acme 2",
    },
    "POST /organization/delete": lambda w, r: {"organization_ids": [str(w.acme.pk)]},
    "DELETE /organization/delete": lambda w, r: {"organization_ids": [str(w.acme.pk)]},
    "GET /audit/logs": lambda w, r: {},
    "GET /organization/info": lambda w, r: {"organization_id": str(w.acme.pk)},
    "POST /organization/info": lambda w, r: {"organizations": [str(w.acme.pk)]},
    "GET /organization/list": lambda w, r: {},
    "POST /organization/member_add": lambda w, r: {
        "organization_id": str(w.acme.pk),
        "member": {"user_id": "newbie", "role": "internal_user"},
    },
    "POST /organization/member_update": lambda w, r: {
        "organization_id": str(w.acme.pk), "user_id": "accountant", "role": "internal_user_viewer",
    },
    "PATCH /organization/member_update": lambda w, r: {
        "organization_id": str(w.acme.pk), "user_id": "accountant", "role": "internal_user_viewer",
    },
    "DELETE /organization/member_delete": lambda w, r: {
        "organization_id": str(w.acme.pk),
        "user_id": "accountant",
    },
    "POST /organization/member_delete": lambda w, r: {
        "organization_id": str(w.acme.pk),
        "user_id": "accountant",
    },
    "POST /model/new": lambda w, r: {
        "model_name": "gpt-new",
        "litellm_params": {"model": "openai/gpt-4o-mini", "api_key": "sk-x"},
    },
    "POST /model/update": lambda w, r: {"model_id": "api-model", "litellm_params": {"rpm": 10}},
    "POST /model/delete": lambda w, r: {"id": "api-model"},
    "GET /model/info": lambda w, r: {},
    "GET /v2/model/info": lambda w, r: {},
    "GET /model_group/info": lambda w, r: {},
    # End users and budgets of Acme (the `customers` fixture), named by organization_id.
    "POST /customer/new": lambda w, r: {"user_id": "new-customer", "organization_id": str(w.acme.pk)},
    "POST /customer/update": lambda w, r: {"user_id": "customer", "alias": "C", "organization_id": str(w.acme.pk)},
    "POST /customer/delete": lambda w, r: {"user_ids": ["customer"], "organization_id": str(w.acme.pk)},
    "GET /customer/info": lambda w, r: {"end_user_id": "customer", "organization_id": str(w.acme.pk)},
    "GET /customer/list": lambda w, r: {},
    "POST /customer/block": lambda w, r: {"user_ids": ["customer"], "organization_id": str(w.acme.pk)},
    "POST /customer/unblock": lambda w, r: {"user_ids": ["customer"], "organization_id": str(w.acme.pk)},
    "POST /budget/new": lambda w, r: {"budget_id": "new-tier", "rpm_limit": 5, "organization_id": str(w.acme.pk)},
    "POST /budget/update": lambda w, r: {"budget_id": "tier", "rpm_limit": 6, "organization_id": str(w.acme.pk)},
    "POST /budget/delete": lambda w, r: {"id": "tier", "organization_id": str(w.acme.pk)},
    "POST /budget/info": lambda w, r: {"budgets": ["tier"], "organization_id": str(w.acme.pk)},
    "GET /budget/list": lambda w, r: {},
    "GET /budget/settings": lambda w, r: {"budget_id": "tier", "organization_id": str(w.acme.pk)},
    # Every role reaches the spend routes (each sees its own scope); the team filter names the
    # team each of them belongs to (the plain key's own team).
    "GET /spend/logs": lambda w, r: {"team_id": str(w.research.pk)},
    "GET /spend/report": lambda w, r: {"start_date": "2025-01-01", "end_date": "2025-01-31"},
    "GET /global/spend": lambda w, r: {},
    "GET /global/spend/report": lambda w, r: {"start_date": "2025-01-01", "end_date": "2025-01-31"},
    "GET /global/spend/teams": lambda w, r: {},
    "POST /global/spend/reset": lambda w, r: None,
    "GET /global/spend/logs": lambda w, r: {"api_key": _target_key(w, r)},
    "GET /global/spend/keys": lambda w, r: {"limit": 5},
    "GET /global/spend/models": lambda w, r: {},
    "GET /global/spend/tags": lambda w, r: {"start_date": "2025-01-01", "end_date": "2025-01-31", "tags": "a,b"},
    "GET /spend/tags": lambda w, r: {},
    # The shared API-made model (priced by its own prices): every role may price it.
    "POST /spend/calculate": lambda w, r: {"model": "gpt-api", "messages": [{"role": "user", "content": "hi"}]},
}

# Routes whose allowed callers get another answer than 200.
ALLOWED_STATUS: dict[str, int] = {}

CELLS = [(endpoint, role, cell) for endpoint, cells in MATRIX.items() for role, cell in zip(ROLES, cells)]


@pytest.fixture
def api_model(db):
    from apps.providers.models import ModelDeployment

    return ModelDeployment.objects.create(
        model_name="gpt-api", provider="openai", upstream_model="gpt-4o-mini", config_id="api-model",
        input_cost_per_token=Decimal("0.00000015"), output_cost_per_token=Decimal("0.0000006"),
    )


@pytest.fixture
def customers(world):
    """An end user of Acme with a budget of Acme."""
    from apps.customers.services import budget_create, end_user_create

    tier = budget_create(organization=world.acme, budget_id="tier", max_budget=10)
    return end_user_create(organization=world.acme, user_id="customer", budget=tier)


@pytest.mark.parametrize("endpoint, role, cell", CELLS, ids=[f"{e.split()[1]}-{r}" for e, r, _ in CELLS])
def test_permission_cell(api, world, api_model, customers, endpoint, role, cell):
    method, path = endpoint.split()
    path = path.replace("{team_id}", str(world.research.pk))
    response = api(method, path, REQUESTS[endpoint](world, role), key=world.credentials[role])
    if cell == DENIED:
        assert_error(response, 403, code="permission_denied")
    else:
        assert response.status_code == ALLOWED_STATUS.get(endpoint, 200), response.content


def test_the_matrix_covers_every_route_and_every_role():
    # A path variable (<str:team_id>) is written {team_id} in the matrix.
    views = {"/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(p.pattern)): p.callback.view_class
             for p in api_urlpatterns}
    for alias, target in ALIASES.items():
        assert views.pop(alias) is views[target], alias
    assert set(views) == {endpoint.split()[1] for endpoint in MATRIX}
    assert set(REQUESTS) == set(MATRIX)
    assert all(len(cells) == len(ROLES) for cells in MATRIX.values())


def test_docs_permissions_md_carries_the_matrix():
    assert render_markdown() in DOCS.read_text(), (
        "docs/permissions.md is out of date: paste `python -m tests.management.matrix` into it"
    )


# --- the edges of each scope ---------------------------------------------------------------


def test_an_org_admin_reaches_nothing_of_another_organization(api, world):
    key = world.credentials["org_admin"]
    assert_error(api.get("/team/info", {"team_id": str(world.sales.pk)}, key=key), 403, param="team_id")
    assert_error(api.get("/key/info", {"key": world.key("outsider").token_hash}, key=key), 403, param="key")
    assert_error(api.get("/organization/info", {"organization_id": str(world.globex.pk)}, key=key), 403)
    assert_error(
        api.post("/team/new", {"team_alias": "x", "organization_id": str(world.globex.pk)}, key=key),
        403,
        param="organization_id",
    )
    assert_error(api.post("/key/generate", {"team_id": str(world.sales.pk)}, key=key), 403, param="team_id")
    assert_error(api.post("/user/update", {"user_id": "outsider", "max_budget": 1}, key=key), 403)
    assert_error(
        api.post("/user/new", {"user_id": "x", "organizations": [str(world.globex.pk)]}, key=key),
        403,
        param="organizations",
    )


def test_an_org_admin_may_not_raise_its_own_organizations_limits(api, world):
    response = api.post(
        "/organization/update",
        {"organization_id": str(world.acme.pk), "max_budget": 1000},
        key=world.credentials["org_admin"],
    )
    assert_error(response, 403, param="max_budget")


def test_an_org_admin_manages_a_user_only_while_the_user_belongs_to_no_other_organization(api, world):
    from apps.keys.services import virtual_key_create
    from apps.teams.services import team_member_add

    key = world.credentials["org_admin"]
    personal, _ = virtual_key_create(user=world.users["accountant"], alias="personal")
    assert api.post("/key/update", {"key": personal.token_hash, "max_budget": 3}, key=key).status_code == 200
    assert api.post("/user/update", {"user_id": "accountant", "max_budget": 3}, key=key).status_code == 200

    team_member_add(team=world.sales, user=world.users["accountant"])  # now also in Globex
    assert_error(api.post("/key/update", {"key": personal.token_hash, "max_budget": 4}, key=key), 403)
    assert_error(api.post("/user/update", {"user_id": "accountant", "max_budget": 4}, key=key), 403)
    assert_error(api.post("/user/delete", {"user_ids": ["accountant"]}, key=key), 403, param="user_id")
    assert api.get("/user/info", {"user_id": "accountant"}, key=key).status_code == 200  # still in Acme


def test_a_team_admin_changes_its_teams_name_but_not_its_limits(api, world):
    key = world.credentials["team_admin"]
    team_id = str(world.research.pk)
    for field, value in (("max_budget", 10), ("rpm_limit", 5), ("models", ["gpt-a"]), ("blocked", True)):
        assert_error(api.post("/team/update", {"team_id": team_id, field: value}, key=key), 403, param=field)
    response = api.post(
        "/team/update", {"team_id": team_id, "team_alias": "lab", "metadata": {"a": 1}}, key=key
    )
    assert response.status_code == 200
    assert (response.json()["team_alias"], response.json()["metadata"]) == ("lab", {"a": 1})


def test_a_team_admin_reaches_nothing_outside_its_team(api, world):
    key = world.credentials["team_admin"]
    assert_error(api.get("/team/info", {"team_id": str(world.sales.pk)}, key=key), 403)
    assert_error(api.get("/key/info", {"key": world.key("orgadmin").token_hash}, key=key), 403)
    assert_error(
        api.post("/key/generate", {"team_id": str(world.research.pk), "user_id": "outsider"}, key=key),
        403,
        param="user_id",
    )
    # Named without a team, a member's key lands in the team the caller's key belongs to.
    response = api.post("/key/generate", {"user_id": "member"}, key=key)
    assert (response.status_code, response.json()["team_id"]) == (200, str(world.research.pk))
    assert_error(api.post("/key/generate", {"user_id": "accountant"}, key=key), 403, param="user_id")
    assert_error(api.get("/user/info", {"user_id": "outsider"}, key=key), 403)
    assert_error(
        api.post(
            "/key/update", {"key": world.key("member").token_hash, "team_id": str(world.sales.pk)}, key=key
        ),
        403,
        param="team_id",
    )


def test_a_member_changes_only_the_name_and_metadata_of_its_own_keys(api, world):
    key = world.credentials["member"]
    own = world.key("member").token_hash
    for field, value in (
        ("max_budget", 10),
        ("models", ["gpt-a"]),
        ("blocked", False),
        ("duration", "1d"),
        ("user_id", "member"),
        ("team_id", None),
        ("rpm_limit", 1),
        ("model_rpm_limit", {"gpt-a": 100}),
    ):
        assert_error(api.post("/key/update", {"key": own, field: value}, key=key), 403, param=field)
    assert (
        api.post("/key/update", {"key": own, "key_alias": "mine", "metadata": {"x": 1}}, key=key).status_code
        == 200
    )
    assert_error(api.get("/key/info", {"key": world.key("teamadmin").token_hash}, key=key), 403, param="key")
    assert_error(api.post("/key/delete", {"keys": [world.key("viewer").token_hash]}, key=key), 403)


def test_a_member_creates_keys_only_for_itself_and_in_its_own_teams(api, world):
    key = world.credentials["member"]
    assert_error(api.post("/key/generate", {"user_id": "viewer"}, key=key), 403, param="user_id")
    assert_error(api.post("/key/generate", {"team_id": str(world.sales.pk)}, key=key), 403, param="team_id")
    assert_error(
        api.post("/key/generate", {"organization_id": str(world.acme.pk)}, key=key),
        403,
        param="organization_id",
    )
    # A key made through a team key stays in that team, and so under the team's limits.
    response = api.post("/key/generate", {"key_alias": "mine"}, key=key)
    assert response.status_code == 200
    assert (response.json()["user_id"], response.json()["team_id"], response.json()["organization_id"]) == (
        "member", str(world.research.pk), str(world.acme.pk))


def test_a_viewer_only_reads(api, world):
    key = world.credentials["viewer"]
    own = world.key("viewer").token_hash
    assert api.get("/key/info", {"key": own}, key=key).status_code == 200
    assert_error(api.post("/key/generate", {}, key=key), 403)
    assert_error(api.post("/key/update", {"key": own, "key_alias": "x"}, key=key), 403)
    assert_error(api.post("/key/delete", {"keys": [own]}, key=key), 403)


def test_a_plain_key_reads_only_itself(api, world):
    key = world.credentials["plain_key"]
    response = api.get("/key/info", key=key)
    assert response.status_code == 200
    assert response.json()["key"] == world.key("plain").token_hash
    assert_error(api.get("/key/info", {"key": world.key("member").token_hash}, key=key), 403)
    assert_error(api.get("/user/info", key=key), 403)


def test_unknown_ids_are_404_for_everyone(api, world):
    for role in ("proxy_admin", "member"):
        key = world.credentials[role]
        assert_error(api.get("/key/info", {"key": "sk-nope"}, key=key), 404, param="key")
        assert_error(
            api.get("/team/info", {"team_id": "00000000-0000-0000-0000-000000000000"}, key=key),
            404,
            param="team_id",
        )
        assert_error(api.get("/team/info", {"team_id": "not-a-uuid"}, key=key), 404, param="team_id")


# --- lists show only the caller's scope ---------------------------------------------------


def _listed_keys(api, key) -> set[str]:
    return set(api.get("/key/list", {"size": 100}, key=key).json()["keys"])


def test_key_list_is_scoped(api, world):
    hashes = {name: world.key(name).token_hash for name in world.keys}
    research = {hashes[n] for n in ("teamadmin", "member", "viewer", "plain")}
    assert _listed_keys(api, world.credentials["proxy_admin"]) == set(hashes.values())
    assert _listed_keys(api, world.credentials["org_admin"]) == research | {hashes["orgadmin"]}
    assert _listed_keys(api, world.credentials["team_admin"]) == research
    assert _listed_keys(api, world.credentials["member"]) == {hashes["member"]}
    assert _listed_keys(api, world.credentials["viewer"]) == {hashes["viewer"]}


def test_team_user_and_organization_lists_are_scoped(api, world):
    def teams(role):
        return {t["team_alias"] for t in api.get("/team/list", key=world.credentials[role]).json()}

    def users(role):
        return {u["user_id"] for u in api.get("/user/list", key=world.credentials[role]).json()["users"]}

    def organizations(role):
        return {
            o["organization_alias"] for o in api.get("/organization/list", key=world.credentials[role]).json()
        }

    assert teams("proxy_admin") == {"research", "sales"}
    assert teams("org_admin") == teams("member") == {"research"}
    assert users("org_admin") == {"orgadmin", "accountant", "teamadmin", "member", "viewer"}
    assert users("team_admin") == {"teamadmin", "member", "viewer"}
    assert users("member") == {"member"}
    assert organizations("proxy_admin") == {"Acme", "Globex"}
    assert organizations("org_admin") == {"Acme"}
    assert organizations("member") == set()


def test_model_info_shows_non_admins_the_models_their_teams_allow(api, world, make_deployment_row):
    from apps.teams.services import team_update

    make_deployment_row("gpt-a")
    make_deployment_row("gpt-b")
    team_update(team=world.research, models=["gpt-a"])

    def names(role):
        return {m["model_name"] for m in api.get("/model/info", key=world.credentials[role]).json()["data"]}

    assert names("proxy_admin") == names("org_admin") == {"gpt-a", "gpt-b"}
    assert names("member") == names("viewer") == {"gpt-a"}
    other = make_deployment_row("gpt-b", config_id="b-1")
    assert_error(
        api.get("/model/info", {"litellm_model_id": other.config_id}, key=world.credentials["member"]),
        403,
        param="litellm_model_id",
    )


def test_an_org_admin_sets_no_passwords_and_leaves_staff_users_alone(api, world):
    key = world.credentials["org_admin"]
    assert_error(
        api.post("/user/update", {"user_id": "accountant", "password": "a-long-password"}, key=key),
        403,
        param="password",
    )
    accountant = world.users["accountant"]
    accountant.is_staff = True
    accountant.save()
    assert_error(
        api.post("/user/update", {"user_id": "accountant", "max_budget": 1}, key=key), 403, param="user_id"
    )
    assert_error(api.post("/user/delete", {"user_ids": ["accountant"]}, key=key), 403, param="user_id")
