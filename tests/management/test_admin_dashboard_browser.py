"""The dashboard in a real headless Chromium, against the real gateway server: its charts draw,
its links work, and no script error shows. A screenshot is kept under the test artifacts folder
(GATEWAY_TEST_ARTIFACTS, default var/test-artifacts) for people to look at."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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


def test_the_dashboard_draws_its_charts_in_a_browser(chromium_path, gateway, make_key, django_user_model):  # noqa: F811
    organization = organization_create(name="Dashboard Org")
    team = team_create(organization=organization, alias="dashboard-team")
    traffic(organization, team, make_key)
    session_key = superuser_session(django_user_model, "dashboard-admin")

    with chromium_context(chromium_path, session_key=session_key, server_url=gateway.url) as browser:
        page = browser.new_page()
        console_errors, failed_responses = watch_for_errors(page)
        response = page.goto(f"{gateway.url}/admin/")
        assert response.status == 200
        page.wait_for_selector("#chart-days canvas")
        page.wait_for_selector("#chart-hours canvas")
        assert page.locator("#spend-today").inner_text() == "$2.00"
        day_bars = page.evaluate(COUNT_PIXELS_NEAR, ["#chart-days", [65, 118, 144]])
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "admin-dashboard.png"), full_page=True)
        page.click("text=Deployment health")
        page.wait_for_selector("text=active deployment")

    assert day_bars > 200, day_bars
    assert not console_errors, console_errors
    assert not failed_responses, failed_responses
