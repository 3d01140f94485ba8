"""No spend record is lost or doubled while the database is unavailable: requests keep being
served, records wait (spilled to Redis when there is one), and are written once it is back."""

from decimal import Decimal

import httpx
import pytest
from django.conf import settings
from django.db import OperationalError

from conftest import MASTER_KEY, wait_for

MESSAGES = [{"role": "user", "content": "hi"}]
COST = Decimal("0.0000735")  # the fake's usage at make_deployment's prices


@pytest.fixture
def outage(monkeypatch):
    """Makes every spend write fail while `outage["down"]` is true."""
    from apps.spend import buffer as buffer_module

    state = {"down": False, "refused": 0}
    real_write = buffer_module.spend_logs_write_batch

    def write(**kwargs):
        if state["down"]:
            state["refused"] += 1
            raise OperationalError("could not connect to server: Connection refused")
        return real_write(**kwargs)

    monkeypatch.setattr(buffer_module, "spend_logs_write_batch", write)
    return state


def send(gateway, count: int, *, stream: bool = False) -> None:
    for _ in range(count):
        response = httpx.post(gateway.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                              json={"model": "gpt-test", "messages": MESSAGES, "stream": stream}, timeout=10)
        assert response.status_code == 200
        response.read()


def assert_exactly(count: int) -> None:
    from apps.spend.models import SpendLog

    assert wait_for(lambda: SpendLog.objects.count() >= count, timeout=10), SpendLog.objects.count()
    wait_for(lambda: False, timeout=0.3)  # anything doubled would show up now
    logs = SpendLog.objects.all()
    assert logs.count() == count
    assert len(set(logs.values_list("request_id", flat=True))) == count
    assert sum(log.cost for log in logs) == count * COST


def test_an_outage_loses_and_doubles_nothing(gateway, make_deployment, outage):
    make_deployment("gpt-test")
    outage["down"] = True
    send(gateway, 20)
    send(gateway, 10, stream=True)
    assert wait_for(lambda: outage["refused"] > 0)
    if settings.REDIS_URL:
        import redis

        from apps.spend.spill import RedisSpill

        spilled = redis.Redis.from_url(settings.REDIS_URL).llen(RedisSpill().key)
        assert spilled > 0  # waiting where any replica can replay it
    outage["down"] = False
    send(gateway, 20)
    assert_exactly(50)


@pytest.mark.skipif(not settings.REDIS_URL, reason="records outlive the process only in Redis")
def test_a_shutdown_during_an_outage_spills_and_the_next_process_replays(
    transactional_db, fake_openai, make_deployment, outage
):
    from apps.core import invalidation
    from tests.fakes.gateway import GatewayServer

    make_deployment("gpt-test")
    invalidation.apply_everything()
    first = GatewayServer().start()
    outage["down"] = True
    send(first, 15)
    first.stop()  # SIGTERM-like shutdown: the database is down, so the buffer spills
    outage["down"] = False
    second = GatewayServer().start()
    try:
        assert_exactly(15)
    finally:
        second.stop()
