"""The shared deployment state: the Redis scripts and their in-process twin behave alike,
and two processes' Redis backends see the same cooldowns and counters."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from django.conf import settings

from apps.routing.selection.deployment_state import COOLDOWNS_ONLY, MemoryDeploymentState, StateNeeds

EVERYTHING = StateNeeds(usage=True, in_flight=True, latency=True)
BACKENDS = ["memory", pytest.param("redis", marks=pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis"))]


def make(kind: str):
    if kind == "memory":
        return MemoryDeploymentState()
    from apps.routing.selection.deployment_state import RedisDeploymentState

    return RedisDeploymentState()


def run(coroutine):
    return asyncio.run(coroutine)


@pytest.fixture(params=BACKENDS)
def state(request):
    return make(request.param)


def key() -> str:
    return f"test.{uuid.uuid4().hex}"


def test_failures_cool_a_deployment_down_after_allowed_fails(state):
    k = key()
    for _ in range(2):
        assert run(state.failure(k, allowed_fails=3, cooldown_seconds=10, immediate=False)) == 0
    assert run(state.read([k], COOLDOWNS_ONLY))[0].cooldown_until == 0
    until = run(state.failure(k, allowed_fails=3, cooldown_seconds=10, immediate=False))
    assert time.time() + 9 < until <= time.time() + 10
    assert abs(run(state.read([k], COOLDOWNS_ONLY))[0].cooldown_until - until) < 0.01
    # Back from cooldown, the count starts again from zero.
    assert run(state.failure(k, allowed_fails=3, cooldown_seconds=10, immediate=False)) == 0


def test_a_rate_limit_cools_down_at_once_for_its_own_time(state):
    k, other = key(), key()
    until = run(state.failure(k, allowed_fails=3, cooldown_seconds=2, immediate=True))
    assert time.time() + 1 < until <= time.time() + 2
    loads = run(state.read([k, other], COOLDOWNS_ONLY))
    assert loads[0].cooldown_until == pytest.approx(until, abs=0.01) and loads[1].cooldown_until == 0


def test_acquire_counts_requests_and_refuses_at_capacity(state):
    k = key()
    assert run(state.acquire(k, "r1", rpm=2, tpm=None, count_usage=True, track_in_flight=True)) == 0
    assert run(state.acquire(k, "r2", rpm=2, tpm=None, count_usage=True, track_in_flight=True)) == 0
    assert 1 <= run(state.acquire(k, "r3", rpm=2, tpm=None, count_usage=True, track_in_flight=True)) <= 60
    load = run(state.read([k], EVERYTHING))[0]
    assert (load.requests, load.in_flight) == (2, 2)
    run(state.release(k, "r1", tokens=500, count_usage=True, track_in_flight=True, latency=0.2,
                      time_to_first_token=None))
    load = run(state.read([k], EVERYTHING))[0]
    assert (load.requests, load.tokens, load.in_flight) == (2, 500, 1)
    assert load.latency == pytest.approx(0.2)
    assert 1 <= run(state.acquire(k, "r4", rpm=None, tpm=500, count_usage=True, track_in_flight=False)) <= 60


def test_latency_is_a_moving_average(state):
    k = key()
    for sample in (1.0, 2.0):
        run(state.release(k, "r", tokens=0, count_usage=False, track_in_flight=False, latency=sample,
                          time_to_first_token=sample / 10))
    load = run(state.read([k], StateNeeds(latency=True)))[0]
    assert load.latency == pytest.approx(0.3 * 2.0 + 0.7 * 1.0)
    assert load.time_to_first_token == pytest.approx(0.13)


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis")
def test_two_processes_share_cooldowns_through_redis():
    from apps.routing.selection.deployment_state import RedisDeploymentState

    first, second = RedisDeploymentState(), RedisDeploymentState()  # as two replicas would have
    k = key()
    until = run(first.failure(k, allowed_fails=1, cooldown_seconds=30, immediate=False))
    assert run(second.read([k], COOLDOWNS_ONLY))[0].cooldown_until == pytest.approx(until, abs=0.01)


@pytest.mark.skipif(not settings.REDIS_URL, reason="the mirror follows Redis pub/sub")
def test_a_server_reads_cooldowns_from_its_mirror_and_still_sees_another_replicas(gateway, make_deployment):
    """Warm requests make no Redis round trip for cooldowns; a cooldown another replica starts
    reaches this one's mirror through pub/sub within moments."""
    import httpx

    from apps.routing.selection.deployment_state import RedisDeploymentState, deployment_state
    from conftest import MASTER_KEY, wait_for

    first = make_deployment("mirrored", upstream_model="mirror-a")
    second = make_deployment("mirrored", upstream_model="mirror-b")
    state = deployment_state()

    def ask():
        return httpx.post(gateway.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                          json={"model": "mirrored", "messages": [{"role": "user", "content": "hi"}]}, timeout=10)

    assert ask().status_code == 200  # the first read fills the mirror
    client, _ = state._clients.made  # the server's connection, on the server's event loop
    reads = []
    originals = {name: getattr(client, name) for name in ("hgetall", "hmget", "evalsha")}

    def counting(name):
        async def call(*args, **kwargs):
            reads.append(name)
            return await originals[name](*args, **kwargs)
        return call

    for name in originals:
        setattr(client, name, counting(name))
    from apps.core.redis_pipeline import pipelined_connection

    pipe = pipelined_connection(client)  # the scripts' own lane, on one server
    if pipe is not None:
        originals_pipe = pipe.call

        async def pipe_call(*args):
            if args[0] in ("EVALSHA", "EVAL"):  # the lane is shared with the spend journal's HSETs
                reads.append(args[0])
            return await originals_pipe(*args)

        pipe.call = pipe_call
    try:
        assert all(ask().status_code == 200 for _ in range(10))
        assert reads == []

        from apps.providers.registry import deployment_state_key

        other_replica = RedisDeploymentState()
        key = deployment_state_key(first.pk, first.created_at)
        run(other_replica.failure(key, allowed_fails=1, cooldown_seconds=30, immediate=True))
        assert wait_for(lambda: state._mirror.get(key, 0) > 0, timeout=2)
        answers = [ask() for _ in range(10)]
    finally:
        for name, original in originals.items():
            setattr(client, name, original)
        if pipe is not None:
            del pipe.call
    assert {a.headers["x-gateway-model-id"] for a in answers} == {str(second.pk)}


def test_a_deployment_at_its_limit_reads_when_its_window_frees(state, clock):
    k = key()
    start = clock[0]
    for at in (0, 20):
        clock[0] = start + at
        assert run(state.acquire(k, f"r{at}", rpm=2, tpm=None, count_usage=True, track_in_flight=False)) == 0
    clock[0] = start + 30
    [load] = run(state.read([k], EVERYTHING, [(2, None)]))
    assert (load.requests, load.oldest_second) == (2, int(start))  # full: free again at start + 60
    assert run(state.acquire(k, "r30", rpm=2, tpm=None, count_usage=True, track_in_flight=False)) == 30
    clock[0] = start + 60  # the first has left the window
    [load] = run(state.read([k], EVERYTHING, [(2, None)]))
    assert load.requests == 1
    assert run(state.acquire(k, "r60", rpm=2, tpm=None, count_usage=True, track_in_flight=False)) == 0
    run(state.release(k, "r60", tokens=700, count_usage=True, track_in_flight=False, latency=None,
                      time_to_first_token=None))
    clock[0] = start + 119
    [load] = run(state.read([k], EVERYTHING, [(2, 1000)]))
    assert (load.requests, load.tokens) == (1, 700)


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis")
def test_usage_reads_of_busy_deployments_do_not_read_their_whole_windows(clock):
    """Usage-based routing reads every deployment's two windows on every request; each keeps its sum
    (apps.core.sliding_window), so a read drops the expired buckets instead of reading all sixty."""
    import redis as redis_py

    state = make("redis")
    deployments = [key() for _ in range(4)]
    start = clock[0]

    def scans() -> int:
        stats = redis_py.Redis.from_url(settings.REDIS_URL).info("commandstats")
        return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("hgetall", "hkeys"))

    async def busy(seconds) -> None:
        for second in seconds:
            clock[0] = start + second
            for k in deployments:
                assert await state.acquire(k, "r", rpm=None, tpm=None, count_usage=True, track_in_flight=False) == 0
                await state.release(k, "r", tokens=10, count_usage=True, track_in_flight=False, latency=None,
                                    time_to_first_token=None)
            await state.read(deployments, EVERYTHING, [(10**6, 10**9)] * 4)

    run(busy(range(-54, 1)))
    before = scans()
    run(busy(range(1, 30)))
    assert scans() - before <= 2 * len(deployments)  # each window rebuilt once, this minute
    loads = run(state.read(deployments, EVERYTHING, [(10**6, 10**9)] * 4))
    assert [(load.requests, load.tokens) for load in loads] == [(60, 600)] * 4
