"""The Lago billing ids of organizations and teams through the management API: proxy admin only."""

import pytest
from rest_framework.test import APIClient

from conftest import MASTER_KEY

pytestmark = pytest.mark.django_db


def api(key: str = MASTER_KEY) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def test_proxy_admin_sets_and_reads_the_lago_ids():
    created = api().post("/organization/new", {"organization_alias": "acme", "lago_external_customer_id": "cus_1",
                                              "lago_external_subscription_id": "sub_1"}, format="json")
    assert created.status_code == 200, created.content
    assert created.json()["lago_external_customer_id"] == "cus_1"
    organization_id = created.json()["organization_id"]
    team = api().post("/team/new", {"team_alias": "t", "organization_id": organization_id,
                                    "lago_external_subscription_id": "sub_team"}, format="json")
    assert team.json()["lago_external_subscription_id"] == "sub_team"
    updated = api().post("/organization/update", {"organization_id": organization_id,
                                                  "lago_external_subscription_id": "sub_2"}, format="json")
    assert updated.json()["lago_external_subscription_id"] == "sub_2"


def test_an_organization_admin_may_not_move_its_billing(django_user_model, make_key):
    from apps.teams.models import OrganizationMembership
    from apps.teams.services import organization_create, organization_member_add

    organization = organization_create(name="acme", lago_external_subscription_id="sub_1")
    admin = django_user_model.objects.create_user("org-admin")
    organization_member_add(organization=organization, user=admin, role=OrganizationMembership.Role.ADMIN)
    _, raw_key = make_key(user=admin, organization=organization)
    response = api(raw_key).post("/organization/update", {"organization_id": str(organization.pk),
                                                         "lago_external_subscription_id": "sub_other"},
                                 format="json")
    assert response.status_code == 403
    organization.refresh_from_db()
    assert organization.lago_external_subscription_id == "sub_1"
