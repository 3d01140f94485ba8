"""A team's page in a real headless Chromium, against the real gateway server: its 30-day spend chart
is drawn (the dashboard's script and the vendored chart library, from the team's rollups) beside
its members and keys, without script errors. A screenshot is kept under the test artifacts folder
(GATEWAY_TEST_ARTIFACTS, default var/test-artifacts) for people to look at."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from apps.teams.models import TeamMembership
from apps.teams.services import organization_create, team_create
from tests.spend.test_admin_report_browser import (  # one browser set-up for every admin browser test
    COUNT_PIXELS_NEAR,
    chromium_context,
    chromium_path,  # noqa: F401 - a fixture
    superuser_session,
    traffic,
    watch_for_errors,
)

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators"),
]

ARTIFACTS = Path(os.environ.get("GATEWAY_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "var" / "test-artifacts"))


def test_the_team_page_draws_its_spend_chart(chromium_path, gateway, make_key, django_user_model):  # noqa: F811
    organization = organization_create(name="Team Page Org")
    team = team_create(organization=organization, alias="team-page", rpm_limit=600)
    traffic(organization, team, make_key)  # a key "browser-key", and rollups over a week
    member = django_user_model.objects.create_user("grace")
    TeamMembership.objects.create(team=team, user=member, role=TeamMembership.Role.ADMIN)
    session_key = superuser_session(django_user_model, "team-admin")

    with chromium_context(chromium_path, session_key=session_key, server_url=gateway.url) as browser:
        page = browser.new_page()
        console_errors, failed_responses = watch_for_errors(page)
        response = page.goto(f"{gateway.url}/admin/teams/team/{team.pk}/change/")
        assert response.status == 200
        page.wait_for_selector("#chart-days canvas")
        bars = page.evaluate(COUNT_PIXELS_NEAR, ["#chart-days", [65, 118, 144]])
        keys = page.inner_text("#team-keys")
        totals = page.inner_text("#team-spend-totals")
        members = page.inner_text("#memberships-group")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "admin-team.png"), full_page=True)

    assert bars > 200, bars
    assert "browser-key" in keys and "Keys (1)" in keys
    assert "$7.50" in totals and "6 requests" in totals
    assert "grace" in members
    assert not console_errors, console_errors
    assert not failed_responses, failed_responses
