"""/customer/* and /budget/* through HTTP (LiteLLM's bodies and answers), as the proxy admin and as an
organization's admin: each organization has its own end users and budgets, and no one reaches
another organization's."""

from datetime import datetime, timedelta, timezone

import pytest

from tests.management.conftest import assert_error

pytestmark = pytest.mark.django_db


def test_the_proxy_admin_manages_a_customer_with_inline_limits(api):
    created = api.post("/customer/new", {"user_id": "ishaan3", "alias": "Ishaan", "max_budget": "0",
                                         "rpm_limit": 10, "budget_duration": "30d", "metadata": {"tier": "x"}})
    assert created.status_code == 200, created.content
    body = created.json()
    assert (body["user_id"], body["alias"], body["blocked"], body["spend"]) == ("ishaan3", "Ishaan", False, 0)
    assert (body["allowed_model_region"], body["default_model"], body["organization_id"]) == (None, None, None)
    budget = body["litellm_budget_table"]
    assert body["budget_id"] == budget["budget_id"]  # made up, as LiteLLM does
    assert (budget["max_budget"], budget["rpm_limit"], budget["budget_duration"]) == (0, 10, "30d")
    assert budget["budget_reset_at"] is not None

    for query in ({"end_user_id": "ishaan3"}, {"user_id": "ishaan3"}):
        info = api.get("/customer/info", query)
        assert info.status_code == 200 and info.json()["budget_id"] == body["budget_id"]

    updated = api.post("/customer/update", {"user_id": "ishaan3", "alias": "I", "max_budget": 5, "blocked": True})
    assert updated.status_code == 200, updated.content
    assert (updated.json()["alias"], updated.json()["blocked"]) == ("I", True)
    # Its own budget changes in place: the same id, the other limits kept.
    assert updated.json()["litellm_budget_table"] | {"updated_at": None} == budget | {
        "max_budget": 5, "updated_at": None}
    assert [c["user_id"] for c in api.get("/customer/list").json()] == ["ishaan3"]

    deleted = api.post("/customer/delete", {"user_ids": ["ishaan3"]})
    assert deleted.status_code == 200 and deleted.json()["deleted_customers"] == 1
    assert_error(api.get("/customer/info", {"end_user_id": "ishaan3"}), 404, param="end_user_id")
    assert_error(api.post("/customer/delete", {"user_ids": ["ishaan3"]}), 404, param="user_ids")


def test_customer_requests_litellm_refuses_or_we_do_not_act_on_are_400s(api):
    assert api.post("/customer/new", {"user_id": "a"}).status_code == 200
    assert_error(api.post("/customer/new", {"user_id": "a"}), 400, param="user_id")
    assert_error(api.post("/customer/new", {"alias": "no id"}), 400, param="user_id")
    assert api.post("/budget/new", {"budget_id": "free_tier", "max_budget": 4}).status_code == 200
    assert_error(api.post("/customer/new", {"user_id": "b", "budget_id": "free_tier", "max_budget": 1}), 400,
                 param="max_budget")
    assert_error(api.post("/customer/new", {"user_id": "b", "budget_id": "gold"}), 404, param="budget_id")
    for field, value in (("allowed_model_region", "eu"), ("default_model", "gpt-4o"),
                         ("object_permission", {"mcp_servers": ["s"]}), ("model_max_budget", {"gpt-4o": 1})):
        assert_error(api.post("/customer/new", {"user_id": "b", field: value}), 400, param=field)
        assert_error(api.post("/customer/update", {"user_id": "a", field: value}), 400, param=field)
    # Unset or empty, LiteLLM's fields are accepted as sent.
    response = api.post("/customer/new", {"user_id": "b", "budget_id": "free_tier", "allowed_model_region": None,
                                          "default_model": None, "object_permission": None, "blocked": False})
    assert response.status_code == 200, response.content
    assert response.json()["litellm_budget_table"]["max_budget"] == 4
    assert_error(api.post("/customer/update", {"user_id": "nobody", "alias": "x"}), 404, param="user_id")
    assert_error(api.post("/customer/new", {"user_id": "c", "rpm_limit": -1}), 400, param="rpm_limit")
    assert_error(api.post("/customer/new", {"user_id": "c", "budget_duration": "soon"}), 400,
                 param="budget_duration")


def test_budgets_as_litellm_manages_them(api):
    created = api.post("/budget/new", {"budget_id": "free", "max_budget": 10, "rpm_limit": 2, "tpm_limit": 1000,
                                       "soft_budget": 8, "max_parallel_requests": 3, "budget_duration": "1mo"})
    assert created.status_code == 200, created.content
    budget = created.json()
    assert {k: budget[k] for k in ("budget_id", "max_budget", "rpm_limit", "tpm_limit", "soft_budget",
                                   "max_parallel_requests", "budget_duration", "model_max_budget")} == {
        "budget_id": "free", "max_budget": 10, "rpm_limit": 2, "tpm_limit": 1000, "soft_budget": 8,
        "max_parallel_requests": 3, "budget_duration": "1mo", "model_max_budget": None}
    assert (budget["created_by"], budget["updated_by"]) == ("proxy_admin", "proxy_admin")
    unnamed = api.post("/budget/new", {"max_budget": 1})
    assert unnamed.status_code == 200 and unnamed.json()["budget_id"]
    assert_error(api.post("/budget/new", {"budget_id": "free"}), 400, param="budget_id")
    assert_error(api.post("/budget/new", {"model_max_budget": {"gpt-4o": {"max_budget": 1}}}), 400,
                 param="model_max_budget")

    info = api.post("/budget/info", {"budgets": ["free", "missing"]})
    assert [b["budget_id"] for b in info.json()] == ["free"]
    assert_error(api.post("/budget/info", {"budgets": []}), 400, param="budgets")

    updated = api.post("/budget/update", {"budget_id": "free", "rpm_limit": None, "max_budget": 20})
    assert (updated.json()["rpm_limit"], updated.json()["max_budget"], updated.json()["tpm_limit"]) == (None, 20, 1000)
    assert_error(api.post("/budget/update", {"budget_id": "gold", "max_budget": 1}), 404, param="budget_id")

    settings = {row["field_name"]: row for row in api.get("/budget/settings", {"budget_id": "free"}).json()}
    assert settings["max_budget"]["field_value"] == 20 and settings["max_budget"]["field_type"] == "Float"
    assert settings["rpm_limit"]["field_value"] is None
    assert sorted(b["budget_id"] for b in api.get("/budget/list").json()) == sorted(
        ["free", unnamed.json()["budget_id"]])

    api.post("/customer/new", {"user_id": "alice", "budget_id": "free"})
    deleted = api.post("/budget/delete", {"id": "free"})
    assert deleted.status_code == 200 and deleted.json()["budget_id"] == "free"
    alice = api.get("/customer/info", {"end_user_id": "alice"}).json()
    assert (alice["budget_id"], alice["litellm_budget_table"]) == (None, None)  # LiteLLM: ON DELETE SET NULL
    assert_error(api.post("/budget/delete", {"id": "free"}), 404, param="id")


def test_budget_reset_at_is_when_the_first_period_ends(api):
    reset_at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=3)
    created = api.post("/budget/new", {"budget_id": "weekly", "max_budget": 1, "budget_duration": "7d",
                                       "budget_reset_at": reset_at.isoformat()})
    assert created.status_code == 200, created.content
    assert datetime.fromisoformat(created.json()["budget_reset_at"].replace("Z", "+00:00")) == reset_at


def test_changing_one_customer_of_a_shared_tier_leaves_the_tier_alone(api):
    api.post("/budget/new", {"budget_id": "free", "max_budget": 4, "rpm_limit": 2})
    for user in ("alice", "bob"):
        api.post("/customer/new", {"user_id": user, "budget_id": "free"})

    alice = api.post("/customer/update", {"user_id": "alice", "max_budget": 50}).json()
    assert alice["budget_id"] != "free"
    assert (alice["litellm_budget_table"]["max_budget"], alice["litellm_budget_table"]["rpm_limit"]) == (50, 2)
    bob = api.get("/customer/info", {"end_user_id": "bob"}).json()
    assert (bob["budget_id"], bob["litellm_budget_table"]["max_budget"]) == ("free", 4)
    moved = api.post("/customer/update", {"user_id": "alice", "budget_id": "free"}).json()
    assert moved["budget_id"] == "free"
    dropped = api.post("/customer/update", {"user_id": "alice", "budget_id": None}).json()
    assert dropped["budget_id"] is None


def test_block_makes_unknown_customers_and_unblock_needs_known_ones(api):
    blocked = api.post("/customer/block", {"user_ids": ["x", "y"]})
    assert blocked.status_code == 200
    assert [(c["user_id"], c["blocked"]) for c in blocked.json()["blocked_users"]] == [("x", True), ("y", True)]
    unblocked = api.post("/customer/unblock", {"user_ids": ["x"]})
    assert [(c["user_id"], c["blocked"]) for c in unblocked.json()["unblocked_users"]] == [("x", False)]
    assert_error(api.post("/customer/unblock", {"user_ids": ["z"]}), 404, param="user_ids")


def test_the_same_customer_id_in_two_organizations_is_two_customers(api, world):
    from apps.customers.models import EndUser

    org_admin = world.credentials["org_admin"]  # administers Acme only
    acme, globex = str(world.acme.pk), str(world.globex.pk)
    # Without organization_id an org admin means its organization; the proxy admin names Globex.
    mine = api.post("/customer/new", {"user_id": "alice", "rpm_limit": 5}, key=org_admin)
    assert mine.status_code == 200, mine.content
    assert mine.json()["organization_id"] == acme
    theirs = api.post("/customer/new", {"user_id": "alice", "max_budget": 1, "organization_id": globex})
    assert theirs.status_code == 200 and theirs.json()["organization_id"] == globex
    api.post("/customer/new", {"user_id": "bob", "organization_id": globex})
    api.post("/budget/new", {"budget_id": "gold", "organization_id": globex})
    assert EndUser.objects.filter(user_id="alice").count() == 2

    info = api.get("/customer/info", {"end_user_id": "alice"}, key=org_admin).json()
    assert (info["organization_id"], info["litellm_budget_table"]["rpm_limit"]) == (acme, 5)
    # Globex's rows: 403 when named through Globex, 404 in Acme's namespace (where they are not).
    assert_error(api.get("/customer/info", {"end_user_id": "alice", "organization_id": globex}, key=org_admin),
                 403, param="organization_id")
    assert_error(api.get("/customer/info", {"end_user_id": "bob"}, key=org_admin), 404, param="end_user_id")
    for path, body in (("/customer/update", {"user_id": "bob", "blocked": True}),
                       ("/customer/delete", {"user_ids": ["bob"]}),
                       ("/customer/block", {"user_ids": ["bob"]}),
                       ("/customer/new", {"user_id": "carol"}),
                       ("/budget/new", {"budget_id": "silver"}),
                       ("/budget/update", {"budget_id": "gold", "max_budget": 1000}),
                       ("/budget/delete", {"id": "gold"})):
        assert_error(api.post(path, {**body, "organization_id": globex}, key=org_admin), 403,
                     param="organization_id")
    assert_error(api.post("/customer/update", {"user_id": "bob", "blocked": True}, key=org_admin), 404)
    assert_error(api.post("/budget/update", {"budget_id": "gold", "max_budget": 1000}, key=org_admin), 404)
    assert api.post("/budget/info", {"budgets": ["gold"]}, key=org_admin).json() == []
    assert_error(api.get("/customer/list", {"organization_id": globex}, key=org_admin), 403)

    listed = api.get("/customer/list", key=org_admin)
    assert [(c["user_id"], c["organization_id"]) for c in listed.json()] == [("alice", acme)]
    assert listed.headers["x-total-count"] == "1"
    assert {(c["user_id"], c["organization_id"]) for c in api.get("/customer/list").json()} == {
        ("alice", acme), ("alice", globex), ("bob", globex)}
    assert [b["budget_id"] for b in api.get("/budget/list", key=org_admin).json()] == [
        mine.json()["budget_id"]]
    # Globex's customers are untouched by everything Acme's admin tried.
    bob = EndUser.objects.get(user_id="bob")
    assert not bob.blocked and bob.organization_id == world.globex.pk


def test_an_admin_of_two_organizations_names_the_one_it_means(api, world):
    from apps.teams.services import organization_member_add

    organization_member_add(organization=world.globex, user=world.users["orgadmin"], role="admin")
    key = world.credentials["org_admin"]
    assert_error(api.post("/customer/new", {"user_id": "alice"}, key=key), 400, param="organization_id")
    response = api.post("/customer/new", {"user_id": "alice", "organization_id": str(world.globex.pk)}, key=key)
    assert response.status_code == 200 and response.json()["organization_id"] == str(world.globex.pk)


def test_nobody_but_the_proxy_admin_reaches_the_customers_of_keys_outside_organizations(api, world):
    assert api.post("/customer/new", {"user_id": "alice"}).status_code == 200  # the proxy admin's namespace
    # An org admin looks in its own organization's namespace, where there is no alice.
    assert_error(api.get("/customer/info", {"end_user_id": "alice"}, key=world.credentials["org_admin"]), 404)
    for role in ("team_admin", "member", "viewer", "plain_key"):
        assert_error(api.get("/customer/info", {"end_user_id": "alice"}, key=world.credentials[role]), 403)
    assert [c["user_id"] for c in api.get("/customer/list", key=world.credentials["org_admin"]).json()] == []


def test_a_customer_is_never_given_another_organizations_budget(api, world):
    from django.core.exceptions import ValidationError

    from apps.customers.services import budget_create, end_user_create

    gold = budget_create(organization=world.globex, budget_id="gold", max_budget=100)
    # Through the API a budget_id is looked up in the customer's own organization only...
    assert_error(api.post("/customer/new", {"user_id": "alice", "budget_id": "gold",
                                            "organization_id": str(world.acme.pk)}), 404, param="budget_id")
    # ...and the model refuses the pair whoever writes it (the admin, a service).
    with pytest.raises(ValidationError):
        end_user_create(organization=world.acme, user_id="alice", budget=gold)


def test_a_page_beyond_any_database_offset_is_a_400_not_a_500(api):
    # The schema fuzz test found /customer/list answering 500 to a page number no database offset holds.
    for route in ("/customer/list", "/end_user/list"):
        assert_error(api.get(route, {"page": 10**20}), 400, param="page")
        assert api.get(route, {"page": 2**31 - 1}).json() == []
