"""Empty-state hints on the admin's lists (apps.management.admin_hints): a list with no rows at all
says what belongs there and links to how the first one is made; a filter or search that matches
nothing, or a list with rows, shows no hint; links are only those the staff user may follow."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from django.test import Client

from apps.providers.models import ModelDeployment
from apps.spend.models import SpendLog
from apps.teams.models import OrganizationMembership
from apps.teams.services import organization_create, organization_member_add, team_create

pytestmark = pytest.mark.django_db


def hint(html: str) -> str | None:
    found = re.search(r'<p class="empty-hint" id="empty-hint">(.*?)</p>', html, re.S)
    return found.group(1) if found else None


@pytest.mark.parametrize("url, text, links", [
    ("/admin/providers/modeldeployment/", "No deployments yet",
     ["/admin/providers/modeldeployment/add/", "/admin/providers/modeldeployment/import-config/"]),
    ("/admin/keys/virtualkey/", "No keys yet", ["/admin/keys/virtualkey/add/"]),
    ("/admin/teams/team/", "No teams yet", ["/admin/teams/team/add/"]),
    ("/admin/teams/organization/", "No organizations yet", ["/admin/teams/organization/add/"]),
    ("/admin/spend/spendlog/", "No requests logged yet",
     ["/admin/keys/virtualkey/add/", "/admin/providers/modeldeployment/add/"]),
    ("/admin/billing/billingevent/", "No billing events yet", []),
])
def test_an_empty_list_says_what_goes_there_and_how(admin_client, url, text, links):
    html = admin_client.get(url).content.decode()
    shown = hint(html)
    assert shown is not None, url
    assert text in shown
    for link in links:
        assert f'href="{link}"' in shown, link
    assert "management/admin_pages.css" in html


def test_the_deployments_hint_reads_add_one_or_import_config_yaml(admin_client):
    shown = re.sub(r"<[^>]+>", "", hint(admin_client.get("/admin/providers/modeldeployment/").content.decode()))
    assert shown.startswith("No deployments yet: add one or import config.yaml.")


def test_a_list_with_rows_or_a_filter_matching_nothing_shows_no_hint(admin_client):
    assert hint(admin_client.get("/admin/teams/team/").content.decode()) is not None
    organization = organization_create(name="Acme")
    team_create(organization=organization, alias="research")
    assert hint(admin_client.get("/admin/teams/team/").content.decode()) is None
    assert hint(admin_client.get("/admin/teams/team/?q=nothing-matches-this").content.decode()) is None
    assert hint(admin_client.get("/admin/teams/team/?blocked__exact=1").content.decode()) is None

    assert hint(admin_client.get("/admin/spend/spendlog/").content.decode()) is not None
    now = datetime.now(timezone.utc)
    SpendLog.objects.create(request_id="r1", call_type="chat_completion", model="m", status="success",
                            start_time=now, end_time=now)
    assert hint(admin_client.get("/admin/spend/spendlog/").content.decode()) is None
    ModelDeployment.objects.create(model_name="gpt", provider="openai", upstream_model="gpt")
    assert hint(admin_client.get("/admin/providers/modeldeployment/").content.decode()) is None


def test_organization_staff_get_only_the_links_they_may_follow(django_user_model):
    organization = organization_create(name="Acme")
    staff = django_user_model.objects.create_user("acme-admin", is_staff=True)
    organization_member_add(organization=organization, user=staff, role=OrganizationMembership.Role.ADMIN)
    viewer = django_user_model.objects.create_user("acme-viewer", is_staff=True)
    organization_member_add(organization=organization, user=viewer, role=OrganizationMembership.Role.VIEWER)
    # Another organization's deployment and keys are not "rows" for acme's staff.
    other = organization_create(name="Globex")
    ModelDeployment.objects.create(model_name="globex-gpt", provider="openai", upstream_model="x", organization=other)

    admin_client, viewer_client = Client(), Client()
    admin_client.force_login(staff)
    viewer_client.force_login(viewer)

    deployments = hint(admin_client.get("/admin/providers/modeldeployment/").content.decode())
    assert "No deployments yet" in deployments
    assert "import-config" not in deployments and "/add/" not in deployments  # the proxy admin's
    keys = hint(admin_client.get("/admin/keys/virtualkey/").content.decode())
    assert 'href="/admin/keys/virtualkey/add/"' in keys
    viewer_keys = hint(viewer_client.get("/admin/keys/virtualkey/").content.decode())
    assert "No keys yet" in viewer_keys and "href" not in viewer_keys
    logs = re.sub(r"<[^>]+>", "", hint(admin_client.get("/admin/spend/spendlog/").content.decode()))
    assert logs.startswith("No requests logged yet: create a key.")  # deployments are the proxy admin's


def test_form_help_texts_explain_the_unclear_fields(admin_client):
    html = admin_client.get("/admin/keys/virtualkey/add/").content.decode()
    for text in ("A key in a team acts only inside it", "Who the key belongs to", "A blocked key is refused at once",
                 "After this the key is refused"):
        assert text in html, text
    html = admin_client.get("/admin/teams/team/add/").content.decode()
    for text in ("A blocked team's keys are all refused", "unique in its organization", "the strictest wins"):
        assert text in html, text
