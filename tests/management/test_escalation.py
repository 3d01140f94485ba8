"""The escalations a hostile review found (issue 11), each as it was walked, and the rule that now
stops it (apps/management/permissions.py; docs/permissions.md "The one rule")."""

from __future__ import annotations

import pytest

from apps.keys.models import VirtualKey
from tests.management.conftest import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(world, django_user_model):
    """A superuser of the admin site (the proxy admin when logged in)."""
    return django_user_model.objects.create_superuser("root", "root@example.com", "a-long-password")


def _key(response):
    assert response.status_code == 200, response.content
    return response.json()["key"]


# --- 1. a team admin (or org admin) becoming the proxy admin -------------------------------------


def test_a_team_admin_cannot_bring_a_superuser_into_its_team(api, world, root):
    team_admin = world.credentials["team_admin"]
    response = api.post(
        "/team/member_add",
        {"team_id": str(world.research.pk), "member": [{"user_id": "root", "role": "user"}]},
        key=team_admin,
    )
    assert_error(response, 403, param="member[0]")
    assert not root.team_memberships.exists()


def test_nor_mint_a_key_for_a_superuser_the_proxy_admin_put_in_its_team(api, world, root):
    from apps.teams.services import team_member_add

    team_member_add(team=world.research, user=root, role="member")
    response = api.post(
        "/key/generate", {"team_id": str(world.research.pk), "user_id": "root"}, key=world.credentials["team_admin"]
    )
    assert_error(response, 403, param="user_id")
    assert not VirtualKey.objects.filter(user=root).exists()


def test_an_org_admin_cannot_bring_a_superuser_into_its_organization(api, world, root):
    response = api.post(
        "/organization/member_add",
        {"organization_id": str(world.acme.pk), "member": [{"user_id": "root", "role": "internal_user"}]},
        key=world.credentials["org_admin"],
    )
    assert_error(response, 403, param="member[0]")
    response = api.post(
        "/team/new",
        {"organization_id": str(world.acme.pk), "team_alias": "x",
         "members_with_roles": [{"user_id": "root", "role": "admin"}]},
        key=world.credentials["org_admin"],
    )
    assert_error(response, 403, param="members_with_roles[0]")
    assert_error(
        api.post("/key/generate", {"organization_id": str(world.acme.pk), "user_id": "root"},
                 key=world.credentials["org_admin"]),
        403,
        param="user_id",
    )


def test_a_superusers_key_that_the_proxy_admin_did_not_issue_is_only_its_memberships(api, world, root):
    """Even a key walked into place before the fix (owned by a superuser, made by a team admin)
    is no proxy admin: it lists the team's keys, not everyone's, and creates no organization."""
    from apps.keys.services import virtual_key_create
    from apps.teams.services import team_member_add

    team_member_add(team=world.research, user=root, role="member")
    _, raw = virtual_key_create(user=root, team=world.research)
    assert_error(api.post("/organization/new", {"organization_alias": "Mine"}, key=raw), 403)
    listed = set(api.get("/key/list", {"size": 100}, key=raw).json()["keys"])
    assert world.key("outsider").token_hash not in listed and world.key("orgadmin").token_hash not in listed


def test_another_organizations_user_cannot_be_added_to_a_team(api, world):
    response = api.post(
        "/team/member_add",
        {"team_id": str(world.research.pk), "member": [{"user_id": "outsider", "role": "admin"}]},
        key=world.credentials["team_admin"],
    )
    assert_error(response, 403, param="member[0]")
    response = api.post(
        "/organization/member_add",
        {"organization_id": str(world.acme.pk), "member": [{"user_id": "outsider", "role": "org_admin"}]},
        key=world.credentials["org_admin"],
    )
    assert_error(response, 403, param="member[0]")
    assert not world.users["outsider"].team_memberships.filter(team=world.research).exists()


def test_an_admin_of_both_organizations_may_bring_a_user_across(api, world):
    from apps.teams.services import organization_member_add

    organization_member_add(organization=world.globex, user=world.users["orgadmin"], role="admin")
    response = api.post(
        "/team/member_add",
        {"team_id": str(world.research.pk), "member": [{"user_id": "outsider", "role": "user"}]},
        key=world.credentials["org_admin"],
    )
    assert response.status_code == 200


def test_a_key_minted_for_a_user_of_two_organizations_reaches_only_its_team(api, world):
    """The proxy admin put Globex's outsider into Acme's team; the team admin's key for it acts
    inside that team only: it neither reads nor changes the outsider's other organization."""
    from apps.teams.services import team_member_add

    team_member_add(team=world.research, user=world.users["outsider"], role="member")
    raw = _key(api.post("/key/generate", {"team_id": str(world.research.pk), "user_id": "outsider"},
                        key=world.credentials["team_admin"]))
    listed = set(api.get("/key/list", {"size": 100}, key=raw).json()["keys"])
    assert world.key("outsider").token_hash not in listed  # its key in Globex's team
    assert_error(api.get("/team/info", {"team_id": str(world.sales.pk)}, key=raw), 403)
    assert_error(api.post("/key/update", {"key": world.key("outsider").token_hash, "key_alias": "x"}, key=raw),
                 403)
    assert_error(api.post("/key/generate", {"team_id": str(world.sales.pk)}, key=raw), 403, param="team_id")


def test_nobody_but_the_proxy_admin_changes_its_own_limits(api, world):
    response = api.post("/user/update", {"user_id": "orgadmin", "max_budget": 1000},
                        key=world.credentials["org_admin"])
    assert_error(response, 403, param="user_id")


def test_an_org_admin_cannot_raise_its_own_limits_through_a_second_admin_it_made(api, world):
    """Found by the invariant test: an org admin makes a new org admin (and gets its first key),
    then through that key changes its own user's limits and its personal key's."""
    made = api.post("/user/new", {"user_id": "puppet", "user_role": "org_admin"}, key=world.credentials["org_admin"])
    assert made.status_code == 200, made.content
    puppet = made.json()["key"]
    assert_error(api.post("/user/update", {"user_id": "orgadmin", "max_budget": 1000}, key=puppet), 403,
                 param="user_id")
    # Even with a key outside every organization (one the proxy admin would have to make), a
    # fellow admin's personal key is only read.
    from apps.keys.services import virtual_key_create
    from apps.teams.selectors import user_get

    _, puppet_personal = virtual_key_create(user=user_get(user_id="puppet"))
    own_key = world.key("orgadmin").token_hash
    assert api.get("/key/info", {"key": own_key}, key=puppet_personal).status_code == 200
    for key in (puppet, puppet_personal):
        assert_error(api.post("/key/update", {"key": own_key, "max_budget": 1000}, key=key), 403, param="key")


def test_regenerating_a_key_hands_it_over_only_to_who_could_make_it(api, world, root):
    from apps.keys.services import virtual_key_create
    from apps.teams.services import team_member_add

    team_member_add(team=world.research, user=root, role="member")
    roots_key, _ = virtual_key_create(user=root, team=world.research, issued_by_proxy_admin=True)
    assert_error(api.post("/key/regenerate", {"key": roots_key.token_hash}, key=world.credentials["team_admin"]),
                 403, param="user_id")
    # The member's own key, and a member's key in the admin's team, still rotate.
    assert api.post("/key/regenerate", {"key": world.key("member").token_hash},
                    key=world.credentials["member"]).status_code == 200
    assert api.post("/key/regenerate", {"key": world.key("viewer").token_hash},
                    key=world.credentials["team_admin"]).status_code == 200


def test_a_proxy_admin_key_regenerated_by_anyone_else_is_no_longer_the_proxy_admin(api, world, root):
    from apps.keys.services import virtual_key_create, virtual_key_issue

    key, raw = virtual_key_create(user=root, issued_by_proxy_admin=True)
    assert api.post("/organization/new", {"organization_alias": "A"}, key=raw).status_code == 200
    raw = virtual_key_issue(key=key, by_proxy_admin=False)
    assert_error(api.post("/organization/new", {"organization_alias": "B"}, key=raw), 403)
    raw = _key(api.post("/key/regenerate", {"key": key.token_hash}))  # the master key
    assert api.post("/organization/new", {"organization_alias": "C"}, key=raw).status_code == 200


# --- 2. a member leaving its team's limits -------------------------------------------------------


def test_a_key_made_through_a_team_key_stays_in_the_team_and_under_its_limits(api, world):
    from apps.keys.selectors import key_context_get
    from apps.teams.services import team_update

    team_update(team=world.research, models=["gpt-allowed"], max_budget=5)
    member = world.credentials["member"]
    for body in ({}, {"team_id": None, "organization_id": None}, {"key_alias": "escape"}):
        response = api.post("/key/generate", body, key=member)
        assert response.status_code == 200, response.content
        made = response.json()
        assert (made["team_id"], made["organization_id"]) == (str(world.research.pk), str(world.acme.pk))
        context = key_context_get(made["token"])
        assert not context.may_use_model("gpt-forbidden") and context.may_use_model("gpt-allowed")
        assert ("team", str(world.research.pk)) in {(s.kind, s.id) for s in context.scopes}
    assert_error(api.post("/key/update", {"key": world.key("member").token_hash, "team_id": None}, key=member),
                 403)


def test_no_one_below_the_proxy_admin_makes_a_key_outside_every_team_and_organization(api, world):
    from apps.keys.services import virtual_key_create

    # Through a key outside every team (the org admin's), without a team or organization named:
    # the key defaults into the one organization it administers.
    made = api.post("/key/generate", {"user_id": "member"}, key=world.credentials["org_admin"]).json()
    assert made["organization_id"] == str(world.acme.pk)
    # Asked for outright (a personal key of a user who belongs to an organization): refused.
    _, personal = virtual_key_create(user=world.users["member"])
    assert_error(api.post("/key/update", {"key": world.key("member").token_hash, "team_id": None,
                                          "organization_id": None}, key=world.credentials["org_admin"]), 403)
    made = api.post("/key/generate", {}, key=personal).json()  # defaults into its one team
    assert made["team_id"] == str(world.research.pk)


def test_a_user_without_memberships_still_makes_its_own_personal_keys(api, world, django_user_model):
    from apps.keys.services import virtual_key_create

    loner = django_user_model.objects.create_user("loner")
    _, raw = virtual_key_create(user=loner)
    made = api.post("/key/generate", {}, key=raw).json()
    assert (made["user_id"], made["team_id"], made["organization_id"]) == ("loner", None, None)


# --- the admin keeps the same rule --------------------------------------------------------------


@pytest.fixture
def staff_org_admin(world):
    from django.test import Client

    user = world.users["orgadmin"]
    user.is_staff = True
    user.set_password("pw")
    user.save()
    client = Client()
    client.force_login(user)
    return client


def test_the_admin_refuses_an_org_admin_a_key_for_a_superuser(staff_org_admin, world, root):
    page = staff_org_admin.post("/admin/keys/virtualkey/add/", {
        "alias": "sneaky", "team": str(world.research.pk), "user": str(root.pk), "metadata": "{}",
        "model_max_budget": "{}", "model_rpm_limit": "{}", "model_tpm_limit": "{}",
    })
    assert page.status_code == 200  # the form again, with the error
    assert "staff users" in page.content.decode()
    assert not VirtualKey.objects.filter(alias="sneaky").exists()


def test_the_admin_refuses_an_org_admin_a_superuser_as_team_member(staff_org_admin, world, root):
    page = staff_org_admin.post("/admin/teams/teammembership/add/", {
        "team": str(world.research.pk), "user": str(root.pk), "role": "admin",
    })
    assert page.status_code == 200
    assert not root.team_memberships.exists()


def test_the_admin_refuses_an_org_admin_its_own_limits(staff_org_admin, world):
    page = staff_org_admin.post("/admin/teams/userlimits/add/", {
        "user": str(world.users["orgadmin"].pk), "max_budget": "1000", "metadata": "{}", "models": "[]",
        "budget_anchor_0": "2026-01-01", "budget_anchor_1": "00:00:00", "spend": "0",
    })
    assert page.status_code == 200
    assert "your own user" in page.content.decode()
    from apps.teams.models import UserLimits

    assert not UserLimits.objects.filter(user=world.users["orgadmin"]).exists()


def test_keys_made_in_the_admin_carry_who_made_them(admin_client, staff_org_admin, world):
    body = {"team": str(world.research.pk), "metadata": "{}", "model_max_budget": "{}",
            "model_rpm_limit": "{}", "model_tpm_limit": "{}"}
    staff_org_admin.post("/admin/keys/virtualkey/add/", {**body, "alias": "by-org-admin"})
    admin_client.post("/admin/keys/virtualkey/add/", {**body, "alias": "by-superuser"})
    flags = dict(VirtualKey.objects.filter(alias__startswith="by-").values_list("alias", "issued_by_proxy_admin"))
    assert flags == {"by-org-admin": False, "by-superuser": True}


def test_an_organization_key_of_an_org_admin_reaches_what_an_admin_it_appoints_would(api, world):
    """Found by the invariant test: through its organization key an org admin could appoint an
    admin able to manage the personal keys of the organization's own users, which the key itself
    could not see. Those keys count as inside the organization."""
    from apps.keys.services import virtual_key_create

    personal, _ = virtual_key_create(user=world.users["accountant"])  # the proxy admin's doing
    _, org_key = virtual_key_create(user=world.users["orgadmin"], organization=world.acme)
    listed = api.get("/key/list", {"size": 100}, key=org_key).json()["keys"]
    assert personal.token_hash in listed
    assert api.post("/key/block", {"key": personal.token_hash}, key=org_key).status_code == 200
    # ... but a new secret for it stays the proxy admin's (it is bound by no organization's limits).
    assert_error(api.post("/key/regenerate", {"key": personal.token_hash}, key=org_key), 403)


def test_the_admin_keeps_organization_limits_and_deployments_for_the_proxy_admin(staff_org_admin, world):
    """Found attacking the fix: in the admin an org admin could raise its own organization's budget,
    or add a deployment priced at 0 (no spend, no budget, no bill) or aimed at an internal address."""
    from apps.providers.models import ModelDeployment

    world.acme.max_budget = 10
    world.acme.save()
    page = staff_org_admin.get(f"/admin/teams/organization/{world.acme.pk}/change/").content.decode()
    assert 'name="max_budget"' not in page and 'name="name"' in page
    staff_org_admin.post(f"/admin/teams/organization/{world.acme.pk}/change/", {
        "name": "Acme", "max_budget": "100000", "metadata": "{}", "models": "[]",
        "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0",
        "teams-TOTAL_FORMS": "0", "teams-INITIAL_FORMS": "0",
    })
    world.acme.refresh_from_db()
    assert world.acme.max_budget == 10
    assert staff_org_admin.get("/admin/providers/modeldeployment/add/").status_code == 403
    staff_org_admin.post("/admin/providers/modeldeployment/add/", {
        "model_name": "free", "organization": str(world.acme.pk), "provider": "openai", "upstream_model": "x",
        "api_base": "http://169.254.169.254/", "input_cost_per_token": "0", "output_cost_per_token": "0",
    })
    assert not ModelDeployment.objects.filter(model_name="free").exists()


def test_the_admin_takes_a_keys_metadata_logging_as_the_api_does(staff_org_admin, world):
    """Through the admin too: an org admin's key may log to a public host (stored encrypted, shown
    masked), not read the gateway's environment."""
    import json

    def add(alias, secret):
        logging = [{"callback_name": "langfuse", "callback_vars": {
            "langfuse_public_key": "pk-admin", "langfuse_secret_key": secret,
            "langfuse_host": "https://cloud.langfuse.com"}}]
        return staff_org_admin.post("/admin/keys/virtualkey/add/", {
            "alias": alias, "team": str(world.research.pk), "metadata": json.dumps({"logging": logging}),
            "model_max_budget": "{}", "model_rpm_limit": "{}", "model_tpm_limit": "{}",
        }, follow=True)

    refused = add("env-reader", "os.environ/OPENAI_API_KEY")
    assert refused.status_code == 200 and "proxy admin" in refused.content.decode()
    assert not VirtualKey.objects.filter(alias="env-reader").exists()
    assert add("logged", "sk-lf-admin-secret-0042").status_code == 200
    key = VirtualKey.objects.get(alias="logged")
    assert key.logging_callbacks[0]["callback_vars"]["langfuse_secret_key"] == "sk-lf-admin-secret-0042"
    assert key.metadata["logging"][0]["callback_vars"]["langfuse_secret_key"] == "*****0042"
