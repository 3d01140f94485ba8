"""/team/* and /organization/*: LiteLLM's shapes, 400 naming the field, 404 for unknown ids."""

import uuid

import pytest

from apps.keys.models import VirtualKey
from apps.teams.models import Organization, OrganizationMembership, Team, TeamMembership
from tests.management.conftest import assert_error

pytestmark = pytest.mark.django_db

UNKNOWN = "00000000-0000-0000-0000-000000000000"
LAGO_FIELDS = {"lago_external_customer_id", "lago_external_subscription_id"}
LIMIT_FIELDS = {
    "models",
    "spend",
    "max_budget",
    "soft_budget",
    "budget_duration",
    "budget_reset_at",
    "rpm_limit",
    "tpm_limit",
    "max_parallel_requests",
    "metadata",
    "blocked",
    "created_at",
    "updated_at",
}


# --- teams --------------------------------------------------------------------------------


def test_team_new_with_limits_and_members(api, world):
    team_id = str(uuid.uuid4())
    response = api.post(
        "/team/new",
        {
            "team_alias": "platform",
            "team_id": team_id,
            "organization_id": str(world.acme.pk),
            "models": ["gpt-a"],
            "max_budget": 100,
            "budget_duration": "30d",
            "rpm_limit": 10,
            "tpm_limit": 1000,
            "max_parallel_requests": 3,
            "metadata": {"cost_center": 7},
            "members_with_roles": [{"user_id": "member", "role": "admin"}, {"user_email": "new@example.com"}],
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == ({"team_id", "team_alias", "organization_id", "members_with_roles", "admins", "members",
                          "store_prompts", "team_member_budget", "team_member_budget_duration",
                          "team_member_rpm_limit", "team_member_tpm_limit", "model_rpm_limit", "model_tpm_limit",
                          "model_aliases", "tags", "default_models", "guardrails"} | LIMIT_FIELDS | LAGO_FIELDS)
    assert (body["team_id"], body["team_alias"], body["organization_id"]) == (
        team_id,
        "platform",
        str(world.acme.pk),
    )
    assert (body["models"], body["max_budget"], body["rpm_limit"]) == (["gpt-a"], 100.0, 10)
    roles = {(m["user_id"], m["user_email"], m["role"]) for m in body["members_with_roles"]}
    assert ("member", "member@example.com", "admin") in roles
    assert any(email == "new@example.com" and role == "user" for _, email, role in roles)


def test_an_org_admin_creates_teams_in_its_organization_without_naming_it(api, world):
    response = api.post("/team/new", {"team_alias": "ops"}, key=world.credentials["org_admin"])
    assert response.status_code == 200
    assert response.json()["organization_id"] == str(world.acme.pk)


@pytest.mark.parametrize(
    "body, param, status",
    [
        ({"team_alias": "x", "organization_id": UNKNOWN}, "organization_id", 404),
        ({"team_alias": "research", "organization_id": "ACME"}, "team_alias", 400),  # taken in Acme
        ({"organization_id": "ACME", "max_budget": -5}, "max_budget", 400),
        (
            {"organization_id": "ACME", "members_with_roles": [{"role": "admin"}]},
            "members_with_roles[0].user_id",
            400,
        ),
        (
            {"organization_id": "ACME", "members_with_roles": [{"user_id": "a", "role": "boss"}]},
            "members_with_roles[0].role",
            400,
        ),
        ({"organization_id": "ACME", "team_id": "x" * 201}, "team_id", 400),
        ({"organization_id": "ACME", "models": ["a"], "default_models": ["b"]}, "default_models", 400),
        ({"organization_id": "ACME", "model_rpm_limit": {"gpt": -1}}, "model_rpm_limit.gpt", 400),
        ({"organization_id": "ACME", "team_member_budget": -5}, "team_member_budget", 400),
        ({"organization_id": "ACME", "team_member_budget_duration": "weekly"}, "team_member_budget_duration", 400),
    ],
)
def test_team_new_rejects_invalid_bodies(api, world, body, param, status):
    if body.get("organization_id") == "ACME":
        body = {**body, "organization_id": str(world.acme.pk)}
    assert_error(api.post("/team/new", body), status, param=param)
    assert Team.objects.count() == 2


def test_team_update_delete_and_unknown_ids(api, world):
    team_id = str(world.research.pk)
    response = api.post(
        "/team/update", {"team_id": team_id, "max_budget": 50, "team_alias": "lab", "blocked": True}
    )
    assert response.status_code == 200
    assert (response.json()["max_budget"], response.json()["team_alias"], response.json()["blocked"]) == (
        50.0,
        "lab",
        True,
    )
    assert_error(api.post("/team/update", {"team_id": UNKNOWN, "team_alias": "x"}), 404, param="team_id")
    assert_error(api.post("/team/update", {"team_id": team_id, "rpm_limit": "many"}), 400, param="rpm_limit")
    assert_error(api.post("/team/update", {"team_alias": "x"}), 400, param="team_id")

    assert_error(api.post("/team/delete", {"team_ids": [team_id, UNKNOWN]}), 404, param="team_ids")
    assert Team.objects.filter(pk=team_id).exists()  # nothing deleted when one id is unknown
    response = api.post("/team/delete", {"team_ids": [team_id]})
    assert response.json() == {"deleted_teams": [team_id]}
    assert not Team.objects.filter(pk=team_id).exists()
    assert not VirtualKey.objects.filter(alias="member-key").exists()  # its keys went with it
    assert_error(api.post("/team/delete", {"team_ids": []}), 400, param="team_ids")


def test_moving_a_team_to_another_organization_moves_its_keys(api, world):
    response = api.post(
        "/team/update", {"team_id": str(world.research.pk), "organization_id": str(world.globex.pk)}
    )
    assert response.status_code == 200
    assert set(VirtualKey.objects.filter(team=world.research).values_list("organization_id", flat=True)) == {
        world.globex.pk
    }


def test_team_info_shape(api, world):
    response = api.get("/team/info", {"team_id": str(world.research.pk)})
    body = response.json()
    assert set(body) == {"team_id", "team_info", "keys", "team_memberships"}
    assert body["team_info"]["team_alias"] == "research"
    assert len(body["keys"]) == 4 and all("key" not in k and len(k["token"]) == 64 for k in body["keys"])
    assert {(m["user_id"], m["role"]) for m in body["team_memberships"]} == {
        ("teamadmin", "admin"),
        ("member", "user"),
        ("viewer", "viewer"),
    }
    # A member sees the team, but among its keys only its own.
    keys = api.get("/team/info", {"team_id": str(world.research.pk)}, key=world.credentials["member"]).json()[
        "keys"
    ]
    assert [k["key_alias"] for k in keys] == ["member-key"]
    assert_error(api.get("/team/info", {"team_id": UNKNOWN}), 404, param="team_id")
    assert_error(api.get("/team/info"), 400, param="team_id")


def test_team_list(api, world):
    body = api.get("/team/list").json()
    assert [t["team_alias"] for t in body] == ["research", "sales"]
    assert api.get("/team/list", {"organization_id": str(world.globex.pk)}).json()[0]["team_alias"] == "sales"
    assert api.get("/team/list", {"organization_id": UNKNOWN}).json() == []


def test_team_member_add_one_or_many_and_delete(api, world):
    team_id = str(world.research.pk)
    response = api.post(
        "/team/member_add", {"team_id": team_id, "member": {"user_id": "accountant", "role": "admin"}}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["updated_team_memberships"] == [
        {"user_id": "accountant", "user_email": "accountant@example.com", "team_id": team_id, "role": "admin",
         "spend": 0, "max_budget_in_team": None, "rpm_limit": None, "tpm_limit": None, "models": []}
    ]
    assert body["updated_users"][0]["user_id"] == "accountant"
    response = api.post(
        "/team/member_add",
        {
            "team_id": team_id,
            "member": [{"user_id": "fresh", "role": "user"}, {"user_id": "member", "role": "viewer"}],
        },
    )
    assert response.status_code == 200
    assert TeamMembership.objects.get(team=world.research, user__username="member").role == "viewer"
    assert TeamMembership.objects.filter(team=world.research, user__username="fresh").exists()

    response = api.post("/team/member_delete", {"team_id": team_id, "user_id": "fresh"})
    assert response.status_code == 200
    assert "fresh" not in {m["user_id"] for m in response.json()["members_with_roles"]}
    assert_error(
        api.post("/team/member_delete", {"team_id": team_id, "user_id": "fresh"}), 404, param="user_id"
    )
    assert_error(
        api.post("/team/member_delete", {"team_id": team_id, "user_id": "ghost"}), 404, param="user_id"
    )
    assert_error(
        api.post("/team/member_add", {"team_id": UNKNOWN, "member": {"user_id": "a"}}), 404, param="team_id"
    )
    assert_error(api.post("/team/member_add", {"team_id": team_id, "member": []}), 400, param="member")
    assert_error(
        api.post("/team/member_add", {"team_id": team_id, "member": {"role": "user"}}),
        400,
        param="member[0].user_id",
    )
    assert_error(
        api.post("/team/member_add", {"team_id": team_id, "member": {"user_id": "bad name!"}}),
        400,
        param="member.user_id",
    )


# --- organizations ------------------------------------------------------------------------


def test_organization_new_update_info_list_delete(api, world):
    response = api.post(
        "/organization/new", {"organization_alias": "Initech", "max_budget": 1000, "models": ["gpt-a"]}
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "organization_id", "organization_alias", "members", "teams", "budget_id", "created_by", "updated_by",
    } | LIMIT_FIELDS | LAGO_FIELDS
    assert (body["organization_alias"], body["max_budget"], body["models"]) == ("Initech", 1000.0, ["gpt-a"])
    assert (body["budget_id"], body["created_by"], body["updated_by"]) == (None, "proxy_admin", "proxy_admin")
    organization_id = body["organization_id"]

    response = api.post(
        "/organization/update",
        {"organization_id": organization_id, "rpm_limit": 5, "organization_alias": "Initrode"},
    )
    assert (response.json()["rpm_limit"], response.json()["organization_alias"]) == (5, "Initrode")

    info = api.get("/organization/info", {"organization_id": str(world.acme.pk)}).json()
    assert {(m["user_id"], m["user_role"]) for m in info["members"]} == {
        ("orgadmin", "org_admin"),
        ("accountant", "internal_user"),
    }
    assert [t["team_alias"] for t in info["teams"]] == ["research"]
    assert [o["organization_alias"] for o in api.get("/organization/list").json()] == [
        "Acme",
        "Globex",
        "Initrode",
    ]

    response = api.post("/organization/delete", {"organization_ids": [organization_id]})
    assert response.status_code == 200
    assert response.json()["deleted_organizations"][0]["organization_id"] == organization_id
    assert not Organization.objects.filter(pk=organization_id).exists()


def test_organization_errors(api, world):
    assert_error(api.post("/organization/new", {}), 400, param="organization_alias")
    assert_error(
        api.post("/organization/new", {"organization_alias": "Acme"}), 400, param="organization_alias"
    )
    assert_error(
        api.post("/organization/new", {"organization_alias": "X", "budget_duration": "1y"}),
        400,
        param="budget_duration",
    )
    assert_error(api.post("/organization/update", {"organization_id": UNKNOWN}), 404, param="organization_id")
    assert_error(api.get("/organization/info", {"organization_id": "nope"}), 404, param="organization_id")
    assert_error(
        api.post("/organization/delete", {"organization_ids": [UNKNOWN]}), 404, param="organization_ids"
    )


def test_organization_member_add_makes_org_admins(api, world):
    organization_id = str(world.acme.pk)
    response = api.post(
        "/organization/member_add",
        {"organization_id": organization_id, "member": {"user_id": "member", "role": "org_admin"}},
    )
    assert response.status_code == 200
    assert response.json()["updated_organization_memberships"] == [
        {"user_id": "member", "organization_id": organization_id, "user_role": "org_admin"}
    ]
    assert (
        OrganizationMembership.objects.get(organization=world.acme, user__username="member").role == "admin"
    )
    # ...and the new org admin now manages the organization's keys.
    response = api.post(
        "/key/block", {"key": world.key("viewer").token_hash}, key=world.credentials["member"]
    )
    assert response.status_code == 200

    assert_error(
        api.post(
            "/organization/member_add",
            {"organization_id": organization_id, "member": {"user_id": "x", "role": "emperor"}},
        ),
        400,
        param="member[0].role",
    )
    response = api.post(
        "/organization/member_delete", {"organization_id": organization_id, "user_id": "member"}
    )
    assert response.status_code == 200
    assert_error(
        api.post("/organization/member_delete", {"organization_id": organization_id, "user_id": "member"}),
        404,
        param="user_id",
    )
