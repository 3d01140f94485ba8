"""The limiter, in memory and on Redis: the same behaviour from both backends."""

import asyncio
import dataclasses
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


def test_a_window_slides_second_by_second(limiter, clock):
    """Each request leaves the window 60 s after it came, across a minute's start, a long pause
    and a replica whose clock is a second behind."""
    key = scope(rpm=5)
    start = clock[0]

    async def allowed(at: float, count: int) -> list:
        clock[0] = start + at
        return [(await limiter.acquire([key], rid(), 0)) for _ in range(count)]

    async def scenario():
        assert all(d.allowed for d in await allowed(0, 3))
        assert all(d.allowed for d in await allowed(30, 2))
        [refused] = await allowed(31, 1)
        assert not refused.allowed and refused.reason == "rpm" and refused.retry_after == 29
        [behind] = await allowed(30, 1)  # another replica, its clock a second behind
        assert not behind.allowed
        # The three of second 0 leave at second 60 (into the next minute): room for three.
        decisions = await allowed(60, 4)
        assert [d.allowed for d in decisions] == [True, True, True, False]
        assert decisions[0].remaining_requests == 2 and decisions[3].retry_after == 30
        assert [d.allowed for d in await allowed(89, 1)] == [False]
        assert [d.allowed for d in await allowed(90, 3)] == [True, True, False]  # second 30's two left
        # After a pause longer than the window, all of it is free.
        decisions = await allowed(400, 6)
        assert [d.allowed for d in decisions] == [True] * 5 + [False]
        assert decisions[0].remaining_requests == 4

    run(scenario())


def test_tokens_leave_the_window_with_their_second(limiter, clock):
    key = scope(tpm=100)
    start = clock[0]

    async def scenario():
        assert (await limiter.acquire([key], "a", 0)).allowed
        await limiter.settle([key], "a", 60, 0)
        clock[0] = start + 20
        assert (await limiter.acquire([key], "b", 0)).remaining_tokens == 40
        await limiter.settle([key], "b", 30, 0)
        clock[0] = start + 59
        assert (await limiter.acquire([key], "c", 0)).remaining_tokens == 10
        clock[0] = start + 60
        assert (await limiter.acquire([key], "d", 0)).remaining_tokens == 70
        clock[0] = start + 80
        assert (await limiter.acquire([key], "e", 0)).remaining_tokens == 100

    run(scenario())


@pytest.mark.skipif(not settings.REDIS_URL, reason="Redis's windows")
def test_a_redis_window_is_not_read_whole_on_every_request(clock):
    """A busy key's window holds sixty buckets; the acquire keeps their sum beside them and reads
    only the buckets that expire, not all sixty a request (once a minute it rebuilds the sum)."""
    import redis as redis_py

    limiter = RedisLimiter()
    key = scope(rpm=10**9, tpm=10**9)
    start = clock[0]

    async def busy(seconds) -> None:
        for second in seconds:
            clock[0] = start + second
            for _ in range(3):
                assert (await limiter.acquire([key], rid(), 0)).allowed

    def scans() -> int:
        stats = redis_py.Redis.from_url(settings.REDIS_URL).info("commandstats")
        return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("hgetall", "hkeys"))

    async def scenario():
        await busy(range(-54, 1))  # the last minute, a bucket a second
        before = scans()
        await busy(range(1, 40))  # 117 requests within this minute
        assert scans() - before <= 2  # the first of this minute rebuilds each window once
        decision = await limiter.acquire([key], rid(), 0)
        assert decision.remaining_requests == 10**9 - 3 * 60 - 1  # the sixty seconds -20..39, three each

    run(scenario())


@pytest.mark.skipif(not settings.REDIS_URL, reason="Redis's windows")
def test_a_redis_window_written_without_its_sum_is_counted_whole(clock):
    """Buckets a previous version wrote, which keeps no sum (and drops the fields of one as expired
    buckets, as it runs beside this one in a rolling update), are counted all the same."""
    limiter = RedisLimiter()
    key = scope(rpm=10)
    client = __import__("redis").Redis.from_url(settings.REDIS_URL)
    window_key = limiter._keys([key], ["all"])[0]
    second = int(clock[0])

    async def scenario():
        assert (await limiter.acquire([key], rid(), 0)).remaining_requests == 9
        client.hdel(window_key, "0", "1")  # what the previous version does to them
        client.hincrby(window_key, second - 10, 4)  # its own requests, with no sum kept
        assert (await limiter.acquire([key], rid(), 0)).remaining_requests == 4

    run(scenario())


def test_a_reservation_of_a_process_that_died_stops_counting_after_its_time(limiter, clock):
    key = scope(budget_nanos=1_000)
    start = clock[0]

    async def scenario():
        assert (await limiter.acquire([key], "died", 800, 30_000)).allowed  # never settled
        assert not (await limiter.acquire([key], "next", 300)).allowed
        clock[0] = start + 60  # past its 30 s (an acquire drops it within a minute of then)
        assert (await limiter.acquire([key], "after", 300)).allowed

    run(scenario())


def test_large_reservations_are_counted_to_the_nano_dollar(limiter):
    """Amounts past 10^14 nano-dollars (a batch of $100,000): Lua would print them in exponent form."""
    key = scope(budget_nanos=10**15)

    async def scenario():
        assert (await limiter.acquire([key], "batch", 6 * 10**14 + 1)).allowed
        assert not (await limiter.acquire([key], "second", 4 * 10**14)).allowed
        await limiter.settle([key], "batch", 0, 10**14)
        assert (await limiter.acquire([key], "third", 9 * 10**14 - 1)).allowed
        assert not (await limiter.acquire([key], "fourth", 2)).allowed  # 10^14 spent, 10^15 - 10^14 - 1 held

    run(scenario())


@pytest.mark.skipif(not settings.REDIS_URL, reason="Redis's counters")
def test_a_redis_spend_counter_keeps_every_digit():
    """Spend seeded from the database and costs settled go to Redis as their digits: Lua prints a
    number in exponent form (from 10^14 when joined to text, and from 10^17 in redis.call on
    Redis 7), which INCRBY refuses and which would round the counter."""
    import redis as redis_py

    limiter = RedisLimiter()
    key = dataclasses.replace(scope(budget_nanos=10**18), db_spend_nanos=2 * 10**17 + 7)
    spend_key = [k for k in limiter._keys([key], ["all"]) if ":spend:" in k][0]

    async def scenario():
        assert (await limiter.acquire([key], "batch", 10**17)).allowed
        await limiter.settle([key], "batch", 0, 15 * 10**16 + 3)

    run(scenario())
    assert redis_py.Redis.from_url(settings.REDIS_URL).get(spend_key) == str(35 * 10**16 + 10).encode()


@pytest.mark.skipif(not settings.REDIS_URL, reason="Redis's reservations")
def test_a_redis_budget_check_does_not_read_every_reservation_in_flight(clock):
    """A busy team holds thousands of reservations while its calls run; the acquire keeps their sum
    and rebuilds it from them once a minute, not on every request."""
    import redis as redis_py

    limiter = RedisLimiter()
    key = scope(budget_nanos=10**12)
    start = clock[0]

    def scans() -> int:
        stats = redis_py.Redis.from_url(settings.REDIS_URL).info("commandstats")
        return stats.get("cmdstat_hgetall", {}).get("calls", 0)

    async def scenario():
        for i in range(300):
            assert (await limiter.acquire([key], f"held{i}", 1_000)).allowed
        before = scans()
        for i in range(100):
            clock[0] = start + i * 0.5
            assert (await limiter.acquire([key], f"r{i}", 1_000)).allowed
            await limiter.settle([key], f"r{i}", 0, 400)
        assert scans() - before == 0
        # 300 held at 1,000 and 100 settled at 400: exactly 1,000 left of this budget.
        tight = dataclasses.replace(key, budget_nanos=300 * 1_000 + 100 * 400 + 1_000)
        assert not (await limiter.acquire([tight], "over", 1_001)).allowed
        assert (await limiter.acquire([tight], "fits", 1_000)).allowed

    run(scenario())


@pytest.mark.skipif(not settings.REDIS_URL, reason="Redis's reservations")
def test_a_redis_reservation_made_by_the_previous_version_counts(clock):
    """The previous version keeps no sum of the reservations: what it adds is counted, and the sum it
    does not move is rebuilt within a minute."""
    limiter = RedisLimiter()
    key = scope(budget_nanos=10_000)
    client = __import__("redis").Redis.from_url(settings.REDIS_URL)
    resv_key = [k for k in limiter._keys([key], ["all"]) if k.endswith(":resv")][0]
    start = clock[0]

    async def scenario():
        assert (await limiter.acquire([key], "new", 1_000)).allowed
        client.hset(resv_key, "old", f"6000:{int(start * 1000) + 600_000}")  # as the previous version
        clock[0] = start + 60  # the next minute
        assert not (await limiter.acquire([key], "over", 3_001)).allowed
        assert (await limiter.acquire([key], "fits", 3_000)).allowed

    run(scenario())


@pytest.mark.skipif(not settings.REDIS_URL, reason="Redis's windows")
def test_replicas_of_the_previous_version_and_this_one_share_a_window_exactly(clock):
    """A rolling update runs both versions at once. The previous version's acquire treated a window
    as below: every field of a second at least 60 s old dropped (this version's '0' and '1' among
    them), the rest summed, its request counted. Taking turns, the two admit exactly the limit."""
    import redis as redis_py

    client = redis_py.Redis.from_url(settings.REDIS_URL)
    previous = client.register_script("""
local sec = tonumber(ARGV[1])
local data = redis.call('HGETALL', KEYS[1])
local total, stale = 0, {}
for j = 1, #data, 2 do
  local s = tonumber(data[j])
  if s <= sec - 60 then stale[#stale + 1] = data[j] else total = total + tonumber(data[j + 1]) end
end
if #stale > 0 then redis.call('HDEL', KEYS[1], unpack(stale)) end
if total >= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], sec, 1)
redis.call('EXPIRE', KEYS[1], 120)
return 1
""")
    limiter = RedisLimiter()
    key = scope(rpm=10)
    window_key = limiter._keys([key], ["all"])[0]
    start = clock[0]

    async def turns(at: float, count: int) -> int:
        clock[0] = start + at
        admitted = 0
        for turn in range(count):
            if turn % 2:
                admitted += previous(keys=[window_key], args=[int(clock[0]), 10])
            else:
                admitted += (await limiter.acquire([key], rid(), 0)).allowed
        return admitted

    async def scenario():
        assert await turns(0, 6) == 6
        assert await turns(30, 10) == 4  # the limit, across both versions
        assert await turns(59, 4) == 0
        assert await turns(60, 10) == 6  # second 0's six have left
        assert await turns(95, 6) == 4  # and second 30's four

    run(scenario())


def test_a_scopes_period_is_the_one_its_dates_give_at_every_moment():
    """LimitScope.period keeps each (anchor, duration)'s current period: at any time, across a
    period's end, a month's odd lengths and before the anchor, it says what the dates say."""
    from datetime import datetime, timezone

    from hypothesis import given, settings as hypothesis_settings, strategies as st

    from apps.core.durations import current_period, duration_seconds

    def by_dates(scope: LimitScope, now: float) -> tuple[str, int]:
        anchor = datetime.fromtimestamp(scope.budget_anchor, timezone.utc)
        start, end = current_period(anchor, scope.budget_duration, datetime.fromtimestamp(now, timezone.utc))
        return str(int(start.timestamp())), int(end.timestamp() - now) + duration_seconds(scope.budget_duration)

    @hypothesis_settings(max_examples=300, deadline=None)
    @given(anchor=st.floats(1.6e9, 1.9e9),
           duration=st.sampled_from(["1s", "30s", "1m", "1h", "1d", "7d", "30d", "1mo", "3mo"]),
           steps=st.lists(st.floats(-1e6, 1e7), min_size=1, max_size=8))
    def check(anchor, duration, steps):
        anchor = round(anchor, 6)
        budget = LimitScope(kind="key", id="k", budget_nanos=1, budget_duration=duration, budget_anchor=anchor)
        now = anchor
        for step in steps:
            now += step
            assert budget.period(now) == by_dates(budget, now), (duration, anchor, now)
            # just before, at and after the period's end
            _, end = current_period(datetime.fromtimestamp(anchor, timezone.utc), duration,
                                    datetime.fromtimestamp(now, timezone.utc))
            end = end.timestamp()
            for moment in (end - 0.0004, end - 3e-7, end, end + 3e-7, end + 1):
                if moment >= anchor:
                    assert budget.period(moment) == by_dates(budget, moment), (duration, anchor, moment)

    check()
