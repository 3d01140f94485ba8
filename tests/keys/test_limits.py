"""The limiter, in memory and on Redis: the same behaviour from both backends."""

import asyncio
import time
import uuid

import pytest
from django.conf import settings

from apps.keys.limits import LimitScope, MemoryLimiter, RedisLimiter

BACKENDS = ["memory"] + (["redis"] if settings.REDIS_URL else [])


@pytest.fixture(params=BACKENDS)
def limiter(request):
    return MemoryLimiter() if request.param == "memory" else RedisLimiter()


def scope(**limits) -> LimitScope:
    return LimitScope(kind="key", id=uuid.uuid4().hex, budget_anchor=time.time(), **limits)


def run(coroutine):
    return asyncio.run(coroutine)


def rid() -> str:
    return uuid.uuid4().hex


def test_requests_per_minute(limiter):
    key = scope(rpm=3)

    async def scenario():
        decisions = [await limiter.acquire([key], rid(), 0) for _ in range(4)]
        return decisions

    first, second, third, fourth = run(scenario())
    assert [d.allowed for d in (first, second, third, fourth)] == [True, True, True, False]
    assert (first.limit_requests, first.remaining_requests) == (3, 2)
    assert third.remaining_requests == 0
    assert fourth.reason == "rpm" and 1 <= fourth.retry_after <= 60


def test_tokens_per_minute_count_after_the_call(limiter):
    key = scope(tpm=100)

    async def scenario():
        first = await limiter.acquire([key], "a", 0)
        await limiter.settle([key], "a", 150, 0)
        return first, await limiter.acquire([key], "b", 0)

    first, second = run(scenario())
    assert first.allowed and first.remaining_tokens == 100
    assert not second.allowed and second.reason == "tpm"


def test_parallel_requests_are_released_when_settled(limiter):
    key = scope(parallel=2)

    async def scenario():
        results = [await limiter.acquire([key], r, 0) for r in ("a", "b", "c")]
        await limiter.settle([key], "a", 0, 0)
        results.append(await limiter.acquire([key], "d", 0))
        return results

    a, b, c, d = run(scenario())
    assert (a.allowed, b.allowed, c.allowed, d.allowed) == (True, True, False, True)
    assert c.reason == "parallel"


def test_budget_reserves_the_maximum_and_settles_the_real_cost(limiter):
    key = scope(budget_nanos=1000)

    async def scenario():
        a = await limiter.acquire([key], "a", 600)
        b = await limiter.acquire([key], "b", 600)  # 600 + 600 > 1000: refused while a is in flight
        await limiter.settle([key], "a", 10, 100)  # a cost 100 of its 600
        c = await limiter.acquire([key], "c", 600)  # 100 spent + 600 reserved ≤ 1000
        d = await limiter.acquire([key], "d", 400)  # 100 + 600 + 400 > 1000
        await limiter.settle([key], "c", 10, 900)  # real cost above the reservation
        e = await limiter.acquire([key], "e", 1)  # 1000 spent: exhausted
        return a, b, c, d, e

    a, b, c, d, e = run(scenario())
    assert (a.allowed, b.allowed, c.allowed, d.allowed, e.allowed) == (True, False, True, False, False)
    assert b.reason == d.reason == e.reason == "budget"


def test_every_level_must_allow(limiter):
    key, team = scope(rpm=10), LimitScope(kind="team", id=uuid.uuid4().hex, rpm=1)

    async def scenario():
        return [await limiter.acquire([key, team], rid(), 0) for _ in range(2)]

    first, second = run(scenario())
    assert first.allowed and not second.allowed
    assert second.scope.kind == "team"


def test_soft_budget_crossing_is_reported_once(limiter):
    key = scope(soft_budget_nanos=250)

    async def scenario():
        crossed = []
        for request in ("a", "b", "c", "d"):
            await limiter.acquire([key], request, 0)
            crossed.append(bool((await limiter.settle([key], request, 1, 100)).soft_budget_crossed))
        return crossed

    assert run(scenario()) == [False, False, True, False]


def test_a_new_budget_period_starts_from_zero(limiter):
    key = LimitScope(kind="key", id=uuid.uuid4().hex, budget_nanos=100, budget_duration="2s",
                     budget_anchor=time.time() - 1.5)

    async def scenario():
        await limiter.acquire([key], "a", 0)
        await limiter.settle([key], "a", 1, 100)
        exhausted = await limiter.acquire([key], "b", 0)
        await asyncio.sleep(0.6)  # the period turns over
        return exhausted, await limiter.acquire([key], "c", 0)

    exhausted, renewed = run(scenario())
    assert not exhausted.allowed and renewed.allowed


def test_spend_is_seeded_from_the_database_in_the_same_period(limiter):
    key = scope(budget_nanos=1000, db_spend_nanos=1000)
    assert not run(limiter.acquire([key], "a", 0)).allowed


def test_a_long_held_reservation_outlives_the_requests_after_it(limiter, monkeypatch):
    """A batch holds its reservation for days; a request reserved after it (held 15 minutes) must
    not shorten it: the budget stays reserved once the request's time has passed."""
    key = scope(budget_nanos=1_000)
    day_ms = 24 * 3600 * 1000

    async def scenario():
        assert (await limiter.acquire([key], "batch", 600, day_ms)).allowed
        assert (await limiter.acquire([key], "request", 100)).allowed
        await limiter.settle([key], "request", 0, 100)
        if isinstance(limiter, RedisLimiter):
            client, _ = limiter._client()
            [resv_key] = [k for k in limiter._keys([key], ["all"]) if k.endswith(":resv")]
            return await client.pttl(resv_key)
        return None

    ttl = run(scenario())
    if ttl is not None:
        assert ttl > day_ms - 60_000
    # 16 minutes later the request's reservation would have expired; the batch's has not.
    later = time.time() + 16 * 60
    monkeypatch.setattr(time, "time", lambda: later)
    refused = run(limiter.acquire([key], "next", 400)) if isinstance(limiter, MemoryLimiter) else None
    if refused is not None:
        assert not refused.allowed and refused.reason == "budget"
