"""No spend record is lost or doubled while the database is unavailable: requests keep being
served, records wait (spilled to Redis when there is one), and are written once it is back."""

from decimal import Decimal

import httpx
import pytest
from django.conf import settings
from django.db import OperationalError, connection

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


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the outage is cut between a server and PostgreSQL")
def test_a_real_database_outage_under_traffic_loses_and_doubles_nothing(transactional_db, fake_openai,
                                                                         make_deployment):
    """A real server process whose PostgreSQL connection goes through a proxy the test cuts for
    a few seconds mid-traffic (live connections reset, new ones refused), then restores."""
    import threading
    import time

    from tests.fakes.replica import Replica, database_url_of_test_db
    from tests.fakes.tcp_proxy import CuttableProxy

    make_deployment("gpt-test")
    db = settings.DATABASES["default"]
    proxy = CuttableProxy(db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432)).start()
    proxied_url = database_url_of_test_db().replace(f":{db.get('PORT') or 5432}/", f":{proxy.port}/")
    replica = Replica(DATABASE_URL=proxied_url).wait_ready()
    statuses: list[int] = []
    stop = threading.Event()

    def traffic():
        with httpx.Client(base_url=replica.url, headers={"Authorization": f"Bearer {MASTER_KEY}"},
                          timeout=10) as client:
            while not stop.is_set():
                for stream in (False, True):
                    response = client.post("/v1/chat/completions",
                                           json={"model": "gpt-test", "messages": MESSAGES, "stream": stream})
                    response.read()
                    statuses.append(response.status_code)
                time.sleep(0.01)

    sender = threading.Thread(target=traffic)
    try:
        sender.start()
        time.sleep(1.0)
        proxy.cut()
        served_before_cut = len(statuses)
        time.sleep(3.0)  # several flush attempts fail meanwhile
        served_during_cut = len(statuses) - served_before_cut
        proxy.restore()
        time.sleep(2.0)
        stop.set()
        sender.join(15)
    finally:
        stop.set()
        output = replica.stop()  # SIGTERM: what is still buffered is written
        proxy.stop()

    assert served_during_cut > 10, "requests kept being served while the database was down"
    assert set(statuses) == {200}
    assert "not written" in output  # the outage was real: batches were refused
    if settings.REDIS_URL:
        # Batches refused during the outage wait in the Redis spill for any replica to replay;
        # the next one to start does (here, with the database reachable directly).
        Replica().wait_ready().stop()
    assert_exactly(len(statuses))
