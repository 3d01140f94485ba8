"""Cooldowns hold across two real gateway processes sharing Redis and the database."""

import httpx
import pytest
from django.conf import settings

from tests.fakes.replica import Replica
from tests.routing.conftest import MESSAGES, unique

pytestmark = [
    pytest.mark.skipif(not settings.REDIS_MODE, reason="replicas share cooldowns through Redis"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def replicas(make_deployment):
    started = [Replica(GATEWAY_ROUTER_RETRY_BASE_DELAY="0.01"), Replica(GATEWAY_ROUTER_RETRY_BASE_DELAY="0.01")]
    try:
        yield [r.wait_ready() for r in started]
    finally:
        for replica in started:
            replica.stop()


def chat(replica: Replica, model: str) -> httpx.Response:
    return httpx.post(replica.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {settings.GATEWAY_MASTER_KEY}"},
                      json={"model": model, "messages": MESSAGES}, timeout=30)


def test_a_cooldown_set_through_one_process_is_honoured_by_the_other(replicas, make_deployment, fake_openai):
    first, second = replicas
    limited = unique("rate-limited-30")
    make_deployment("pair", upstream_model=limited)
    healthy = make_deployment("pair", upstream_model="gpt-test")
    # Through the first process until it has met the 429 once (it cools the deployment down).
    for _ in range(40):
        assert chat(first, "pair").status_code == 200
        if fake_openai.count_for(limited):
            break
    assert fake_openai.count_for(limited) == 1

    responses = [chat(second, "pair") for _ in range(30)]
    assert [r.status_code for r in responses] == [200] * 30
    assert {r.headers["x-gateway-model-id"] for r in responses} == {str(healthy.pk)}
    assert fake_openai.count_for(limited) == 1  # the second process never called it


def test_a_group_cooling_down_everywhere_gives_429_with_retry_after_on_every_process(
    replicas, make_deployment, fake_openai
):
    first, second = replicas
    limited = unique("rate-limited-30")
    make_deployment("alone", upstream_model=limited)
    assert chat(first, "alone").status_code == 429  # the upstream's own 429
    refused = chat(second, "alone")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "deployments_cooling_down"
    assert 25 <= int(refused.headers["retry-after"]) <= 30
    assert fake_openai.count_for(limited) == 1
