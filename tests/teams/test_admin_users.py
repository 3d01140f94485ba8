"""Users in the admin: superusers change them; an organization's staff view the people of their
organizations (so a key's or a membership's user can be picked) and nobody else, and change none."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from apps.teams.services import organization_create, organization_member_add, team_create, team_member_add

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(django_user_model):
    acme, globex = organization_create(name="Acme"), organization_create(name="Globex")
    admin = django_user_model.objects.create_user("acme-admin", is_staff=True)
    organization_member_add(organization=acme, user=admin, role="admin")
    ada = django_user_model.objects.create_user("ada-acme", email="ada@acme.test")
    organization_member_add(organization=acme, user=ada, role="member")
    bob = django_user_model.objects.create_user("bob-acme-team")
    team_member_add(team=team_create(organization=acme, alias="research"), user=bob, role="member")
    eve = django_user_model.objects.create_user("eve-globex", email="eve@globex.test")
    organization_member_add(organization=globex, user=eve, role="member")
    client = Client()
    client.force_login(admin)
    return {"client": client, "ada": ada, "bob": bob, "eve": eve}


def _autocomplete(client, term=""):
    response = client.get("/admin/autocomplete/", {"app_label": "keys", "model_name": "virtualkey",
                                                   "field_name": "user", "term": term})
    assert response.status_code == 200, response.status_code
    return {item["text"] for item in json.loads(response.content)["results"]}


def test_an_org_admin_picks_a_keys_user_among_its_organizations_people_only(people):
    found = _autocomplete(people["client"])
    assert {"ada-acme", "bob-acme-team"} <= found
    assert "eve-globex" not in found and _autocomplete(people["client"], "eve") == set()


def test_an_org_admin_views_its_people_and_changes_no_one(people):
    client = people["client"]
    listing = client.get("/admin/auth/user/").content.decode()
    assert "ada-acme" in listing and "eve-globex" not in listing and "eve@globex.test" not in listing
    page = client.get(f"/admin/auth/user/{people['ada'].pk}/change/")
    assert page.status_code == 200 and "pbkdf2" not in page.content.decode()
    assert client.get(f"/admin/auth/user/{people['eve'].pk}/change/").status_code in (302, 403, 404)
    refused = client.post(f"/admin/auth/user/{people['ada'].pk}/change/",
                          {"username": "ada-acme", "is_superuser": "on", "is_staff": "on"})
    assert refused.status_code == 403
    people["ada"].refresh_from_db()
    assert not people["ada"].is_superuser and not people["ada"].is_staff
    assert client.get("/admin/auth/user/add/").status_code == 403


def test_superusers_see_and_change_everyone(admin_client, people):
    listing = admin_client.get("/admin/auth/user/").content.decode()
    assert "ada-acme" in listing and "eve-globex" in listing
    assert "password" in admin_client.get(f"/admin/auth/user/{people['eve'].pk}/change/").content.decode()
