"""A team on one page in the admin: its members, its keys (only its own), its limits with their help
texts, and a 30-day spend chart fed from the DailySpend rollup (never the spend logs)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client

from apps.spend.models import DailySpend
from apps.spend.rollups import utc_today
from apps.teams.models import OrganizationMembership, TeamMembership
from apps.teams.services import organization_create, organization_member_add, team_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def teams(make_key, django_user_model):
    organization = organization_create(name="Acme")
    research = team_create(organization=organization, alias="research", max_budget=Decimal("500"), rpm_limit=60)
    other = team_create(organization=organization, alias="sales")
    member = django_user_model.objects.create_user("ada")
    TeamMembership.objects.create(team=research, user=member, role=TeamMembership.Role.MEMBER)
    make_key(team=research, alias="research-bot", max_budget=Decimal("12"))
    make_key(team=research, alias="research-blocked", blocked=True)
    make_key(team=other, alias="sales-bot")
    today = utc_today()
    for days_ago, cost, requests in ((0, "2.50", 5), (3, "1.25", 2)):
        DailySpend.objects.create(day=today - timedelta(days=days_ago), organization_id=organization.pk,
                                  team_id=research.pk,
                                  model="gpt-4o", requests=requests, cost=Decimal(cost))
    DailySpend.objects.create(day=today, organization_id=organization.pk, team_id=other.pk, model="gpt-4o", requests=9,
                              cost=Decimal("99"))
    return {"organization": organization, "research": research, "sales": other, "member": member}


def page_of(client, team) -> str:
    response = client.get(f"/admin/teams/team/{team.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def test_the_team_page_shows_members_keys_limits_and_spend(admin_client, teams):
    html = page_of(admin_client, teams["research"])

    # members: the membership inline
    assert "ada" in html and 'id="memberships-group"' in html
    # keys: the team's own, linked, with their budget and state; not another team's
    keys = html[html.index('id="team-keys"'):html.index('id="team-spend"')]
    assert "research-bot" in keys and "research-blocked" in keys and "sales-bot" not in keys
    assert "Keys (2)" in keys and "<strong>blocked</strong>" in keys and "12.00" in keys
    assert "/admin/keys/virtualkey/?team__id__exact=" in keys
    assert f"/admin/keys/virtualkey/add/?team={teams['research'].pk}" in keys
    # limits: a fieldset of their own, explained
    assert "<h2" in html and ">Limits</h2>" in html and "the strictest wins" in html
    assert "Limits of each member" in html
    assert "USD per budget period" in html  # the fields' help texts


def test_the_spend_chart_reads_the_rollup_of_that_team_only(admin_client, teams):
    html = page_of(admin_client, teams["research"])

    assert 'id="chart-days"' in html
    assert "vendor/uplot/uPlot.iife.min.js" in html and "management/dashboard.js" in html
    series = json.loads(re.search(r'<script id="dashboard-days" type="application/json">(.*?)</script>',
                                  html, re.S).group(1))
    assert len(series) == 30
    assert series[-1]["t"] == utc_today().isoformat()
    assert (series[-1]["cost"], series[-1]["requests"]) == (2.5, 5)  # not sales' $99
    assert (series[-4]["cost"], series[-4]["requests"]) == (1.25, 2)
    assert sum(day["requests"] for day in series) == 7
    totals = re.search(r'id="team-spend-totals">(.*?)</p>', html, re.S).group(1)
    assert "$3.75" in totals and "7 requests" in totals


def test_a_team_without_keys_says_how_to_make_one(admin_client, teams):
    empty = team_create(organization=teams["organization"], alias="empty")
    html = page_of(admin_client, empty)
    assert "No keys in this team yet" in html and f"add/?team={empty.pk}" in html


def test_an_organization_viewer_sees_the_page_without_a_create_link(teams, django_user_model):
    viewer = django_user_model.objects.create_user("viewer", is_staff=True)
    organization_member_add(organization=teams["organization"], user=viewer, role=OrganizationMembership.Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    html = page_of(client, teams["research"])
    assert "research-bot" in html and 'id="chart-days"' in html
    assert "virtualkey/add/" not in html


def test_another_organizations_staff_do_not_get_the_team_page(teams, django_user_model):
    outsider = django_user_model.objects.create_user("outsider", is_staff=True)
    globex = organization_create(name="Globex")
    organization_member_add(organization=globex, user=outsider, role=OrganizationMembership.Role.ADMIN)
    client = Client()
    client.force_login(outsider)
    response = client.get(f"/admin/teams/team/{teams['research'].pk}/change/")
    assert response.status_code == 302  # Django's "doesn't exist", to the index
    assert "research-bot" not in client.get(response["Location"]).content.decode()
    # Its own team's page, with its own keys only.
    own = team_create(organization=globex, alias="globex-team")
    html = page_of(client, own)
    assert "Keys (0)" in html and "research-bot" not in html
