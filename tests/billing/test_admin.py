"""The Lago ids are editable in the admin; the billing outbox is visible to operators only."""

import pytest

from apps.teams.models import Organization

pytestmark = pytest.mark.django_db(transaction=True)


def test_organization_and_team_lago_ids_are_editable_in_the_admin(admin_client, organization, team):
    page = admin_client.get(f"/admin/teams/organization/{organization.pk}/change/").content.decode()
    assert 'name="lago_external_customer_id"' in page and 'name="lago_external_subscription_id"' in page
    page = admin_client.get(f"/admin/teams/team/{team.pk}/change/").content.decode()
    assert 'name="lago_external_customer_id"' in page and 'name="lago_external_subscription_id"' in page
    response = admin_client.post(
        f"/admin/teams/organization/{organization.pk}/change/",
        {
            "name": organization.name,
            "budget_anchor_0": "2026-01-01",
            "budget_anchor_1": "00:00:00",
            "spend": "0",
            "metadata": "{}",
            "models": "[]",
            "lago_external_customer_id": "cust_9",
            "lago_external_subscription_id": "sub_9",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
            "teams-TOTAL_FORMS": "0",
            "teams-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    organization.refresh_from_db()
    assert (organization.lago_external_customer_id, organization.lago_external_subscription_id) == (
        "cust_9",
        "sub_9",
    )
    assert Organization.objects.filter(lago_external_customer_id="cust_9").exists()


def test_the_outbox_is_for_superusers_only(client, django_user_model, organization):
    from apps.teams.models import OrganizationMembership

    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    OrganizationMembership.objects.create(organization=organization, user=staff, role="admin")
    client.force_login(staff)
    assert client.get("/admin/billing/billingevent/").status_code == 403
    assert client.get("/admin/billing/billingwebhook/").status_code == 403


def test_organization_admins_see_the_lago_ids_but_cannot_change_them(client, django_user_model, organization):
    from apps.teams.models import OrganizationMembership

    organization.lago_external_customer_id = "cust_1"
    organization.save()
    staff = django_user_model.objects.create_user("orgadmin", password="pw", is_staff=True)
    OrganizationMembership.objects.create(organization=organization, user=staff, role="admin")
    client.force_login(staff)
    page = client.get(f"/admin/teams/organization/{organization.pk}/change/").content.decode()
    assert "cust_1" in page and 'name="lago_external_customer_id"' not in page
