"""The changelists' filters on a relation (organization, team) list only what the staff user's own
rows point to: another organization's name never shows in its sidebar (it did: Django's related
filter lists every row of the related model)."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import Client

from apps.keys.services import virtual_key_create
from apps.providers.models import ModelDeployment
from apps.teams.models import OrganizationMembership
from apps.teams.services import organization_create, organization_member_add, team_create, team_member_add

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme_admin(django_user_model):
    for name in ("acme", "globex"):
        organization = organization_create(name=f"{name}-org")
        team = team_create(organization=organization, alias=f"{name}-team")
        virtual_key_create(alias=f"{name}-key", team=team, organization=organization)
        member = django_user_model.objects.create_user(f"{name}-member")
        team_member_add(team=team, user=member, role="member")
        ModelDeployment.objects.create(model_name=f"{name}-model", provider="openai", upstream_model="x",
                                       organization=organization)
        if name == "acme":
            staff = django_user_model.objects.create_user("acme-admin", password="pw", is_staff=True)
            organization_member_add(organization=organization, user=staff, role=OrganizationMembership.Role.ADMIN)
    return staff


@pytest.mark.parametrize("url, mine", [
    ("/admin/teams/team/", "acme-team"),
    ("/admin/keys/virtualkey/", "acme-key"),
    ("/admin/teams/teammembership/", "acme-member"),
    ("/admin/providers/modeldeployment/", "acme-model"),
])
def test_related_filters_list_only_the_staff_users_organization(acme_admin, url, mine):
    client = Client()
    client.force_login(acme_admin)
    page = client.get(url).content.decode()
    assert mine in page
    assert "globex" not in page  # the organization's name, or a team's "globex-team (globex-org)"


def test_superusers_filters_list_every_organization(acme_admin, admin_client):
    page = admin_client.get("/admin/keys/virtualkey/").content.decode()
    assert "acme-team (acme-org)" in page and "globex-team (globex-org)" in page


def test_every_scoped_admins_relation_filter_is_scoped(acme_admin, rf):
    """Whatever filters a scoped admin declares on relations, its staff users get the related-only kind."""
    from apps.management.admin_scope import OrganizationScopedAdmin

    request = rf.get("/admin/")
    request.user = acme_admin
    checked = 0
    for model_admin in admin.site._registry.values():
        if not isinstance(model_admin, OrganizationScopedAdmin):
            continue
        for entry in model_admin.get_list_filter(request):
            assert not model_admin._is_relation(entry), (model_admin, entry)
            if isinstance(entry, tuple) and entry[1] is admin.RelatedOnlyFieldListFilter:
                checked += 1
    assert checked >= 4


def test_django_related_filter_named_outright_is_scoped_too(acme_admin, rf):
    from apps.teams.models import Team

    model_admin = admin.site._registry[Team]
    request = rf.get("/admin/")
    request.user = acme_admin
    model_admin.list_filter = ("blocked", ("organization", admin.RelatedFieldListFilter))
    try:
        assert model_admin.get_list_filter(request) == ("blocked", ("organization", admin.RelatedOnlyFieldListFilter))
    finally:
        del model_admin.list_filter  # back to the class's
