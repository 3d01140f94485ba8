"""Budget alerts reach Slack and a JSON webhook: a soft budget crossed once, an exhausted budget
once per period however many requests it refuses; posting never holds a request up."""

from decimal import Decimal

import httpx
import pytest
from aiohttp import web

from conftest import wait_for
from tests.fakes.server import AiohttpThread

MESSAGES = [{"role": "user", "content": "hi"}]


class AlertReceiver:
    """Slack's incoming webhook and a plain JSON webhook, on loopback; fails the first N posts."""

    def __init__(self, fail_first: int = 0) -> None:
        self.slack: list[dict] = []
        self.webhook: list[dict] = []
        self.fail_first = fail_first
        app = web.Application()
        app.router.add_post("/services/T000/B000/XXXX", self._slack)
        app.router.add_post("/hooks/budget", self._webhook)
        self.server = AiohttpThread(app)

    async def _slack(self, request):
        self.slack.append(await request.json())
        return web.Response(text="ok")

    async def _webhook(self, request):
        if self.fail_first:
            self.fail_first -= 1
            return web.Response(status=503)
        self.webhook.append(await request.json())
        return web.json_response({})


@pytest.fixture
def receiver(settings):
    receiver = AlertReceiver(fail_first=1)
    receiver.server.start()
    settings.SLACK_WEBHOOK_URL = f"{receiver.server.url}/services/T000/B000/XXXX"
    settings.GATEWAY_ALERT_WEBHOOK_URL = f"{receiver.server.url}/hooks/budget"
    yield receiver
    receiver.server.stop()


def chat(gateway, key) -> httpx.Response:
    return httpx.post(gateway.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": "gpt-test", "messages": MESSAGES}, timeout=10)


def test_a_soft_budget_crossed_is_posted_once(gateway, make_deployment, make_key, receiver):
    make_deployment("gpt-test")
    key, raw_key = make_key(soft_budget=Decimal("0.0001"))  # crossed by the second request
    for _ in range(4):
        assert chat(gateway, raw_key).status_code == 200

    assert wait_for(lambda: receiver.webhook and receiver.slack)  # the webhook's first post failed: retried
    wait_for(lambda: False, timeout=0.5)
    [event] = receiver.webhook
    assert (event["event"], event["event_group"], event["token_id"]) == ("soft_budget_crossed", "key", str(key.pk))
    assert event["soft_budget"] == pytest.approx(0.0001) and event["max_budget"] is None
    [slack] = receiver.slack
    assert f"key {key.pk} crossed its soft budget" in slack["text"]


def test_an_exhausted_budget_is_posted_once_per_period(gateway, make_deployment, make_key, team, receiver):
    make_deployment("gpt-test")
    team.max_budget = Decimal("0.0001")
    team.budget_duration = "1d"
    team.save()
    _, raw_key = make_key(team=team)
    statuses = [chat(gateway, raw_key).status_code for _ in range(6)]

    assert statuses.count(429) >= 3
    assert wait_for(lambda: receiver.webhook)
    wait_for(lambda: False, timeout=0.5)
    [event] = receiver.webhook
    assert (event["event"], event["event_group"], event["team_id"]) == ("budget_crossed", "team", str(team.pk))
    assert event["max_budget"] == pytest.approx(0.0001) and event["budget_duration"] == "1d"
    assert len(receiver.slack) == 1 and "exhausted its budget" in receiver.slack[0]["text"]


def test_an_end_users_soft_budget_alert_names_it_as_its_clients_do(gateway, make_deployment, make_key, receiver):
    from apps.customers.services import end_user_create

    make_deployment("gpt-test")
    end_user_create(organization=None, user_id="alice", limits={"soft_budget": Decimal("0.0001")})
    _, raw_key = make_key()
    for _ in range(3):
        response = httpx.post(gateway.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {raw_key}"},
                              json={"model": "gpt-test", "messages": MESSAGES, "user": "alice"}, timeout=10)
        assert response.status_code == 200

    assert wait_for(lambda: receiver.webhook)
    [event] = receiver.webhook
    assert (event["event"], event["event_group"], event["customer_id"]) == ("soft_budget_crossed", "end_user", "alice")


def test_nothing_is_posted_when_no_target_is_configured(gateway, make_deployment, make_key, monkeypatch):
    from apps.spend import alerts

    posted = []

    async def deliver(targets):
        posted.append(targets)

    monkeypatch.setattr(alerts, "_deliver", deliver)
    make_deployment("gpt-test")
    _, raw_key = make_key(max_budget=Decimal("0.0001"), soft_budget=Decimal("0.00005"))
    assert [chat(gateway, raw_key).status_code for _ in range(3)][-1] == 429
    wait_for(lambda: False, timeout=0.5)
    assert posted == []
