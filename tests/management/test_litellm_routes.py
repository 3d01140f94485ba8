"""LiteLLM's routes beyond the first set: /team/member_update, /team/block and /team/unblock,
/key/bulk_update, /v2/model/info and /model_group/info (each through the one permission rule;
every cell is in the matrix, the edges are here)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from apps.keys.models import VirtualKey
from apps.teams.models import Team, TeamMembership
from tests.management.conftest import assert_error

pytestmark = pytest.mark.django_db


# --- /team/member_update ----------------------------------------------------------------------


def _role(world, username):
    return TeamMembership.objects.get(team=world.research, user__username=username).role


def test_a_team_admin_changes_a_members_role(api, world):
    team_id = str(world.research.pk)
    response = api.post("/team/member_update", {"team_id": team_id, "user_id": "member", "role": "admin"},
                        key=world.credentials["team_admin"])
    assert response.status_code == 200, response.content
    assert response.json() == {"team_id": team_id, "user_id": "member", "user_email": "member@example.com",
                               "role": "admin", "max_budget_in_team": None, "rpm_limit": None, "tpm_limit": None,
                               "models": []}
    assert _role(world, "member") == "admin"
    by_email = api.post("/team/member_update", {"team_id": team_id, "user_email": "viewer@example.com",
                                                "role": "user", "max_budget_in_team": None})
    assert by_email.status_code == 200 and _role(world, "viewer") == "member"


def test_member_update_refusals(api, world):
    team_id = str(world.research.pk)
    assert_error(api.post("/team/member_update", {"team_id": team_id, "user_id": "accountant", "role": "user"}),
                 404, param="user_id")  # not a member
    assert_error(api.post("/team/member_update", {"team_id": team_id, "user_id": "nobody"}), 404, param="user_id")
    assert_error(api.post("/team/member_update", {"team_id": team_id, "user_id": "viewer", "role": "admin"},
                          key=world.credentials["member"]), 403, param="team_id")
    assert_error(api.post("/team/member_update", {"team_id": str(world.sales.pk), "user_id": "outsider",
                                                  "role": "admin"}, key=world.credentials["org_admin"]), 403)
    assert _role(world, "viewer") == "viewer"


def test_a_team_admin_may_not_promote_a_member_it_could_not_have_added(api, world):
    from apps.teams.services import team_member_add

    team_member_add(team=world.research, user=world.users["outsider"])  # also in Globex
    assert_error(api.post("/team/member_update", {"team_id": str(world.research.pk), "user_id": "outsider",
                                                  "role": "admin"}, key=world.credentials["team_admin"]),
                 403, param="user_id")
    assert _role(world, "outsider") == "member"


# --- /team/block, /team/unblock -------------------------------------------------------------


def test_org_admins_block_and_unblock_teams_team_admins_may_not(api, world):
    team_id = str(world.research.pk)
    assert_error(api.post("/team/block", {"team_id": team_id}, key=world.credentials["team_admin"]),
                 403, param="team_id")
    response = api.post("/team/block", {"team_id": team_id}, key=world.credentials["org_admin"])
    assert response.status_code == 200 and response.json()["blocked"] is True
    assert Team.objects.get(pk=world.research.pk).blocked
    assert_error(api.post("/team/unblock", {"team_id": team_id}, key=world.credentials["team_admin"]), 403)
    assert api.post("/team/unblock", {"team_id": team_id}).json()["blocked"] is False
    assert_error(api.post("/team/block", {"team_id": "00000000-0000-0000-0000-000000000000"}), 404, param="team_id")


# --- /key/bulk_update -----------------------------------------------------------------------


def _key(token_hash):
    return VirtualKey.objects.get(token_hash=token_hash)


def test_bulk_update_changes_every_key_and_answers_litellms_shape(api, world):
    member, viewer = world.key("member").token_hash, world.key("viewer").token_hash
    response = api.post("/key/bulk_update", {"keys": [
        {"key": member, "max_budget": 5, "key_alias": "m"},
        {"key": viewer, "metadata": {"x": 1}, "tags": None},
    ]}, key=world.credentials["team_admin"])
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["total_requested"] == 2 and body["failed_updates"] == []
    assert [u["key"] for u in body["successful_updates"]] == [member, viewer]
    assert body["successful_updates"][0]["key_info"]["max_budget"] == 5
    assert _key(member).max_budget == Decimal(5) and _key(viewer).metadata == {"x": 1}


@pytest.mark.parametrize(
    "second, status, param, code",
    [
        ({"key": "VIEWER", "policies": ["g"]}, 400, "keys[1].policies", "unsupported_field"),
        ({"key": "VIEWER", "max_budge": 9}, 400, "keys[1].max_budge", "unknown_field"),
        ({"key": "VIEWER", "max_budget": -1}, 400, "keys[1].max_budget", "invalid_request"),
        ({"key": "sk-nope"}, 404, "keys[1].key", "not_found"),
        ({"key": "MEMBER", "key_alias": "again"}, 400, "keys[1].key", "invalid_request"),  # the same key twice
        ({"max_budget": 1}, 400, "keys[1].key", "invalid_request"),
        ("not an object", 400, "keys[1]", "invalid_request"),
    ],
)
def test_bulk_update_is_all_or_nothing(api, world, second, status, param, code):
    member, viewer = world.key("member").token_hash, world.key("viewer").token_hash
    if isinstance(second, dict) and "key" in second:
        second = {**second, "key": {"VIEWER": viewer, "MEMBER": member}.get(second["key"], second["key"])}
    response = api.post("/key/bulk_update", {"keys": [{"key": member, "key_alias": "changed"}, second]})
    assert_error(response, status, param=param, code=code)
    assert _key(member).alias == "member-key"  # the first item did not happen either


def test_each_item_is_held_to_key_updates_rule(api, world):
    from apps.keys.services import virtual_key_create

    own, _ = virtual_key_create(alias="second", team=world.research, user=world.users["member"])
    member = world.key("member").token_hash
    response = api.post("/key/bulk_update", {"keys": [
        {"key": member, "key_alias": "renamed"},  # a member renames its own key
        {"key": own.token_hash, "max_budget": 100},  # but does not raise its limits
    ]}, key=world.credentials["member"])
    assert_error(response, 403, param="keys[1].max_budget", code="permission_denied")
    assert_error(api.post("/key/bulk_update", {"keys": [{"key": world.key("viewer").token_hash, "key_alias": "x"}]},
                          key=world.credentials["member"]), 403, param="keys[0].key")
    assert _key(member).alias == "member-key" and _key(own.token_hash).max_budget is None


def test_a_refused_item_also_undoes_a_user_an_earlier_item_made(api, world):
    member = world.key("member").token_hash
    response = api.post("/key/bulk_update", {"keys": [
        {"key": world.key("orgadmin").token_hash, "user_id": "brand-new-user"},
        {"key": member, "max_budget": -1},
    ]})
    assert_error(response, 400, param="keys[1].max_budget")
    assert not get_user_model().objects.filter(username="brand-new-user").exists()
    assert _key(world.key("orgadmin").token_hash).user.username == "orgadmin"


# --- /v2/model/info, /model_group/info ------------------------------------------------------


@pytest.fixture
def catalog_models(make_deployment_row):
    from apps.spend.models import ModelPrice

    ModelPrice.objects.create(
        model_key="acme-vision-1", litellm_provider="openai", mode="chat",
        effective_from=timezone.now() - timedelta(seconds=5),
        input_cost_per_token=Decimal("0.0000025"), output_cost_per_token=Decimal("0.00001"),
        max_input_tokens=128000, max_output_tokens=16384,
        extra={"supports_vision": True, "supports_function_calling": True},
    )
    make_deployment_row("gpt-a", upstream_model="acme-vision-1", api_base="https://internal.example/v1", rpm=10, tpm=1000)
    make_deployment_row("gpt-a", provider="anthropic", upstream_model="claude-x", rpm=5, tpm=500,
                        max_input_tokens=200000)
    make_deployment_row("gpt-b", upstream_model="gpt-b-upstream")


def test_model_group_info_answers_litellms_shape_for_what_the_key_may_use(api, world, catalog_models, make_key):
    _, raw = make_key(team=world.research, user=world.users["member"], models=["gpt-a"])
    groups = api.get("/model_group/info", key=raw).json()["data"]
    assert [g["model_group"] for g in groups] == ["gpt-a"]
    group = groups[0]
    assert group["providers"] == ["anthropic", "openai"]
    assert (group["max_input_tokens"], group["max_output_tokens"]) == (200000, 16384)
    assert (group["input_cost_per_token"], group["output_cost_per_token"]) == (0.0000025, 0.00001)
    assert (group["mode"], group["rpm"], group["tpm"]) == ("chat", 15, 1500)
    assert group["supports_vision"] is True and group["supports_function_calling"] is True
    assert group["supports_reasoning"] is False
    assert "temperature" in group["supported_openai_params"] and "model" not in group["supported_openai_params"]
    assert "sk-upstream-secret" not in str(groups)

    everything = api.get("/model_group/info").json()["data"]  # the proxy admin
    assert {g["model_group"] for g in everything} == {"gpt-a", "gpt-b"}
    assert api.get("/model_group/info", {"model_group": "gpt-b"}).json()["data"][0]["supports_vision"] is False


def test_v2_model_info_pages_the_deployments_with_the_catalogs_model_info(api, world, catalog_models, make_key):
    _, raw = make_key(team=world.research, user=world.users["member"], models=["gpt-a"])
    body = api.get("/v2/model/info", {"size": 1, "page": 2, "sortBy": "model_name"}, key=raw).json()
    assert (body["total_count"], body["current_page"], body["total_pages"], body["size"]) == (2, 2, 2, 1)
    assert len(body["data"]) == 1
    rows = api.get("/v2/model/info", key=raw).json()["data"]
    openai_row = next(r for r in rows if r["litellm_params"]["model"] == "openai/acme-vision-1")
    info = openai_row["model_info"]
    assert (info["max_input_tokens"], info["max_output_tokens"], info["supports_vision"]) == (128000, 16384, True)
    assert info["litellm_provider"] == "openai" and info["mode"] == "chat"
    # Secrets to no one; where a deployment lives to the proxy admin only.
    assert "sk-upstream-secret" not in str(rows) and "internal.example" not in str(rows)
    admin_rows = api.get("/v2/model/info", {"model": "gpt-a"}).json()["data"]
    assert "internal.example" in str(admin_rows) and "sk-upstream-secret" not in str(admin_rows)
    assert api.get("/v2/model/info", {"search": "GPT-B"}).json()["total_count"] == 1


def test_a_plain_key_and_the_teams_models_limit_what_is_listed(api, world, catalog_models):
    from apps.teams.services import team_update

    team_update(team=world.research, models=["gpt-b"])
    # The plain key belongs to research (and no user): it sees what it may use, like on /v1.
    plain = api.get("/model_group/info", key=world.credentials["plain_key"]).json()["data"]
    assert [g["model_group"] for g in plain] == ["gpt-b"]
    outsider = api.get("/model_group/info", key=world.credentials["outsider"]).json()["data"]
    assert {g["model_group"] for g in outsider} == {"gpt-a", "gpt-b"}  # sales has no model limit


# --- a member's own limits in a team (max_budget_in_team, rpm/tpm, models) ------------------------


def _bounded_research(world):
    world.acme.models = ["gpt-a", "gpt-b", "gpt-c"]
    world.acme.save()
    world.research.models, world.research.team_member_budget, world.research.rpm_limit = ["gpt-a", "gpt-b"], 10, 100
    world.research.save()
    return str(world.research.pk)


@pytest.mark.parametrize("body, param", [
    ({"max_budget_in_team": 11}, "max_budget_in_team"),  # above team_member_budget
    ({"rpm_limit": 101}, "rpm_limit"),  # above the team's own rpm_limit
    ({"models": ["gpt-c"]}, "models"),  # its organization's, not the team's
])
def test_a_team_admin_gives_members_no_more_than_the_team_holds(api, world, body, param):
    team_id = _bounded_research(world)
    for user_id in ("member", "teamadmin"):  # nor itself
        assert_error(api.post("/team/member_update", {"team_id": team_id, "user_id": user_id, **body},
                              key=world.credentials["team_admin"]), 403, param=param)
    membership = TeamMembership.objects.get(team=world.research, user__username="member")
    assert (membership.max_budget, membership.rpm_limit, membership.models) == (None, None, [])


def test_a_team_admin_sets_member_limits_within_the_team(api, world):
    team_id = _bounded_research(world)
    response = api.post("/team/member_update", {"team_id": team_id, "user_id": "member", "max_budget_in_team": 4,
                                                "rpm_limit": 50, "models": ["gpt-a"]},
                        key=world.credentials["team_admin"])
    assert response.status_code == 200, response.content
    assert (response.json()["max_budget_in_team"], response.json()["models"]) == (4.0, ["gpt-a"])
    added = api.post("/team/member_add", {"team_id": team_id, "max_budget_in_team": 20,
                                          "member": {"user_id": "newbie", "role": "user"}},
                     key=world.credentials["team_admin"])
    assert_error(added, 403, param="max_budget_in_team")
    added = api.post("/team/member_add", {"team_id": team_id,
                                          "member": {"user_id": "newbie", "role": "user", "models": ["gpt-z"]}},
                     key=world.credentials["team_admin"])
    assert_error(added, 403, param="member[0].models")
    # The proxy admin is bound by nothing.
    assert api.post("/team/member_update", {"team_id": team_id, "user_id": "member",
                                            "max_budget_in_team": 1000}).status_code == 200


def test_team_models_are_an_org_admins_within_what_the_organization_allows(api, world):
    team_id = _bounded_research(world)
    assert_error(api.post("/team/model/add", {"team_id": team_id, "models": ["gpt-c"]},
                          key=world.credentials["team_admin"]), 403, param="models")
    assert_error(api.post("/team/model/add", {"team_id": team_id, "models": ["gpt-z"]},
                          key=world.credentials["org_admin"]), 403, param="models")
    added = api.post("/team/model/add", {"team_id": team_id, "models": ["gpt-c"]}, key=world.credentials["org_admin"])
    assert added.status_code == 200 and added.json()["models"] == ["gpt-a", "gpt-b", "gpt-c"]
    assert_error(api.post("/team/update", {"team_id": team_id, "models": ["gpt-z"]},
                          key=world.credentials["org_admin"]), 403, param="models")
    assert_error(api.post("/team/update", {"team_id": team_id, "model_rpm_limit": {"gpt-a": 1}},
                          key=world.credentials["team_admin"]), 403, param="model_rpm_limit")
    deleted = api.post("/team/model/delete", {"team_id": team_id, "models": ["gpt-a"]})
    assert deleted.json()["models"] == ["gpt-b", "gpt-c"]
    assert_error(api.post("/team/model/delete", {"team_id": team_id, "models": ["gpt-b", "gpt-c"]}), 400,
                 param="models")


def test_a_team_found_by_the_team_id_it_was_created_with(api, world):
    created = api.post("/team/new", {"team_id": "my-prod-team", "organization_id": str(world.acme.pk),
                                     "admins": ["member"], "members": [{"user_id": "viewer"}]})
    assert created.status_code == 200, created.content
    body = created.json()
    assert (body["admins"], body["members"]) == (["member"], ["viewer"])
    for path in ("/team/info", "/team/permissions_list"):
        assert api.get(path, {"team_id": "my-prod-team"}).json()["team_id"] == body["team_id"]
    assert_error(api.post("/team/new", {"team_id": "my-prod-team", "organization_id": str(world.acme.pk)}),
                 400, param="team_id")
