"""Rate limits, parallel-request limits and budgets that hold across replicas.

Every level of the hierarchy a request belongs to (key, user, team, organization) is
a LimitScope. Before the upstream call, one atomic step checks every scope and, if
all allow it, counts the request, marks it in flight and reserves its maximum cost
against each budget; after the call, one step records the tokens, releases the
request and turns the reservation into the real cost. With Redis the two steps are
Lua scripts (one round trip each, atomic across replicas); without Redis the same
algorithm runs in process memory, correct for one process.

Windows are sliding: per-second buckets summed over the last 60 seconds, so "60 a
minute" holds for any 60 seconds, not just calendar minutes. On Redis a window keeps its
running sum, and a budget the sum of its reservations in flight, so a script's work does
not grow with the traffic it counts. Money is counted in integer nano-dollars so Redis
and Lua never round it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

import hiredis

from apps.core.durations import current_period, duration_seconds
from apps.core.redis import AsyncRedisPerLoop, redis_cluster, redis_enabled, redis_key, register_script, sync_redis
from apps.core.redis_pipeline import reply_error
from apps.core.sliding_window import WINDOW_LUA

logger = logging.getLogger(__name__)

NANOS_PER_USD = Decimal(1_000_000_000)
WINDOW_SECONDS = 60
LIFETIME_SPEND_TTL = 400 * 86400  # a budget without a duration: kept a long time, reseeded if lost
RESERVATION_TTL_MS = 15 * 60 * 1000  # a crashed process's reservations and in-flight marks expire (on Redis a
# reservation is out of its budget's sum within a minute after: the sum is rebuilt once a minute)


# (budget anchor, duration) -> (period start, end, period id, the duration's seconds): the current
# period of each, as LimitScope.period worked it out. Used only well inside the period (datetimes
# round to microseconds, so the last millisecond is worked out again).
_PERIODS: dict[tuple[float, str], tuple[float, float, str, int]] = {}
_PERIODS_KEPT = 4096
_PERIOD_EDGE = 0.001


def usd_to_nanos(amount: Decimal | None) -> int | None:
    return None if amount is None else int(amount * NANOS_PER_USD)


@dataclass(frozen=True, slots=True)
class LimitScope:
    kind: str  # key, user, team, organization
    id: str
    rpm: int | None = None
    tpm: int | None = None
    parallel: int | None = None
    budget_nanos: int | None = None
    soft_budget_nanos: int | None = None
    budget_duration: str = ""
    budget_anchor: float = 0.0  # unix time
    # Spend in the current period as the database knew it when the context was loaded,
    # and that period's id: a lost Redis counter is reseeded from it in the same period.
    db_spend_nanos: int = 0
    db_period: str = "all"
    name: str = ""  # how alerts name it when its id is not what its owner knows it by (an end user's id)

    @property
    def tag(self) -> str:
        return f"{self.kind}:{self.id}"

    def period(self, now: float) -> tuple[str, int]:
        """(period id, seconds the period's counter should live)."""
        if not self.budget_duration:
            return "all", LIFETIME_SPEND_TTL
        # Worked out with datetimes once per period (6-8 us, and a request asks twice a scope).
        known = _PERIODS.get((self.budget_anchor, self.budget_duration))
        if known is None or not known[0] <= now < known[1] - _PERIOD_EDGE:
            anchor = datetime.fromtimestamp(self.budget_anchor, timezone.utc)
            start, end = current_period(anchor, self.budget_duration, datetime.fromtimestamp(now, timezone.utc))
            if len(_PERIODS) >= _PERIODS_KEPT:
                _PERIODS.clear()
            known = _PERIODS[(self.budget_anchor, self.budget_duration)] = (
                start.timestamp(), end.timestamp(), str(int(start.timestamp())), duration_seconds(self.budget_duration))
        return known[2], int(known[1] - now) + known[3]

    def seed_nanos(self, period: str) -> int:
        return self.db_spend_nanos if period == self.db_period else 0


@dataclass(slots=True)
class LimitDecision:
    allowed: bool
    scope: LimitScope | None = None
    reason: str = ""  # rpm, tpm, parallel, budget
    retry_after: int = 0
    # For the x-ratelimit-* headers: the tightest request and token windows seen.
    limit_requests: int | None = None
    remaining_requests: int | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None


@dataclass(slots=True)
class Settlement:
    tokens: int
    cost_nanos: int
    # Scopes whose soft budget this request crossed (alert once per period).
    soft_budget_crossed: list[LimitScope]


def _headers_from_windows(decision: LimitDecision, scope: LimitScope, used_requests, used_tokens) -> None:
    if scope.rpm and used_requests is not None:
        remaining = max(scope.rpm - used_requests - 1, 0)
        if decision.remaining_requests is None or remaining < decision.remaining_requests:
            decision.limit_requests, decision.remaining_requests = scope.rpm, remaining
    if scope.tpm and used_tokens is not None:
        remaining = max(scope.tpm - used_tokens, 0)
        if decision.remaining_tokens is None or remaining < decision.remaining_tokens:
            decision.limit_tokens, decision.remaining_tokens = scope.tpm, remaining


# --- in process -------------------------------------------------------------------------------


class MemoryLimiter:
    """The same algorithm as the Lua scripts, for one process without Redis."""

    def __init__(self) -> None:
        self._buckets: dict[str, dict[int, int]] = {}  # window key -> second -> count
        self._in_flight: dict[str, dict[str, float]] = {}  # scope -> request id -> expiry (ms)
        self._spend: dict[str, int] = {}  # scope:period -> nanos
        self._reserved: dict[str, dict[str, tuple[int, float]]] = {}  # scope -> request -> (nanos, expiry ms)
        self._once: dict[str, float] = {}  # name -> expiry (unix seconds)

    async def once(self, name: str, ttl: int) -> bool:
        """True the first time `name` is marked within `ttl` seconds."""
        now = time.time()
        if self._once.get(name, 0) > now:
            return False
        self._once = {n: t for n, t in self._once.items() if t > now}
        self._once[name] = now + ttl
        return True

    def _window(self, key: str, second: int) -> tuple[int, int | None]:
        buckets = self._buckets.setdefault(key, {})
        for old in [s for s in buckets if s <= second - WINDOW_SECONDS]:
            del buckets[old]
        return sum(buckets.values()), min(buckets) if buckets else None

    def _live(self, table: dict, scope_tag: str, now_ms: float) -> dict:
        entries = table.setdefault(scope_tag, {})
        for request_id in [r for r, v in entries.items() if (v[1] if isinstance(v, tuple) else v) <= now_ms]:
            del entries[request_id]
        return entries

    async def acquire(self, scopes, request_id: str, reservation_nanos: int,
                      entry_ttl_ms: int = RESERVATION_TTL_MS) -> LimitDecision:
        now = time.time()
        now_ms, second = now * 1000, int(now)
        decision = LimitDecision(allowed=True)
        periods = []
        for scope in scopes:
            used_requests = used_tokens = None
            if scope.rpm:
                used_requests, oldest = self._window(f"{scope.tag}:rpm", second)
                if used_requests >= scope.rpm:
                    return LimitDecision(False, scope, "rpm", max((oldest or second) + WINDOW_SECONDS - second, 1))
            if scope.tpm:
                used_tokens, oldest = self._window(f"{scope.tag}:tpm", second)
                if used_tokens >= scope.tpm:
                    return LimitDecision(False, scope, "tpm", max((oldest or second) + WINDOW_SECONDS - second, 1))
            if scope.parallel and len(self._live(self._in_flight, scope.tag, now_ms)) >= scope.parallel:
                return LimitDecision(False, scope, "parallel", 1)
            period = None
            if scope.budget_nanos is not None:
                period, _ = scope.period(now)
                spent = self._spend.setdefault(f"{scope.tag}:{period}", scope.seed_nanos(period))
                reserved = sum(v[0] for v in self._live(self._reserved, scope.tag, now_ms).values())
                if spent + reserved >= scope.budget_nanos or spent + reserved + reservation_nanos > scope.budget_nanos:
                    return LimitDecision(False, scope, "budget", 0)
            periods.append(period)
            _headers_from_windows(decision, scope, used_requests, used_tokens)
        for scope in scopes:
            if scope.rpm:
                buckets = self._buckets.setdefault(f"{scope.tag}:rpm", {})
                buckets[second] = buckets.get(second, 0) + 1
            if scope.parallel:
                self._in_flight.setdefault(scope.tag, {})[request_id] = now_ms + entry_ttl_ms
            if scope.budget_nanos is not None and reservation_nanos:
                self._reserved.setdefault(scope.tag, {})[request_id] = (reservation_nanos, now_ms + entry_ttl_ms)
        return decision

    async def settle(self, scopes, request_id: str, tokens: int, cost_nanos: int) -> Settlement:
        return self._settle(scopes, request_id, tokens, cost_nanos)

    def settle_soon(self, scopes, request_id: str, tokens: int, cost_nanos: int, done) -> bool:
        """`settle` without a coroutine: in memory it is done at once, `done(settlement)` called."""
        done(self._settle(scopes, request_id, tokens, cost_nanos))
        return True

    def _settle(self, scopes, request_id: str, tokens: int, cost_nanos: int) -> Settlement:
        now = time.time()
        second = int(now)
        crossed = []
        for scope in scopes:
            if scope.tpm and tokens:
                buckets = self._buckets.setdefault(f"{scope.tag}:tpm", {})
                buckets[second] = buckets.get(second, 0) + tokens
            self._in_flight.get(scope.tag, {}).pop(request_id, None)
            self._reserved.get(scope.tag, {}).pop(request_id, None)
            if scope.budget_nanos is not None or scope.soft_budget_nanos is not None:
                period, _ = scope.period(now)
                key = f"{scope.tag}:{period}"
                before = self._spend.setdefault(key, scope.seed_nanos(period))
                self._spend[key] = before + cost_nanos
                soft = scope.soft_budget_nanos
                if soft is not None and before < soft <= before + cost_nanos:
                    crossed.append(scope)
        return Settlement(tokens, cost_nanos, crossed)


# --- Redis ------------------------------------------------------------------------------------

# KEYS: per scope 6 keys: rpm window, tpm window, in-flight set, period spend, reservations, their sum.
# ARGV: now_ms, request_id, reservation, entry_ttl_ms, scope count, then per scope 6 values:
#       rpm, tpm, parallel, budget (-1: none), seed, spend ttl seconds.
# Returns {1, limit_requests, remaining_requests, limit_tokens, remaining_tokens} or
#         {0, scope index (0-based), reason, retry_after}.
_ACQUIRE = WINDOW_LUA + """
local now = tonumber(ARGV[1])
local sec = math.floor(now / 1000)
local rid = ARGV[2]
local resv = tonumber(ARGV[3])
local entry_ttl = tonumber(ARGV[4])
local n = tonumber(ARGV[5])

-- What the requests in flight hold reserved: the sum kept in `book` (field 'sum'), which every
-- reservation added or settled moves. Rebuilt from the reservations themselves in the first call
-- of each minute (and when missing): then the reservations past their expiry (a process that died
-- holding them) are dropped, and what a replica of the previous version, which keeps no sum,
-- added or settled is counted. Not a read of every reservation in flight on every request: a busy
-- team has thousands of them while its calls run.
local function reserved(resv, book)
  local minute = math.floor(now / 60000)
  local kept = redis.call('HMGET', book, 'sum', 'minute')
  -- (A book a replica whose clock is ahead rebuilt this minute is taken as it is.)
  if kept[1] and tonumber(kept[2]) >= minute then return tonumber(kept[1]) end
  local data = redis.call('HGETALL', resv)
  local total, stale = 0, {}
  for j = 1, #data, 2 do
    local amount, expiry = string.match(data[j + 1], '^(%d+):(%d+)$')
    if tonumber(expiry) <= now then stale[#stale + 1] = data[j] else total = total + tonumber(amount) end
  end
  for j = 1, #stale, 1000 do redis.call('HDEL', resv, unpack(stale, j, math.min(j + 999, #stale))) end
  redis.call('HSET', book, 'sum', string.format('%.0f', total), 'minute', minute)
  redis.call('PEXPIRE', book, 120000)  -- rebuilt every minute while in use
  return total
end

local lim_req, rem_req, lim_tok, rem_tok = -1, -1, -1, -1
for i = 0, n - 1 do
  local k, a = i * 6, 6 + i * 6
  local rpm, tpm, par = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local budget, seed, spend_ttl = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  if rpm > 0 then
    local used = window_total(KEYS[k + 1], sec)
    if used >= rpm then
      return {0, i, 'rpm', math.max((window_oldest(KEYS[k + 1], sec) or sec) + 60 - sec, 1)}
    end
    if rem_req < 0 or rpm - used - 1 < rem_req then lim_req, rem_req = rpm, rpm - used - 1 end
  end
  if tpm > 0 then
    local used = window_total(KEYS[k + 2], sec)
    if used >= tpm then
      return {0, i, 'tpm', math.max((window_oldest(KEYS[k + 2], sec) or sec) + 60 - sec, 1)}
    end
    if rem_tok < 0 or tpm - used < rem_tok then lim_tok, rem_tok = tpm, tpm - used end
  end
  if par > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[k + 3], '-inf', now)
    if redis.call('ZCARD', KEYS[k + 3]) >= par then return {0, i, 'parallel', 1} end
  end
  if budget >= 0 then
    local spent = redis.call('GET', KEYS[k + 4])
    if not spent then
      redis.call('SET', KEYS[k + 4], ARGV[a + 4], 'EX', spend_ttl)  -- its digits (see the settlement)
      spent = seed
    end
    spent = tonumber(spent) + reserved(KEYS[k + 5], KEYS[k + 6])
    if spent >= budget or spent + resv > budget then return {0, i, 'budget', 0} end
  end
end

for i = 0, n - 1 do
  local k, a = i * 6, 6 + i * 6
  if tonumber(ARGV[a]) > 0 then
    window_add(KEYS[k + 1], sec, 1)
  end
  if tonumber(ARGV[a + 2]) > 0 then
    redis.call('ZADD', KEYS[k + 3], now + entry_ttl, rid)
    redis.call('PEXPIRE', KEYS[k + 3], entry_ttl)
  end
  if tonumber(ARGV[a + 3]) >= 0 and resv > 0 then
    -- Amounts as their digits: Lua would print a large number in exponent form.
    redis.call('HSET', KEYS[k + 5], rid, ARGV[3] .. ':' .. string.format('%.0f', now + entry_ttl))
    redis.call('HINCRBY', KEYS[k + 6], 'sum', ARGV[3])  -- (the book exists: the check above made it)
    -- Never shortened: a batch's reservation outlives the requests' that come after it.
    if redis.call('PTTL', KEYS[k + 5]) < entry_ttl then redis.call('PEXPIRE', KEYS[k + 5], entry_ttl) end
  end
end
return {1, lim_req, rem_req, lim_tok, rem_tok}
"""

_RELEASE_LUA = """
-- A reservation taken back, and out of its book's sum (see the acquire's reserved). A book that
-- is gone is not made again here: the next acquire rebuilds it.
local function release(resv, book, rid)
  local held = redis.call('HGET', resv, rid)
  if not held then return end
  redis.call('HDEL', resv, rid)
  local amount = string.match(held, '^(%d+):')
  if amount and amount ~= '0' and redis.call('HEXISTS', book, 'minute') == 1 then
    redis.call('HINCRBY', book, 'sum', '-' .. amount)
  end
end
"""

# KEYS: as for acquire. ARGV: now_ms, request_id, tokens, cost, scope count, then per scope
# 5 values: counts tokens (0/1), tracks spend (0/1), seed, spend ttl seconds, soft budget (-1: none).
# Returns the 0-based indexes of the scopes whose soft budget this request crossed.
_SETTLE = WINDOW_LUA + _RELEASE_LUA + """
local now = tonumber(ARGV[1])
local sec = math.floor(now / 1000)
local rid = ARGV[2]
local tokens, cost, n = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local crossed = {}
for i = 0, n - 1 do
  local k, a = i * 6, 6 + i * 5
  if tonumber(ARGV[a]) == 1 and tokens > 0 then
    window_add(KEYS[k + 2], sec, tokens)
  end
  redis.call('ZREM', KEYS[k + 3], rid)
  release(KEYS[k + 5], KEYS[k + 6], rid)
  if tonumber(ARGV[a + 1]) == 1 then
    if redis.call('EXISTS', KEYS[k + 4]) == 0 then
      redis.call('SET', KEYS[k + 4], ARGV[a + 2], 'EX', tonumber(ARGV[a + 3]))
    end
    -- ARGV[4], the digits sent, not `cost`: Lua may pass a large number on in exponent form
    -- (redis.call from 10^17 on Redis 7, text joined with `..` from 10^14), which INCRBY refuses.
    local after = redis.call('INCRBY', KEYS[k + 4], ARGV[4])
    local soft = tonumber(ARGV[a + 4])
    if soft >= 0 and after - cost < soft and after >= soft then crossed[#crossed + 1] = i end
  end
end
return crossed
"""


# Taking back one scope's acquire, on a cluster, when another scope refused the request.
# KEYS: that scope's 6 keys. ARGV: the acquire's second, request_id, counted a request (0/1).
_UNDO = WINDOW_LUA + _RELEASE_LUA + """
if ARGV[3] == '1' then window_take_back(KEYS[1], ARGV[1], 1) end
redis.call('ZREM', KEYS[3], ARGV[2])
release(KEYS[5], KEYS[6], ARGV[2])
return 1
"""


class RedisLimiter:
    """On one server (or a Sentinel's master) every scope is checked and counted by one script.
    On a Redis Cluster each scope's keys live in the slot of its own hash tag (a team's counters
    are shared by all its keys, so no one tag can hold them all): every scope runs the same
    script on its own, all at once, and if any refuses, the others' counts are taken back. A
    request is never admitted past a limit; one racing a refusal may be refused with it."""

    def __init__(self) -> None:
        self._prefix = redis_key("lim")
        self._clients = AsyncRedisPerLoop(on_new=lambda client: tuple(
            register_script(client, script) for script in (_ACQUIRE, _SETTLE, _UNDO)))
        self._per_scope = redis_cluster()

    def _client(self):
        return self._clients.get()  # (client, (acquire, settle, undo))

    def _scope_keys(self, scope: LimitScope, period: str) -> list[str]:
        # One hash tag per scope keeps its keys on one Redis Cluster slot.
        base = f"{self._prefix}:{{{scope.tag}}}"
        return [f"{base}:rpm", f"{base}:tpm", f"{base}:inflight", f"{base}:spend:{period}", f"{base}:resv",
                f"{base}:resvsum"]

    def _keys(self, scopes, periods) -> list[str]:
        keys = []
        for scope, period in zip(scopes, periods):
            keys += self._scope_keys(scope, period)
        return keys

    async def once(self, name: str, ttl: int) -> bool:
        """True the first time `name` is marked within `ttl` seconds, across every replica."""
        client, _ = self._client()
        return bool(await client.set(f"{self._prefix}:once:{name}", 1, nx=True, ex=max(int(ttl), 1)))

    async def acquire(self, scopes, request_id: str, reservation_nanos: int,
                      entry_ttl_ms: int = RESERVATION_TTL_MS) -> LimitDecision:
        """`entry_ttl_ms`: how long the in-flight mark and the reservation live unless settled
        (a crashed process's expire; a batch holds its reservation for days)."""
        now = time.time()
        now_ms = int(now * 1000)
        head = [now_ms, request_id, reservation_nanos, entry_ttl_ms]
        periods, per_scope = [], []
        for scope in scopes:
            period, ttl = scope.period(now)
            periods.append(period)
            per_scope.append([scope.rpm or 0, scope.tpm or 0, scope.parallel or 0,
                              -1 if scope.budget_nanos is None else scope.budget_nanos,
                              scope.seed_nanos(period), ttl])
        _, (acquire_script, _, undo_script) = self._client()
        if not self._per_scope or len(scopes) < 2:
            args = [*head, len(scopes)]
            for values in per_scope:
                args += values
            return self._decision(await acquire_script(keys=self._keys(scopes, periods), args=args), scopes)

        scope_keys = [self._scope_keys(scope, period) for scope, period in zip(scopes, periods)]
        results = await asyncio.gather(
            *(acquire_script(keys=keys, args=[*head, 1, *values]) for keys, values in zip(scope_keys, per_scope)),
            return_exceptions=True,
        )
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        refused = next((i for i, r in enumerate(results) if not isinstance(r, BaseException) and int(r[0]) == 0), None)
        if failed is not None or refused is not None:
            taken = [i for i, r in enumerate(results) if not isinstance(r, BaseException) and int(r[0]) == 1]
            undone = await asyncio.gather(
                *(undo_script(keys=scope_keys[i], args=[now_ms // 1000, request_id, 1 if per_scope[i][0] > 0 else 0])
                  for i in taken),
                return_exceptions=True,
            )
            undo_error = next((u for u in undone if isinstance(u, BaseException)), None)
            if undo_error is not None:
                # What stays counted expires with its window (a minute) or its entry TTL.
                logger.warning("limits: a refused request's counts were not all taken back: %r", undo_error)
            if failed is not None:
                raise failed
            return self._decision(results[refused], [scopes[refused]])
        decision = LimitDecision(True)
        for result in results:
            _headers_merge(decision, result)
        return decision

    @staticmethod
    def _decision(result, scopes) -> LimitDecision:
        if int(result[0]) == 0:
            reason = result[2].decode() if isinstance(result[2], bytes) else result[2]
            return LimitDecision(False, scopes[int(result[1])], reason, int(result[3]))
        decision = LimitDecision(True)
        _headers_merge(decision, result)
        return decision

    async def settle(self, scopes, request_id: str, tokens: int, cost_nanos: int) -> Settlement:
        head, periods, per_scope = self._settle_args(scopes, request_id, tokens, cost_nanos)
        _, (_, settle_script, _) = self._client()
        if not self._per_scope or len(scopes) < 2:
            crossed = await settle_script(keys=self._keys(scopes, periods), args=_joined(head, per_scope))
            return Settlement(tokens, cost_nanos, [scopes[int(i)] for i in crossed])
        results = await asyncio.gather(*(
            settle_script(keys=self._scope_keys(scope, period), args=[*head, 1, *values])
            for scope, period, values in zip(scopes, periods, per_scope)
        ))
        return Settlement(tokens, cost_nanos, [scope for scope, crossed in zip(scopes, results) if crossed])

    def settle_soon(self, scopes, request_id: str, tokens: int, cost_nanos: int, done) -> bool:
        """`settle` without a task or a coroutine where its one script can go down the pipelined
        connection now (one script for all the scopes, the connection up): then True, and `done`
        is called with the Settlement, or with the error (a NoScriptError or a lost connection:
        `settle` recovers from both; any other error reply: the script failed). False: nothing
        was sent, use `settle`."""
        if self._per_scope and len(scopes) >= 2:
            return False
        _, (_, settle_script, _) = self._client()
        send_now = getattr(settle_script, "send_now", None)
        if send_now is None:
            return False
        head, periods, per_scope = self._settle_args(scopes, request_id, tokens, cost_nanos)
        reply = send_now(self._keys(scopes, periods), _joined(head, per_scope))
        if reply is None:
            return False

        def replied(reply) -> None:
            # Failed: the connection was lost (or abandoned with its loop) before the reply.
            error = reply.exception() if not reply.cancelled() else ConnectionError("the reply was abandoned")
            if error is not None:
                done(error)
                return
            crossed = reply.result()
            if isinstance(crossed, hiredis.ReplyError):
                done(reply_error(crossed))
                return
            done(Settlement(tokens, cost_nanos, [scopes[int(i)] for i in crossed]))

        reply.add_done_callback(replied)
        return True

    @staticmethod
    def _settle_args(scopes, request_id: str, tokens: int, cost_nanos: int) -> tuple[list, list, list]:
        """The settle script's leading arguments, the scopes' periods, and each scope's values."""
        now = time.time()
        periods, per_scope = [], []
        for scope in scopes:
            period, ttl = scope.period(now)
            periods.append(period)
            tracks_spend = scope.budget_nanos is not None or scope.soft_budget_nanos is not None
            per_scope.append([1 if scope.tpm else 0, 1 if tracks_spend else 0, scope.seed_nanos(period), ttl,
                              -1 if scope.soft_budget_nanos is None else scope.soft_budget_nanos])
        return [int(now * 1000), request_id, tokens, cost_nanos], periods, per_scope


def _joined(head: list, per_scope: list) -> list:
    """One script's arguments for every scope: the head, the scope count, each scope's values."""
    args = [*head, len(per_scope)]
    for values in per_scope:
        args += values
    return args


def _headers_merge(decision: LimitDecision, result) -> None:
    """The tightest request and token windows of an allowing script's answer, into `decision`."""
    limit_requests, remaining_requests, limit_tokens, remaining_tokens = (int(v) for v in result[1:5])
    if limit_requests >= 0 and (decision.remaining_requests is None or remaining_requests < decision.remaining_requests):
        decision.limit_requests, decision.remaining_requests = limit_requests, max(remaining_requests, 0)
    if limit_tokens >= 0 and (decision.remaining_tokens is None or remaining_tokens < decision.remaining_tokens):
        decision.limit_tokens, decision.remaining_tokens = limit_tokens, max(remaining_tokens, 0)


def window_usage(kind: str, entity_ids: list) -> dict[str, tuple[int, int]]:
    """Requests and tokens each entity used in the last 60 seconds, as its limits count them:
    {entity id: (requests, tokens)}. Synchronous and read-only (a /metrics scrape)."""
    second = int(time.time())
    tags = [f"{kind}:{entity_id}" for entity_id in entity_ids]
    if redis_enabled():
        pipe = sync_redis().pipeline(transaction=False)
        for tag in tags:
            base = f"{redis_key('lim')}:{{{tag}}}"
            pipe.hgetall(f"{base}:rpm")
            pipe.hgetall(f"{base}:tpm")
        windows = pipe.execute()
    elif isinstance(_limiter, MemoryLimiter):
        buckets = dict(_limiter._buckets)  # a copy: the server's loop may add to it meanwhile
        windows = [dict(buckets.get(f"{tag}:{kind_}", {})) for tag in tags for kind_ in ("rpm", "tpm")]
    else:
        windows = [{} for _ in tags for _ in range(2)]

    def used(window: dict) -> int:
        return sum(int(count) for at, count in window.items() if int(at) > second - WINDOW_SECONDS)

    return {str(entity_id): (used(windows[2 * i]), used(windows[2 * i + 1])) for i, entity_id in enumerate(entity_ids)}


def spend_counters_reset(kind: str, entity_id) -> None:
    """Forget the period spend counted for one entity (its spend was reset by an operator).
    Synchronous: called from the control plane."""
    tag = f"{kind}:{entity_id}"
    if redis_enabled():
        client = sync_redis()
        keys = list(client.scan_iter(match=f"{redis_key('lim')}:{{{tag}}}:spend:*", count=100))
        if keys:
            client.delete(*keys)
    elif isinstance(_limiter, MemoryLimiter):
        for name in [n for n in _limiter._spend if n.startswith(tag + ":")]:
            del _limiter._spend[name]


def spend_counters_reset_all() -> None:
    """Forget the period spend counted for every entity (POST /global/spend/reset). The request
    and token windows, in-flight marks and reservations are left alone."""
    if redis_enabled():
        client = sync_redis()
        batch = []
        for key in client.scan_iter(match=f"{redis_key('lim')}:{{*}}:spend:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                client.delete(*batch)
                batch = []
        if batch:
            client.delete(*batch)
    elif isinstance(_limiter, MemoryLimiter):
        _limiter._spend.clear()


_limiter = None


def limiter():
    """The process's limiter: Redis when one is configured, else in memory."""
    global _limiter
    if _limiter is None:
        _limiter = RedisLimiter() if redis_enabled() else MemoryLimiter()
    return _limiter
