"""The admin's spend report per organization and team: the numbers from the daily rollups, the
date range, and the admin's organization scoping."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from decimal import Decimal

import pytest
from django.test import Client

from apps.spend.models import SpendLog
from apps.spend.rollups import daily_spend_rollup, utc_today
from apps.teams.models import OrganizationMembership
from apps.teams.services import organization_create, organization_member_add, team_create

pytestmark = pytest.mark.django_db


def log(name: str, *, key, day, model="gpt-4o", provider="openai", cost="0", status="success",
        cost_status="priced", tokens=(100, 50)):
    moment = datetime.combine(day, time(12), tzinfo=timezone.utc)
    return SpendLog.objects.create(
        request_id=name, key=key, key_hash=key.token_hash, team=key.team, organization=key.organization,
        call_type="chat_completion", model=model, provider=provider, upstream_model=model,
        prompt_tokens=tokens[0], completion_tokens=tokens[1],
        cost=None if cost is None else Decimal(cost), cost_status=cost_status, status=status,
        start_time=moment, end_time=moment,
    )


@pytest.fixture
def world(make_key, django_user_model):
    """Acme (teams research and ops, one key each) and Globex, with a few days of traffic."""
    today = utc_today()
    acme, globex = organization_create(name="acme"), organization_create(name="globex")
    research = team_create(organization=acme, alias="research")
    ops = team_create(organization=acme, alias="ops")
    globex_team = team_create(organization=globex, alias="globex-team")
    research_key, _ = make_key(team=research, organization=acme, alias="research-key")
    ops_key, _ = make_key(team=ops, organization=acme, alias="ops-key")
    globex_key, _ = make_key(team=globex_team, organization=globex, alias="globex-key")

    d2, d1 = today - timedelta(days=2), today - timedelta(days=1)
    log("r1", key=research_key, day=d2, cost="1.00")
    log("r2", key=research_key, day=d2, status="error", cost="0", cost_status="no_usage", tokens=(0, 0))
    log("o1", key=ops_key, day=d2, model="gpt-mini", cost="0.25")
    log("r3", key=research_key, day=d1, cost="2.00")
    for name in ("r4", "r5"):  # a model with no known price: no cost
        log(name, key=research_key, day=d1, model="mystery-model", provider="custom", cost=None,
            cost_status="unpriced")
    log("o2", key=ops_key, day=d1, model="gpt-mini", status="error", cost="0", cost_status="no_usage",
        tokens=(0, 0))
    log("o3", key=ops_key, day=today, cost="0.50")
    log("old", key=research_key, day=today - timedelta(days=40), cost="10.00")  # outside the last 30 days
    log("g1", key=globex_key, day=d1, cost="100.00")
    for day in (today - timedelta(days=40), d2, d1, today):
        daily_spend_rollup(day=day)

    staff = django_user_model.objects.create_user("acme-admin", password="pw", is_staff=True)
    organization_member_add(organization=acme, user=staff, role=OrganizationMembership.Role.ADMIN)
    viewer = django_user_model.objects.create_user("acme-viewer", password="pw", is_staff=True)
    organization_member_add(organization=acme, user=viewer, role=OrganizationMembership.Role.VIEWER)
    return {"today": today, "acme": acme, "globex": globex, "research": research, "ops": ops,
            "globex_team": globex_team, "staff": staff, "viewer": viewer}


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def counts(totals: dict) -> tuple[int, int, int]:
    return totals["requests"], totals["errors"], totals["unpriced_requests"]


def organization_report(organization) -> str:
    return f"/admin/teams/organization/{organization.pk}/spend-report/"


def team_report(team) -> str:
    return f"/admin/teams/team/{team.pk}/spend-report/"


def test_the_organization_report_adds_up_the_last_30_days(world, admin_client):
    page = admin_client.get(organization_report(world["acme"]))

    assert page.status_code == 200
    report = page.context["report"]
    assert (report.start, report.end) == (world["today"] - timedelta(days=29), world["today"])
    assert report.totals["spend"] == Decimal("3.75")  # the $10 of 40 days ago and Globex's $100 are not in
    assert counts(report.totals) == (8, 2, 2)
    assert [(row["key_alias"], row["spend"]) for row in report.top_keys] == [
        ("research-key", Decimal(3)), ("ops-key", Decimal("0.75"))]
    assert [row["model"] for row in report.top_models] == ["gpt-4o", "gpt-mini", "mystery-model"]
    # A model with only unpriced requests has no known spend: empty, never $0.
    assert report.top_models[2]["spend"] is None
    model_errors = [(row["model"], row["errors"], row["requests"], row["error_percent"])
                    for row in report.model_errors]
    assert model_errors == [("gpt-4o", 1, 4, 25.0), ("gpt-mini", 1, 2, 50.0)]
    assert [(row["model"], row["provider"], row["unpriced_requests"]) for row in report.unpriced] == [
        ("mystery-model", "custom", 2)]

    assert len(report.days) == 30
    by_day = {day["day"]: day for day in report.days}
    yesterday = by_day[world["today"] - timedelta(days=1)]
    assert (yesterday["requests"], yesterday["errors"], yesterday["spend"]) == (4, 1, Decimal(2))
    assert yesterday["error_percent"] == 25.0
    assert by_day[world["today"] - timedelta(days=10)]["requests"] == 0

    chart = page.context["chart_data"]
    assert len(chart["x"]) == 30 and chart["spend"][-3:] == [1.25, 2.0, 0.5]
    assert chart["error_rate"][-3:] == [33.33, 25.0, 0.0] and chart["error_rate"][0] is None

    html = page.content.decode()
    assert "$3.7500" in html and 'id="spend-report-data"' in html
    assert "/static/vendor/uplot/uPlot.iife.min.js" in html and "/static/spend/report.js" in html
    assert "globex" not in html


def test_the_team_report_counts_only_the_team(world, admin_client):
    page = admin_client.get(team_report(world["research"]))

    assert page.status_code == 200
    report = page.context["report"]
    assert report.totals["spend"] == Decimal(3)
    assert counts(report.totals) == (5, 1, 2)
    assert [row["key_alias"] for row in report.top_keys] == ["research-key"]
    assert [(row["model"], row["unpriced_requests"]) for row in report.unpriced] == [("mystery-model", 2)]
    assert "Unpriced requests" in page.content.decode()


def test_a_team_with_only_unpriced_traffic_shows_no_spend_rather_than_zero(world, admin_client, make_key):
    team = team_create(organization=world["acme"], alias="unpriced-only")
    key, _ = make_key(team=team, organization=world["acme"], alias="unpriced-key")
    log("u1", key=key, day=world["today"], model="mystery-model", provider="custom", cost=None,
        cost_status="unpriced")
    daily_spend_rollup(day=world["today"])

    page = admin_client.get(team_report(team))

    report = page.context["report"]
    assert report.totals["spend"] is None and report.top_keys[0]["spend"] is None
    assert page.context["chart_data"]["spend"][-1] is None  # a gap in the chart, not a $0 bar
    assert 'id="total-spend">—<' in page.content.decode()


def test_the_date_range_form_picks_the_days(world, admin_client):
    today = world["today"]
    start = today - timedelta(days=45)

    url = organization_report(world["acme"])

    page = admin_client.get(url, {"start": start.isoformat(), "end": today.isoformat()})

    report = page.context["report"]
    assert (report.start, report.end, len(report.days)) == (start, today, 46)
    assert report.totals["spend"] == Decimal("13.75")  # now with the $10 of 40 days ago
    assert f'value="{start.isoformat()}"' in page.content.decode()

    one_day = admin_client.get(url, {"start": today.isoformat(), "end": today.isoformat()})
    assert one_day.context["report"].totals["spend"] == Decimal("0.5")

    only_start = admin_client.get(url, {"start": (today - timedelta(days=1)).isoformat()})
    assert (only_start.context["report"].end, only_start.context["report"].totals["requests"]) == (today, 5)


@pytest.mark.parametrize(
    "query, message",
    [
        ({"start": "not-a-date"}, "Enter a valid date."),
        ({"start": "2025-02-30", "end": "2025-03-10"}, "Enter a valid date."),
        ({"start": "2025-03-10", "end": "2025-03-01"}, "The start date must be on or before the end date."),
        ({"start": "2020-01-01", "end": "2025-01-01"}, "Choose at most 366 days."),
    ],
)
def test_bad_dates_are_explained_not_a_server_error(world, admin_client, query, message):
    page = admin_client.get(organization_report(world["acme"]), query)

    assert page.status_code == 200
    assert page.context["report"] is None
    html = page.content.decode()
    assert message in html and "The date range was not understood" in html
    assert 'id="spend-report-data"' not in html


def test_org_admins_see_their_organizations_reports(world):
    for user in (world["staff"], world["viewer"]):
        client = client_for(user)
        organization_page = client.get(organization_report(world["acme"]))
        assert organization_page.status_code == 200
        assert organization_page.context["report"].totals["spend"] == Decimal("3.75")
        assert client.get(team_report(world["ops"])).context["report"].totals["spend"] == Decimal("0.75")


def test_reports_outside_the_users_organizations_are_refused(world, django_user_model):
    client = client_for(world["staff"])
    assert client.get(organization_report(world["globex"])).status_code == 404
    assert client.get(team_report(world["globex_team"])).status_code == 404
    # Their change pages refuse them too ("doesn't exist" redirect): the report is no way around it.
    assert client.get(f"/admin/teams/organization/{world['globex'].pk}/change/").status_code == 302

    outsider = django_user_model.objects.create_user("no-org-staff", password="pw", is_staff=True)
    assert client_for(outsider).get(organization_report(world["acme"])).status_code in (403, 404)

    not_staff = django_user_model.objects.create_user("not-staff", password="pw")
    login_redirect = client_for(not_staff).get(organization_report(world["acme"]))
    assert login_redirect.status_code == 302 and "/admin/login/" in login_redirect["Location"]

    assert Client().get(team_report(world["research"])).status_code == 302  # anonymous: to the login page


def test_unknown_ids_are_not_found(world, admin_client):
    assert admin_client.get("/admin/teams/organization/00000000-0000-0000-0000-000000000000/spend-report/"
                            ).status_code == 404
    assert admin_client.get("/admin/teams/team/not-a-uuid/spend-report/").status_code == 404


def test_superusers_see_every_organizations_report(world, admin_client):
    page = admin_client.get(organization_report(world["globex"]))
    assert page.status_code == 200 and page.context["report"].totals["spend"] == Decimal(100)


def test_the_report_is_linked_from_the_change_pages_and_the_lists(world, admin_client):
    acme, research = world["acme"], world["research"]
    organization_page = admin_client.get(f"/admin/teams/organization/{acme.pk}/change/").content.decode()
    team_page = admin_client.get(f"/admin/teams/team/{research.pk}/change/").content.decode()
    assert organization_report(acme) in organization_page and "Spend report" in organization_page
    assert team_report(research) in team_page and "Spend report" in team_page
    assert organization_report(acme) in admin_client.get("/admin/teams/organization/").content.decode()
    assert team_report(research) in admin_client.get("/admin/teams/team/").content.decode()

    staff_list = client_for(world["staff"]).get("/admin/teams/team/").content.decode()
    assert team_report(research) in staff_list and team_report(world["globex_team"]) not in staff_list
