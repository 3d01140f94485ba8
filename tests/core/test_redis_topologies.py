"""The gateway on a real Redis Cluster (3 masters on loopback) and through Sentinel, including a
failover; and what the request path does when Redis cannot be reached at all."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

import httpx
import orjson
import pytest
from django.conf import settings

from tests.fakes.replica import Replica

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def on_cluster(settings, redis_cluster):
    """This process's Redis clients on the cluster (the data plane's code run in the test)."""
    from apps.core.redis import sync_redis

    settings.REDIS_URL = None
    settings.REDIS_CLUSTER_NODES = redis_cluster.nodes.split(",")
    settings.REDIS_MODE = "cluster"
    settings.GATEWAY_REDIS_PREFIX = f"gw-{time.monotonic_ns()}:"
    sync_redis.cache_clear()
    yield redis_cluster
    sync_redis.cache_clear()


def _node_of(cluster, key: str) -> int:
    client = cluster.client()
    return client.get_node_from_key(key).port


def test_limits_on_a_cluster_hold_exactly_with_each_scope_in_another_slot(on_cluster):
    from apps.keys.limits import LimitScope, RedisLimiter

    limiter = RedisLimiter()
    key, team, organization = (LimitScope("key", "k1", rpm=1000), LimitScope("team", "t7", rpm=10),
                               LimitScope("organization", "o3", rpm=1000))
    keys = [limiter._scope_keys(scope, "all")[0] for scope in (key, team, organization)]
    assert len({_node_of(on_cluster, k) for k in keys}) >= 2  # the script could not take them in one call

    async def burst():
        return await asyncio.gather(*(limiter.acquire((key, team, organization), f"r{i}", 0) for i in range(40)))

    decisions = asyncio.run(burst())
    assert sum(d.allowed for d in decisions) == 10
    assert {d.scope.kind for d in decisions if not d.allowed} == {"team"}
    # What the refused requests counted at the key and the organization was taken back.
    from apps.keys.limits import window_usage

    assert window_usage("key", ["k1"])["k1"][0] == 10
    assert window_usage("organization", ["o3"])["o3"][0] == 10
    assert window_usage("team", ["t7"])["t7"][0] == 10


def test_budgets_on_a_cluster_reserve_settle_and_report_the_soft_budget_of_the_right_scope(on_cluster):
    from apps.keys.limits import LimitScope, RedisLimiter

    limiter = RedisLimiter()
    key = LimitScope("key", "k2", budget_nanos=10_000, soft_budget_nanos=2_500)
    organization = LimitScope("organization", "o4", budget_nanos=5_000)

    async def scenario():
        allowed = [await limiter.acquire((key, organization), f"b{i}", 1_000) for i in range(6)]
        assert [d.allowed for d in allowed] == [True] * 5 + [False]  # 5 reservations fill the organization's
        assert allowed[-1].scope.kind == "organization" and allowed[-1].reason == "budget"
        crossed = [await limiter.settle((key, organization), f"b{i}", 10, 900) for i in range(5)]
        # 900 a request: the key's soft budget (2,500) is crossed by the third, once.
        assert [[s.kind for s in c.soft_budget_crossed] for c in crossed] == [[], [], ["key"], [], []]
        # 4,500 spent of the organization's 5,000: one more reservation of 1,000 does not fit, 400 does.
        assert not (await limiter.acquire((key, organization), "c1", 1_000)).allowed
        assert (await limiter.acquire((key, organization), "c2", 400)).allowed

    asyncio.run(scenario())


async def _next_message(subscription, timeout: float = 5):
    from apps.core import redis as gateway_redis

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # the subscription's own confirmation reads as None
        message = await gateway_redis.subscription_message(subscription, timeout=0.2)
        if message is not None:
            return orjson.loads(message)
    return None


def test_a_cooldown_and_an_invalidation_travel_over_sharded_pubsub_on_a_cluster(on_cluster):
    from apps.core import invalidation
    from apps.core import redis as gateway_redis
    from apps.routing.selection.deployment_state import RedisDeploymentState

    state = RedisDeploymentState()

    async def scenario():
        client = gateway_redis.new_async_redis()
        subscription = await gateway_redis.subscription_open(client, invalidation.channel())
        until = await state.failure("dep-1", allowed_fails=1, cooldown_seconds=30, immediate=True)
        assert await _next_message(subscription) == {"kind": "cooldown", "key": "dep-1", "until_ms": int(until * 1000)}
        invalidation.publish({"kind": "key", "hash": "abc"})  # the control plane's (synchronous) side
        assert await _next_message(subscription) == {"kind": "key", "hash": "abc"}
        await subscription.aclose()
        await client.aclose()
        await state._client()[0].aclose()

    asyncio.run(scenario())


def test_the_control_planes_cache_and_the_wallet_store_work_on_a_cluster(on_cluster):
    from apps.billing.wallets import RedisWalletStore
    from apps.core.cache_backend import GatewayRedisCache

    cache = GatewayRedisCache("", {"KEY_PREFIX": settings.GATEWAY_REDIS_PREFIX + "cache"})
    assert cache.add("webhook:1", 1, timeout=30)
    assert not cache.add("webhook:1", 2, timeout=30)
    assert cache.get("webhook:1") == 1
    cache.set("other", {"a": 1}, timeout=30)
    assert cache.get_many(["webhook:1", "other"]) == {"webhook:1": 1, "other": {"a": 1}}
    cache.delete("webhook:1")
    assert cache.get("webhook:1") is None
    cache.clear()
    assert cache.get("other") is None

    from apps.billing.wallets import WalletState

    store = RedisWalletStore()
    states = {f"org:{i}": WalletState(customer=f"c{i}", wallets={"w": i}, at=1.0) for i in range(20)}
    store.put(states)
    assert store.get_many(list(states)) == states
    assert sorted(store.prune(keep={"org:1"})) == sorted(k for k in states if k != "org:1")
    assert store.entities() == ["org:1"]


# --- through real gateway processes ------------------------------------------------------------

needs_shared_db = pytest.mark.skipif(not settings.REDIS_URL, reason="replicas share the test database: the "
                                     "PostgreSQL run (with REDIS_URL) runs them")


def _chat(replica, key: str, timeout: float = 30) -> httpx.Response:
    return httpx.post(replica.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": "gpt-test", "messages": MESSAGES}, timeout=timeout)


@needs_shared_db
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fail_open", [False, True])
def test_with_redis_unreachable_limits_fail_closed_or_open_as_set(make_deployment, make_key, fail_open):
    make_deployment("gpt-test")
    _, raw_key = make_key(rpm_limit=10)
    replica = Replica(REDIS_URL="redis://127.0.0.1:1/0", REDIS_RETRIES="1", REDIS_SOCKET_TIMEOUT="1",
                      GATEWAY_LIMITS_FAIL_OPEN="1" if fail_open else "0").wait_ready()
    try:
        response = _chat(replica, raw_key)
        if fail_open:
            assert response.status_code == 200, response.text
        else:
            assert response.status_code == 503
            assert response.json()["error"] == {
                "message": "Rate limits and budgets cannot be checked right now; retry shortly.",
                "type": "api_error", "param": None, "code": "limits_unavailable"}
            assert response.headers["retry-after"] == "1"
    finally:
        output = replica.stop()
    assert output.count("limits: Redis unreachable") == 1  # logged once, not per request


@needs_shared_db
@pytest.mark.django_db(transaction=True)
def test_a_sentinel_failover_loses_no_request_beyond_its_window_and_limits_stay_exact(make_deployment, make_key):
    from apps.spend.models import SpendLog
    from tests.fakes.redis_topologies import AVAILABLE, RedisSentinel

    if not AVAILABLE:
        pytest.skip("redis-server is not installed")
    make_deployment("gpt-test")
    topology = RedisSentinel().start()
    key, raw_key = make_key(rpm_limit=100_000)
    replica = Replica(REDIS_URL="", REDIS_SENTINELS=topology.sentinels, REDIS_SENTINEL_MASTER=topology.master_name,
                      GATEWAY_REDIS_PREFIX=f"gw-{time.monotonic_ns()}:").wait_ready()
    outcomes: list[tuple[float, int, str]] = []
    stop = threading.Event()

    def load():
        while not stop.is_set():
            try:
                response = _chat(replica, raw_key, timeout=10)
                code = response.json().get("error", {}).get("code", "") if response.status_code != 200 else ""
                outcomes.append((time.monotonic(), response.status_code, code))
            except httpx.HTTPError as error:
                outcomes.append((time.monotonic(), 0, type(error).__name__))
            time.sleep(0.01)

    try:
        workers = [threading.Thread(target=load) for _ in range(4)]
        for worker in workers:
            worker.start()
        time.sleep(1.5)
        killed_at = time.monotonic()
        old = topology.kill_master()
        topology.wait_failover(old)
        promoted_at = time.monotonic()
        time.sleep(2.5)
        stop.set()
        for worker in workers:
            worker.join(30)

        before = [o for o in outcomes if o[0] < killed_at]
        after = [o for o in outcomes if o[0] > promoted_at + 1.0]
        failed = [o for o in outcomes if o[1] != 200]
        assert before and after and all(o[1] == 200 for o in before + after), failed
        # Inside the window a request either waited the failover out or was refused as the setting says.
        assert {(status, code) for _, status, code in failed} <= {(503, "limits_unavailable")}

        # After the failover, a limit counts exactly again.
        _, limited = make_key(rpm_limit=20)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _: _chat(replica, limited).status_code, range(30)))
        assert (statuses.count(200), statuses.count(429)) == (20, 10)
    finally:
        stop.set()
        replica.stop()  # flushes the spend buffer
        topology.stop()
    served = sum(1 for o in outcomes if o[1] == 200)
    assert SpendLog.objects.filter(key_id=key.pk, status="success").count() == served
