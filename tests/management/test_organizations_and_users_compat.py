"""LiteLLM's /organization/* and /user/* calls beyond the basics: the PATCH and DELETE forms,
organization budgets (budget_id), /organization/member_update, LiteLLM's user_role names,
/user/bulk_update and /user/daily/activity; each within the caller's rights (the Acme/Globex
world of tests/management/conftest.py)."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model

from apps.teams.models import Organization, OrganizationMembership, TeamMembership
from tests.management.conftest import assert_error

pytestmark = pytest.mark.django_db


# --- organizations ------------------------------------------------------------------------


def test_litellm_methods_serve_the_organization_routes(api, world):
    acme = str(world.acme.pk)
    response = api("PATCH", "/organization/update", {"organization_id": acme, "organization_alias": "Acme Corp"})
    assert (response.status_code, response.json()["organization_alias"]) == (200, "Acme Corp")
    assert response.json()["updated_by"] == "proxy_admin"

    response = api.post("/organization/info", {"organizations": [acme, str(world.globex.pk)]})
    assert [o["organization_alias"] for o in response.json()] == ["Acme Corp", "Globex"]
    # An org admin reads its own organizations only, in the list form too.
    key = world.credentials["org_admin"]
    assert api.post("/organization/info", {"organizations": [acme]}, key=key).status_code == 200
    assert_error(api.post("/organization/info", {"organizations": [str(world.globex.pk)]}, key=key), 403,
                 param="organization_id")

    response = api("DELETE", "/organization/member_delete", {"organization_id": acme, "user_id": "accountant"})
    assert response.status_code == 200
    assert not OrganizationMembership.objects.filter(user__username="accountant").exists()

    response = api("DELETE", "/organization/delete", {"organization_ids": [str(world.globex.pk)]})
    assert [o["organization_alias"] for o in response.json()] == ["Globex"]
    assert not Organization.objects.filter(name="Globex").exists()


def test_an_organization_linked_to_a_budget_has_its_limits(api, world):
    assert api.post("/budget/new", {"budget_id": "gold", "max_budget": 100, "rpm_limit": 5}).status_code == 200
    response = api.post("/organization/new", {"organization_alias": "Initech", "budget_id": "gold"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["budget_id"], body["max_budget"], body["rpm_limit"]) == ("gold", 100.0, 5)
    assert (body["created_by"], body["updated_by"]) == ("proxy_admin", "proxy_admin")
    initech = body["organization_id"]

    # The budget changes: so do the organizations linked to it.
    assert api.post("/budget/update", {"budget_id": "gold", "max_budget": 200}).status_code == 200
    info = api.get("/organization/info", {"organization_id": initech}).json()
    assert (info["budget_id"], info["max_budget"]) == ("gold", 200.0)

    # Its limits are the budget's: changing them means unlinking first (they stay as they were).
    assert_error(api.post("/organization/update", {"organization_id": initech, "max_budget": 1}), 400,
                 param="max_budget")
    assert_error(api.post("/organization/new", {"organization_alias": "X", "budget_id": "gold", "rpm_limit": 1}),
                 400, param="rpm_limit")
    response = api.post("/organization/update", {"organization_id": initech, "budget_id": None})
    assert (response.json()["budget_id"], response.json()["max_budget"]) == (None, 200.0)
    response = api.post("/organization/update", {"organization_id": initech, "max_budget": 1})
    assert response.json()["max_budget"] == 1.0

    assert_error(api.post("/organization/new", {"organization_alias": "Y", "budget_id": "ghost"}), 404,
                 param="budget_id")


def test_an_org_admin_raises_no_limits_through_budgets(api, world):
    acme = str(world.acme.pk)
    key = world.credentials["org_admin"]
    # An org admin manages its organization's own budgets...
    response = api.post("/budget/new", {"budget_id": "acme-tier", "max_budget": 10, "organization_id": acme},
                        key=key)
    assert response.status_code == 200, response.content
    # ...which therefore never link an organization (whose limits its admin would then set).
    assert_error(api.post("/organization/update", {"organization_id": acme, "budget_id": "acme-tier"}), 404,
                 param="budget_id")
    # Linking is a limit: the proxy admin's.
    api.post("/budget/new", {"budget_id": "gold", "max_budget": 1000})
    assert_error(api.post("/organization/update", {"organization_id": acme, "budget_id": "gold"}, key=key), 403,
                 param="budget_id")
    assert Organization.objects.get(pk=world.acme.pk).budget is None


def test_organization_member_update(api, world):
    acme = str(world.acme.pk)
    body = {"organization_id": acme, "user_id": "accountant", "role": "internal_user_viewer"}
    response = api("PATCH", "/organization/member_update", body, key=world.credentials["org_admin"])
    assert response.json() == {"user_id": "accountant", "organization_id": acme, "user_role": "internal_user_viewer"}
    assert OrganizationMembership.objects.get(user__username="accountant").role == "viewer"
    # Team admins and members do not manage the organization's members.
    for role in ("team_admin", "member", "viewer", "plain_key"):
        assert_error(api.post("/organization/member_update", body, key=world.credentials[role]), 403)
    # A user who is not a member, one of another organization, an unknown one.
    assert_error(api.post("/organization/member_update", {**body, "user_id": "member"}), 404, param="user_id")
    assert_error(api.post("/organization/member_update", {**body, "user_id": "outsider"},
                          key=world.credentials["org_admin"]), 403, param="user_id")
    assert_error(api.post("/organization/member_update", {**body, "user_id": "ghost"}), 404, param="user_id")
    assert_error(api.post("/organization/member_update", {**body, "max_budget_in_organization": 5}), 400,
                 param="max_budget_in_organization")


# --- users --------------------------------------------------------------------------------


def test_litellm_user_roles(api, world):
    response = api.post("/user/new", {"user_id": "boss", "user_role": "admin"})
    assert response.json()["user_role"] == "proxy_admin"
    assert get_user_model().objects.get(username="boss").is_superuser
    key = world.credentials["org_admin"]
    assert_error(api.post("/user/new", {"user_id": "boss2", "user_role": "admin"}, key=key), 403, param="user_role")
    assert_error(api.post("/user/update", {"user_id": "boss", "user_role": "proxy_admin_viewer"}), 400,
                 param="user_role")

    # internal_user_viewer: a viewer in every membership; internal_user: a member where it viewed.
    response = api.post("/user/update", {"user_id": "member", "user_role": "internal_user_viewer"}, key=key)
    assert response.json()["user_role"] == "internal_user_viewer"
    assert TeamMembership.objects.get(user__username="member").role == "viewer"
    response = api.post("/user/update", {"user_id": "member", "user_role": "internal_user"}, key=key)
    assert response.json()["user_role"] == "internal_user"
    assert TeamMembership.objects.get(user__username="member").role == "member"

    # org_admin: the proxy admin's to give, to a user with an organization.
    assert_error(api.post("/user/update", {"user_id": "accountant", "user_role": "org_admin"}, key=key), 403,
                 param="user_role")
    assert_error(api.post("/user/update", {"user_id": "member", "user_role": "org_admin"}), 400, param="user_role")
    assert api.post("/user/update", {"user_id": "accountant", "user_role": "org_admin"}).json()["user_role"] == (
        "org_admin"
    )
    response = api.post("/user/update", {"user_id": "boss", "user_role": "internal_user"})
    assert not get_user_model().objects.get(username="boss").is_superuser


def test_user_new_takes_its_docstrings_names(api, world):
    response = api.post("/user/new", {"username": "new_user", "email": "new_user@example.com"})
    assert (response.json()["user_id"], response.json()["user_email"]) == ("new_user", "new_user@example.com")
    assert_error(api.post("/user/new", {"username": "a", "user_id": "b"}), 400, param="username")


def test_user_bulk_update(api, world):
    body = {"users": [
        {"user_id": "member", "max_budget": 7},
        {"user_email": "accountant@example.com", "user_role": "internal_user_viewer"},
        {"user_id": "outsider", "max_budget": 7},
        {"user_id": "ghost", "max_budget": 7},
    ]}
    response = api.post("/user/bulk_update", body, key=world.credentials["org_admin"])
    assert response.status_code == 200, response.content
    answer = response.json()
    assert (answer["total_requested"], answer["successful_updates"], answer["failed_updates"]) == (4, 2, 2)
    assert [r["success"] for r in answer["results"]] == [True, True, False, False]
    assert answer["results"][0]["updated_user"]["max_budget"] == 7.0
    assert answer["results"][2]["error"]  # Globex's user: not the Acme admin's
    assert OrganizationMembership.objects.get(user__username="accountant").role == "viewer"
    assert not hasattr(get_user_model().objects.get(username="outsider"), "gateway_limits")

    # Refused entries refuse as /user/update does; every user at once is the proxy admin's.
    response = api.post("/user/bulk_update", {"users": [{"user_id": "member", "user_role": "proxy_admin"}]},
                        key=world.credentials["org_admin"])
    assert response.json()["failed_updates"] == 1
    assert not get_user_model().objects.get(username="member").is_superuser
    everyone = {"all_users": True, "user_updates": {"max_budget": 3}}
    assert_error(api.post("/user/bulk_update", everyone, key=world.credentials["org_admin"]), 403, param="all_users")
    for role in ("team_admin", "member", "viewer", "plain_key"):
        assert_error(api.post("/user/bulk_update", body, key=world.credentials[role]), 403)
    get_user_model().objects.create_superuser("root", "root@example.com", "a-long-password")
    everyone = {"all_users": True, "user_updates": {"user_role": "internal_user"}}
    answer = api.post("/user/bulk_update", everyone).json()
    assert answer["successful_updates"] == answer["total_requested"] == get_user_model().objects.count() - 1
    assert get_user_model().objects.get(username="root").is_superuser  # the operators stay
    assert_error(api.post("/user/bulk_update", {"all_users": True}), 400, param="user_updates")
    assert_error(api.post("/user/bulk_update", {"all_users": True, "user_updates": {"user_id": "x"}}), 400,
                 param="user_updates.user_id")
    assert_error(api.post("/user/bulk_update", {"users": [{"user_id": "member", "max_budge": 1}]}), 400,
                 param="users[0].max_budge")


def test_user_daily_activity(api, world):
    from apps.spend.models import SpendLog
    from apps.spend.rollups import daily_spend_rollup

    def log(request_id, key_name, day, cost):
        key = world.key(key_name)
        at = datetime.combine(day, datetime.min.time(), tzinfo=UTC).replace(hour=12)
        SpendLog.objects.create(
            request_id=request_id, key=key, key_hash=key.token_hash, team_id=key.team_id,
            organization_id=key.organization_id or world.acme.pk, user_id=key.user_id, call_type="acompletion",
            model="gpt-4", provider="openai", upstream_model="gpt-4", prompt_tokens=20, completion_tokens=80,
            cost=Decimal(cost), status=SpendLog.Status.SUCCESS, start_time=at, end_time=at,
        )

    day_1, day_2 = date(2025, 3, 20), date(2025, 3, 21)
    log("r1", "member", day_1, "0.5")
    log("r2", "member", day_2, "0.25")
    log("r3", "viewer", day_2, "1")
    for day in (day_1, day_2):
        daily_spend_rollup(day=day)
    query = {"start_date": "2025-03-20", "end_date": "2025-03-27"}

    answer = api.get("/user/daily/activity", query).json()
    assert [d["date"] for d in answer["results"]] == ["2025-03-20", "2025-03-21"]
    second = answer["results"][1]
    assert second["metrics"]["spend"] == pytest.approx(1.25)
    assert (second["metrics"]["api_requests"], second["metrics"]["total_tokens"]) == (2, 200)
    assert second["breakdown"]["models"]["gpt-4"]["metrics"]["spend"] == pytest.approx(1.25)
    assert set(second["breakdown"]["api_keys"]) == {world.key("member").token_hash, world.key("viewer").token_hash}
    assert answer["metadata"]["total_spend"] == pytest.approx(1.75)
    assert (answer["metadata"]["page"], answer["metadata"]["has_more"]) == (1, False)

    # A user sees its own activity; another's only where it could read that user.
    mine = api.get("/user/daily/activity", query, key=world.credentials["member"]).json()
    assert mine["metadata"]["total_spend"] == pytest.approx(0.75)
    assert_error(api.get("/user/daily/activity", {**query, "user_id": "viewer"}, key=world.credentials["member"]),
                 403, param="user_id")
    theirs = api.get("/user/daily/activity", {**query, "user_id": "viewer"}, key=world.credentials["team_admin"])
    assert theirs.json()["metadata"]["total_spend"] == pytest.approx(1)
    assert_error(api.get("/user/daily/activity", {"start_date": "2025-03-27", "end_date": "2025-03-20"}), 400,
                 param="end_date")
    by_key = api.get("/user/daily/activity", {**query, "api_key": world.key("viewer").token_hash}).json()
    assert by_key["metadata"]["total_spend"] == pytest.approx(1)
    assert_error(api.get("/user/daily/activity", {**query, "api_key": world.raw("outsider")},
                         key=world.credentials["member"]), 403, param="api_key")
    assert_error(api.get("/user/daily/activity", {**query, "api_key": "sk-nothing"}), 404, param="api_key")


def test_the_admin_shows_an_organizations_budget_read_only(api, world, admin_client):
    api.post("/budget/new", {"budget_id": "gold", "max_budget": 100})
    api.post("/organization/update", {"organization_id": str(world.acme.pk), "budget_id": "gold"})
    page = admin_client.get(f"/admin/teams/organization/{world.acme.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    assert "budget" not in form.fields and "max_budget" not in form.fields  # the budget's, not the form's
    assert b"gold" in page.content


def test_user_bulk_update_refusing_a_user_says_back_only_what_the_caller_named(api, world):
    """An org admin naming another organization's user learns nothing of it (its email)."""
    response = api.post("/user/bulk_update", {"users": [{"user_id": "outsider", "user_role": "internal_user"}]},
                        key=world.credentials["org_admin"])
    assert response.status_code == 200, response.content
    [result] = response.json()["results"]
    assert result["success"] is False
    assert result["user_id"] == "outsider"
    assert "outsider@example.com" not in response.content.decode()
