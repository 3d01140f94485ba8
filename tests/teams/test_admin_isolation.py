"""Staff attached to an organization see and change only that organization in the admin."""

import hashlib
import re
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from django.test import Client

from apps.keys.models import VirtualKey
from apps.providers.models import ModelDeployment
from apps.spend.models import SpendLog
from apps.teams.models import OrganizationMembership
from apps.teams.services import organization_create, organization_member_add, team_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenants(make_key, django_user_model):
    world = {}
    for name in ("acme", "globex"):
        organization = organization_create(name=name)
        team = team_create(organization=organization, alias=f"{name}-team")
        key, raw_key = make_key(team=team, alias=f"{name}-key")
        staff = django_user_model.objects.create_user(f"{name}-admin", password="pw", is_staff=True)
        organization_member_add(organization=organization, user=staff, role=OrganizationMembership.Role.ADMIN)
        viewer = django_user_model.objects.create_user(f"{name}-viewer", password="pw", is_staff=True)
        organization_member_add(organization=organization, user=viewer, role=OrganizationMembership.Role.VIEWER)
        ModelDeployment.objects.create(model_name=f"{name}-private", provider="openai", upstream_model="x",
                                       organization=organization)
        now = datetime.now(timezone.utc)
        SpendLog.objects.create(request_id=f"{name}-request", organization=organization, team=team, key=key,
                                call_type="chat_completion", model=f"{name}-model", status="success",
                                start_time=now, end_time=now)
        world[name] = {"organization": organization, "team": team, "key": key, "raw_key": raw_key,
                       "staff": staff, "viewer": viewer}
    ModelDeployment.objects.create(model_name="shared-model", provider="openai", upstream_model="x")
    return world


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "url, mine, theirs",
    [
        ("/admin/teams/organization/", "acme", "globex"),
        ("/admin/teams/team/", "acme-team", "globex-team"),
        ("/admin/keys/virtualkey/", "acme-key", "globex-key"),
        ("/admin/spend/spendlog/", "acme-request", "globex-request"),
        ("/admin/providers/modeldeployment/", "acme-private", "globex-private"),
    ],
)
def test_lists_show_only_the_staff_members_organization(tenants, url, mine, theirs):
    page = client_for(tenants["acme"]["staff"]).get(url)
    assert page.status_code == 200
    assert mine in page.content.decode()
    assert theirs not in page.content.decode()


def test_superusers_see_every_organization(tenants, admin_client):
    page = admin_client.get("/admin/keys/virtualkey/").content.decode()
    assert "acme-key" in page and "globex-key" in page


def test_another_organizations_objects_cannot_be_opened_or_changed(tenants):
    client = client_for(tenants["acme"]["staff"])
    their_key = tenants["globex"]["key"]
    assert client.get(f"/admin/keys/virtualkey/{their_key.pk}/change/").status_code == 302  # "doesn't exist"
    client.post("/admin/keys/virtualkey/", {"action": "block_keys", "_selected_action": [their_key.pk]})
    their_key.refresh_from_db()
    assert not their_key.blocked


def test_shared_deployments_are_visible_but_read_only(tenants):
    client = client_for(tenants["acme"]["staff"])
    assert "shared-model" in client.get("/admin/providers/modeldeployment/").content.decode()
    shared = ModelDeployment.objects.get(model_name="shared-model")
    page = client.get(f"/admin/providers/modeldeployment/{shared.pk}/change/").content.decode()
    assert 'name="_save"' not in page  # a view page, not a form


def test_viewers_may_look_but_not_change(tenants):
    client = client_for(tenants["acme"]["viewer"])
    key = tenants["acme"]["key"]
    assert client.get("/admin/keys/virtualkey/").status_code == 200
    assert client.get("/admin/keys/virtualkey/add/").status_code == 403
    response = client.post(f"/admin/keys/virtualkey/{key.pk}/change/", {"alias": "renamed"})
    assert response.status_code == 403


def test_forms_offer_only_the_staff_members_organizations(tenants):
    page = client_for(tenants["acme"]["staff"]).get("/admin/keys/virtualkey/add/").content.decode()
    assert "acme" in page and "globex" not in page


def test_regenerate_shows_the_new_key_once_and_the_old_one_stops(tenants):
    client = client_for(tenants["acme"]["staff"])
    key = tenants["acme"]["key"]
    response = client.post("/admin/keys/virtualkey/", {"action": "regenerate_key", "_selected_action": [key.pk]},
                           follow=True)
    new_raw = re.search(r'value="(sk-[^"]+)"', response.content.decode()).group(1)
    key.refresh_from_db()
    assert key.token_hash == hashlib.sha256(new_raw.encode()).hexdigest()
    assert key.token_hash != hashlib.sha256(tenants["acme"]["raw_key"].encode()).hexdigest()


def test_reset_spend(tenants):
    key = tenants["acme"]["key"]
    VirtualKey.objects.filter(pk=key.pk).update(spend=Decimal("3.5"))
    client_for(tenants["acme"]["staff"]).post(
        "/admin/keys/virtualkey/", {"action": "reset_spend", "_selected_action": [key.pk]}
    )
    key.refresh_from_db()
    assert key.spend == 0


def test_a_members_own_limits_in_the_admin_stay_within_the_teams(tenants, django_user_model):
    from apps.teams.models import TeamMembership

    team = tenants["acme"]["team"]
    team.team_member_budget, team.models = Decimal(10), ["gpt-a"]
    team.save()
    user = django_user_model.objects.create_user("acme-dev")
    organization_member_add(organization=tenants["acme"]["organization"], user=user)
    client = client_for(tenants["acme"]["staff"])
    form = {"team": team.pk, "user": user.pk, "role": "member", "max_budget": "1000", "models": '["gpt-a"]'}

    page = client.post("/admin/teams/teammembership/add/", form).content.decode()
    assert "may not exceed the team" in page
    page = client.post("/admin/teams/teammembership/add/", {**form, "max_budget": "5", "models": '["gpt-z"]'})
    assert "The team does not allow gpt-z" in page.content.decode()
    assert not TeamMembership.objects.filter(user=user).exists()
    response = client.post("/admin/teams/teammembership/add/", {**form, "max_budget": "5"})
    assert response.status_code == 302
    assert TeamMembership.objects.get(user=user).max_budget == 5
