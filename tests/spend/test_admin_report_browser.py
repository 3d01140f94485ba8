"""The spend report in a real headless Chromium, against the real gateway server: the vendored
chart library and the page's script load, and the charts are drawn with the data."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test import Client

from apps.spend.models import SpendLog
from apps.spend.rollups import daily_spend_rollup, utc_today
from apps.teams.services import organization_create, team_create

CHROMIUM = "/usr/bin/chromium"
# What works here: no sandbox (root in a container), no GPU, no calls home.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.timeout(90),
    # WhiteNoise hands Django's ASGI handler a synchronous file iterator; Django says so, and serves it.
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators"),
]


@pytest.fixture
def chromium_path():
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing: under CI the browser tests must run "
                    "(.ci/run installs Debian's chromium)")
    pytest.skip(f"{CHROMIUM} is missing: `apt-get install -y chromium` to run the browser tests")


@contextmanager
def chromium_context(chromium_path: str, *, session_key: str, server_url: str):
    """A fresh headless Chromium logged into the admin with `session_key`. Playwright's sync API
    runs an event loop in this thread: the ORM (which refuses to run under one) must be done first."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        with sync_playwright() as playwright:
            # A persistent context is how Playwright takes a fresh --user-data-dir of our own.
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True,
                viewport={"width": 1280, "height": 900},
            )
            context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session_key,
                                  "domain": urlsplit(server_url).hostname, "path": "/"}])
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def superuser_session(django_user_model, username: str) -> str:
    client = Client()
    client.force_login(django_user_model.objects.create_superuser(username, password="pw"))
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def watch_for_errors(page) -> tuple[list, list]:
    """Script errors and failed loads, but the browser's own favicon.ico (the admin names none)."""
    console_errors, failed_responses = [], []

    def on_console(message):
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            console_errors.append(f"{message.text} ({message.location.get('url')})")

    def on_response(response):
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            failed_responses.append(f"{response.status} {response.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    page.on("response", on_response)
    return console_errors, failed_responses


def traffic(organization, team, make_key) -> None:
    key, _ = make_key(team=team, organization=organization, alias="browser-key")
    today = utc_today()
    requests = [(6, "gpt-4o", "1.50", "success", "priced"), (4, "gpt-4o", "3.25", "success", "priced"),
                (4, "gpt-4o", "0", "error", "no_usage"), (2, "gpt-4o", "0.75", "success", "priced"),
                (2, "mystery-model", None, "success", "unpriced"), (0, "gpt-4o", "2.00", "success", "priced")]
    for n, (days_ago, model, cost, status, cost_status) in enumerate(requests):
        moment = datetime.combine(today - timedelta(days=days_ago), time(9), tzinfo=timezone.utc)
        SpendLog.objects.create(
            request_id=f"browser-{n}", key=key, key_hash=key.token_hash, team=team, organization=organization,
            call_type="chat_completion", model=model, provider="openai", prompt_tokens=100,
            completion_tokens=20, cost=None if cost is None else Decimal(cost), status=status,
            cost_status=cost_status, start_time=moment, end_time=moment,
        )
    for days_ago in (6, 4, 2, 0):
        daily_spend_rollup(day=today - timedelta(days=days_ago))


# Pixels of a chart's canvas near a colour (the series' stroke or fill): the bars and lines, not
# the axes and grid, which are grey.
COUNT_PIXELS_NEAR = """([selector, rgb]) => {
    const canvas = document.querySelector(selector + " canvas");
    if (!canvas) return -1;
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let count = 0;
    for (let i = 0; i < pixels.length; i += 4) {
        if (pixels[i + 3] > 60 && Math.abs(pixels[i] - rgb[0]) < 30 && Math.abs(pixels[i + 1] - rgb[1]) < 30
            && Math.abs(pixels[i + 2] - rgb[2]) < 30) count++;
    }
    return count;
}"""


def test_the_report_draws_its_charts_in_a_browser(chromium_path, gateway, make_key, django_user_model):
    organization = organization_create(name="Browser Org")
    team = team_create(organization=organization, alias="browser-team")
    traffic(organization, team, make_key)
    session_key = superuser_session(django_user_model, "browser-admin")

    with chromium_context(chromium_path, session_key=session_key, server_url=gateway.url) as browser:
        page = browser.new_page()
        console_errors, failed_responses = watch_for_errors(page)

        response = page.goto(f"{gateway.url}/admin/teams/organization/{organization.pk}/spend-report/")

        assert response.status == 200
        page.wait_for_selector("#spend-chart canvas")
        page.wait_for_selector("#errors-chart canvas")
        assert page.evaluate("typeof uPlot") == "function"  # the vendored library, from our static files
        assert page.title().startswith("Spend report: Browser Org")
        assert page.locator("#total-spend").inner_text() == "$7.5000"
        assert page.locator("#unpriced tbody td").all_inner_texts() == ["mystery-model", "openai", "1"]
        spend_bars = page.evaluate(COUNT_PIXELS_NEAR, ["#spend-chart", [65, 118, 144]])
        request_bars = page.evaluate(COUNT_PIXELS_NEAR, ["#errors-chart", [121, 174, 200]])
        error_line = page.evaluate(COUNT_PIXELS_NEAR, ["#errors-chart", [186, 33, 33]])
        screenshot = os.environ.get("SPEND_REPORT_SCREENSHOT")  # to look at the page yourself
        if screenshot:
            page.screenshot(path=screenshot, full_page=True)

    assert spend_bars > 500, spend_bars
    assert request_bars > 500, request_bars
    assert error_line > 20, error_line
    assert not console_errors, console_errors
    assert not failed_responses, failed_responses


def test_a_refused_date_range_loads_without_script_errors(chromium_path, gateway, organization,
                                                          django_user_model):
    session_key = superuser_session(django_user_model, "browser-admin")

    with chromium_context(chromium_path, session_key=session_key, server_url=gateway.url) as browser:
        page = browser.new_page()
        console_errors, failed_responses = watch_for_errors(page)

        page.goto(f"{gateway.url}/admin/teams/organization/{organization.pk}/spend-report/"
                  "?start=2025-03-10&end=2025-03-01")

        html = page.content()
        charts = page.locator("#spend-chart canvas").count()

    assert "The start date must be on or before the end date." in html
    assert charts == 0
    assert not console_errors, console_errors
    assert not failed_responses, failed_responses
