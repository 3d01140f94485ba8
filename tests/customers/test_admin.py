"""End users and budgets in the admin: superusers see and change them, an organization's staff do not."""

import pytest
from django.test import Client

from apps.customers.models import EndUser
from apps.customers.services import budget_create, end_user_create
from apps.teams.services import organization_create, organization_member_add

pytestmark = pytest.mark.django_db


@pytest.fixture
def customers():
    acme, globex = organization_create(name="Acme"), organization_create(name="Globex")
    return {
        "alice": end_user_create(organization=acme, user_id="alice"),
        "gold": budget_create(organization=globex, budget_id="gold", max_budget=5),
        "acme": acme,
    }


def test_superusers_see_and_change_end_users(customers, admin_client):
    assert "alice" in admin_client.get("/admin/customers/enduser/").content.decode()
    assert "gold" in admin_client.get("/admin/customers/budget/").content.decode()
    alice = customers["alice"]
    form = {"organization": str(customers["acme"].pk), "user_id": "alice", "alias": "", "blocked": "on",
            "budget": "", "metadata": "{}"}
    response = admin_client.post(f"/admin/customers/enduser/{alice.pk}/change/", form)
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.blocked
    # Another organization's budget is refused on the form.
    response = admin_client.post(f"/admin/customers/enduser/{alice.pk}/change/",
                                 {**form, "budget": str(customers["gold"].pk)})
    assert response.status_code == 200 and "another organization" in response.content.decode()
    assert EndUser.objects.get(pk=alice.pk).budget is None


def test_an_organizations_staff_do_not_reach_them(customers, django_user_model):
    staff = django_user_model.objects.create_user("acme-admin", password="pw", is_staff=True)
    organization_member_add(organization=customers["acme"], user=staff, role="admin")
    client = Client()
    client.force_login(staff)
    assert client.get("/admin/customers/enduser/").status_code == 403
    assert client.get("/admin/customers/budget/").status_code == 403
    assert "customers" not in client.get("/admin/").content.decode()


def test_an_end_users_spend_logs_are_found_by_its_id(admin_client):
    from datetime import datetime, timezone

    from apps.spend.models import SpendLog

    now = datetime.now(timezone.utc)
    for request_id, end_user in (("r-alice", "alice"), ("r-bob", "bob")):
        SpendLog.objects.create(request_id=request_id, end_user=end_user, call_type="chat_completion", model="m",
                                status="success", start_time=now, end_time=now)
    page = admin_client.get("/admin/spend/spendlog/", {"q": "alice"}).content.decode()
    assert "r-alice" in page and "r-bob" not in page
