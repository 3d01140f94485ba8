"""The playground in a real headless Chromium, against the real gateway server and a fake OpenAI
upstream that streams word by word: the answer arrives piece by piece, then the deployment,
latency, tokens and cost show; the gateway's errors show in the page. A screenshot is kept under
the test artifacts folder (GATEWAY_TEST_ARTIFACTS, default var/test-artifacts)."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.test import Client

from apps.keys.services import virtual_key_create
from apps.spend.models import SpendLog
from apps.teams.services import organization_create, organization_member_add, team_create
from conftest import wait_for
from tests.fakes.openai_upstream import COMPLETION_TOKENS, PROMPT_TOKENS, REPLY_WORDS
from tests.spend.test_admin_report_browser import (  # one browser set-up for every admin browser test
    chromium_context,
    chromium_path,  # noqa: F401 - a fixture
    superuser_session,
    watch_for_errors,
)

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators"),
]

ARTIFACTS = Path(os.environ.get("GATEWAY_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "var" / "test-artifacts"))
ANSWER = "".join(REPLY_WORDS)

# Every text the assistant's answer shows, in order, as the page changes it.
WATCH_ANSWER = """() => {
    window.playgroundTexts = [];
    const transcript = document.getElementById("playground-transcript");
    new MutationObserver(() => {
        const answers = transcript.querySelectorAll(".playground-assistant .playground-text");
        const text = answers.length ? answers[answers.length - 1].textContent : "";
        if (text && window.playgroundTexts[window.playgroundTexts.length - 1] !== text) window.playgroundTexts.push(text);
    }).observe(transcript, {childList: true, subtree: true, characterData: true});
}"""


def org_admin_session(django_user_model, username: str, organization) -> str:
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
    organization_member_add(organization=organization, user=user, role="admin")
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def send(page, message: str) -> None:
    page.fill("#playground-message", message)
    page.click("#playground-send")


def test_the_playground_streams_an_answer_and_prices_it(chromium_path, gateway, make_deployment,  # noqa: F811
                                                        django_user_model):
    # Each word 150 ms after the last: the page must show the answer growing, not all at once.
    deployment = make_deployment("chat-demo", upstream_model="drip-150")
    organization = organization_create(name="Playground Org")
    team = team_create(organization=organization, alias="playground-team")
    key, _ = virtual_key_create(alias="support-bot", team=team)
    session_key = superuser_session(django_user_model, "playground-admin")

    with chromium_context(chromium_path, session_key=session_key, server_url=gateway.url) as browser:
        page = browser.new_page()
        console_errors, failed_responses = watch_for_errors(page)
        assert page.goto(f"{gateway.url}/admin/").status == 200
        page.click("a:text-is('Playground')")  # the dashboard's Models section leads there
        page.wait_for_selector("#playground-form")
        page.evaluate(WATCH_ANSWER)
        page.select_option("#playground-model", "chat-demo")
        page.select_option("#playground-key", f"key:{key.pk}")
        page.fill("#playground-system", "Answer briefly.")
        page.fill("#playground-max-tokens", "64")
        send(page, "Say hello.")
        page.wait_for_function("document.getElementById('playground-cost').textContent.startsWith('$')")
        texts = page.evaluate("window.playgroundTexts")
        answer = page.locator(".playground-assistant .playground-text").inner_text()
        deployment_shown = page.locator("#playground-deployment").inner_text()
        tokens = page.locator("#playground-tokens").inner_text()
        cost = page.locator("#playground-cost").inner_text()
        latency = page.locator("#playground-latency").inner_text()
        spend_log_link = page.locator("#playground-request a").get_attribute("href")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "admin-playground.png"), full_page=True)

    assert answer == ANSWER
    # Token by token: several growing texts, each the start of the next.
    assert len(texts) >= 4, texts
    assert all(later.startswith(earlier) for earlier, later in zip(texts, texts[1:])), texts
    assert texts[-1] == ANSWER
    assert f"#{deployment.pk} chat-demo → openai/drip-150 at {deployment.api_base}" == deployment_shown
    total = PROMPT_TOKENS + COMPLETION_TOKENS
    assert tokens == f"{PROMPT_TOKENS} prompt + {COMPLETION_TOKENS} completion = {total}"
    assert Decimal(cost.removeprefix("$")) > 0
    assert latency.startswith("first token ") and "total" in latency
    assert spend_log_link.startswith("/admin/spend/spendlog/?q=")
    assert not console_errors, console_errors
    assert not failed_responses, failed_responses
    # Logged like any other request of the key, with the same cost the page showed.
    log = wait_for(lambda: SpendLog.objects.filter(key=key).first())
    assert log is not None and log.is_stream and "playground" in log.metadata["tags"]
    assert log.cost == Decimal(cost.removeprefix("$"))


def test_an_org_admin_sees_the_gateways_errors_then_a_streamed_answer(chromium_path, gateway,  # noqa: F811
                                                                      make_deployment, django_user_model):
    make_deployment("chat-demo", upstream_model="drip-50")
    make_deployment("chat-other")
    organization = organization_create(name="Tenant Org")
    team = team_create(organization=organization, alias="tenant-team")
    limited, _ = virtual_key_create(alias="only-other", team=team, models=["chat-other"])
    session_key = org_admin_session(django_user_model, "tenant-admin", organization)

    with chromium_context(chromium_path, session_key=session_key, server_url=gateway.url) as browser:
        page = browser.new_page()
        console_errors, failed_responses = watch_for_errors(page)
        assert page.goto(f"{gateway.url}/admin/playground/").status == 200
        page.select_option("#playground-model", "chat-demo")
        page.select_option("#playground-key", f"key:{limited.pk}")
        send(page, "Hello?")
        page.wait_for_selector("#playground-error:not([hidden])")
        error = page.locator("#playground-error").inner_text()
        result_hidden = page.locator("#playground-result").is_hidden()  # no answer, nothing to show of one
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "admin-playground-error.png"), full_page=True)
        # The same question as itself: its own playground key, made in its organization.
        page.select_option("#playground-key", f"self:{organization.pk}")
        send(page, "Hello again?")
        page.wait_for_function("document.getElementById('playground-cost').textContent.startsWith('$')")
        answer = page.locator(".playground-assistant .playground-text").last.inner_text()
        error_hidden = page.locator("#playground-error").is_hidden()
        bubbles = page.locator(".playground-text").all_inner_texts()  # the refused message left no trace

    assert error.startswith("403 model_not_allowed: ") and "chat-demo" in error, error
    assert result_hidden
    assert answer == ANSWER and error_hidden and bubbles == ["Hello again?", ANSWER]
    # The browser's own note of the refusal the page was made to show, and nothing else.
    assert [e for e in console_errors if "/v1/chat/completions" not in e] == [], console_errors
    assert [r for r in failed_responses if "/v1/chat/completions" not in r] == [], failed_responses
    own = wait_for(lambda: SpendLog.objects.filter(key__alias="playground: tenant-admin (Tenant Org)").first())
    assert own is not None and own.organization_id == organization.pk


def test_a_dead_redis_is_a_clear_error_in_the_page(chromium_path, gateway, make_deployment,  # noqa: F811
                                                   django_user_model, monkeypatch):
    from apps.keys import playground

    make_deployment("chat-demo")
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5, socket_timeout=0.5)
    # The server runs in this process: its store is this one.
    monkeypatch.setattr(playground, "_store", playground.RedisPlaygroundStore())
    monkeypatch.setattr(playground, "sync_redis", lambda: dead)
    session_key = superuser_session(django_user_model, "playground-admin")

    with chromium_context(chromium_path, session_key=session_key, server_url=gateway.url) as browser:
        page = browser.new_page()
        console_errors, _ = watch_for_errors(page)
        page.goto(f"{gateway.url}/admin/playground/")
        send(page, "Anyone there?")
        page.wait_for_selector("#playground-error:not([hidden])")
        error = page.locator("#playground-error").inner_text()

    assert error.startswith("503 playground_unavailable: ") and "Redis is unreachable" in error, error
    assert all("503" in message for message in console_errors), console_errors  # the browser's note of it
