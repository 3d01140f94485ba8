"""What every replica must agree on about each deployment: cooldowns, recent failures,
requests and tokens in the last minute, requests in flight, and latency.

With Redis each change is one Lua script (atomic across replicas); without Redis the
same algorithm runs in process memory, correct for one process. The request path
pays one round trip to read the state of a group's deployments (cooldowns only,
unless its strategy or its deployments' rpm/tpm need more) and nothing after a
success unless the group counts usage, in-flight requests or latency.

Deployments are named by `Deployment.state_key`, never by database id alone.
Windows are per-second buckets over the last 60 seconds, as for key limits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


from apps.core import invalidation
from apps.core.invalidation import KIND_DEPLOYMENTS, channel, listening
from apps.core.redis import AsyncRedisPerLoop, publish_command, redis_enabled, redis_key, register_script
from apps.core.sliding_window import WINDOW_LUA

WINDOW_SECONDS = 60
IN_FLIGHT_TTL_MS = 15 * 60 * 1000  # a crashed process's in-flight marks expire
LATENCY_TTL_SECONDS = 24 * 3600  # statistics of a deployment nobody uses fade away
LATENCY_SMOOTHING = 0.3  # weight of the newest sample in the moving average


@dataclass(slots=True)
class DeploymentLoad:
    """One deployment's shared state as read before a pick."""

    cooldown_until: float = 0.0  # unix seconds; in the past: not cooling down
    requests: int = 0  # in the last minute (counted only where needed)
    tokens: int = 0
    oldest_second: int | None = None  # of its windows, for a Retry-After (on Redis: read only at a limit)
    in_flight: int = 0
    latency: float | None = None  # seconds, moving average of whole answers
    time_to_first_token: float | None = None  # seconds, moving average over streams


@dataclass(frozen=True, slots=True)
class StateNeeds:
    """What a pick must read beyond cooldowns."""

    usage: bool = False
    in_flight: bool = False
    latency: bool = False

    @property
    def cooldowns_only(self) -> bool:
        return not (self.usage or self.in_flight or self.latency)


COOLDOWNS_ONLY = StateNeeds()


def _ewma(old: float | None, sample: float) -> float:
    return sample if old is None else LATENCY_SMOOTHING * sample + (1 - LATENCY_SMOOTHING) * old


# --- in process -------------------------------------------------------------------------------


class MemoryDeploymentState:
    """The same algorithm as the Lua scripts, for one process without Redis."""

    def __init__(self) -> None:
        self._cooldowns: dict[str, float] = {}  # state key -> until (unix seconds)
        self._failures: dict[str, dict[int, int]] = {}  # state key -> second -> failures
        self._requests: dict[str, dict[int, int]] = {}
        self._tokens: dict[str, dict[int, int]] = {}
        self._in_flight: dict[str, dict[str, float]] = {}  # state key -> request id -> expiry
        self._latency: dict[str, float] = {}
        self._first_token: dict[str, float] = {}

    @staticmethod
    def _window(buckets: dict[int, int], second: int) -> tuple[int, int | None]:
        for old in [s for s in buckets if s <= second - WINDOW_SECONDS]:
            del buckets[old]
        return sum(buckets.values()), min(buckets) if buckets else None

    def _busy(self, key: str, now: float) -> dict[str, float]:
        marks = self._in_flight.setdefault(key, {})
        for request_id in [r for r, expiry in marks.items() if expiry <= now]:
            del marks[request_id]
        return marks

    async def read(self, keys: list[str], needs: StateNeeds,
                   limits: list | None = None) -> list[DeploymentLoad]:
        now = time.time()
        second = int(now)
        loads = []
        for key in keys:
            load = DeploymentLoad(cooldown_until=self._cooldowns.get(key, 0.0))
            if needs.usage:
                load.requests, oldest_requests = self._window(self._requests.setdefault(key, {}), second)
                load.tokens, oldest_tokens = self._window(self._tokens.setdefault(key, {}), second)
                load.oldest_second = min(filter(None, (oldest_requests, oldest_tokens)), default=None)
            if needs.in_flight:
                load.in_flight = len(self._busy(key, now))
            if needs.latency:
                load.latency = self._latency.get(key)
                load.time_to_first_token = self._first_token.get(key)
            loads.append(load)
        return loads

    async def acquire(self, key: str, request_id: str, *, rpm: int | None, tpm: int | None,
                      count_usage: bool, track_in_flight: bool) -> int:
        now = time.time()
        second = int(now)
        if rpm:
            used, oldest = self._window(self._requests.setdefault(key, {}), second)
            if used >= rpm:
                return max((oldest or second) + WINDOW_SECONDS - second, 1)
        if tpm:
            used, oldest = self._window(self._tokens.setdefault(key, {}), second)
            if used >= tpm:
                return max((oldest or second) + WINDOW_SECONDS - second, 1)
        if count_usage:
            buckets = self._requests.setdefault(key, {})
            buckets[second] = buckets.get(second, 0) + 1
        if track_in_flight:
            self._busy(key, now)[request_id] = now + IN_FLIGHT_TTL_MS / 1000
        return 0

    async def release(self, key: str, request_id: str, *, tokens: int, count_usage: bool,
                      track_in_flight: bool, latency: float | None, time_to_first_token: float | None) -> None:
        if count_usage and tokens:
            buckets = self._tokens.setdefault(key, {})
            second = int(time.time())
            buckets[second] = buckets.get(second, 0) + tokens
        if track_in_flight:
            self._in_flight.get(key, {}).pop(request_id, None)
        if latency is not None:
            self._latency[key] = _ewma(self._latency.get(key), latency)
        if time_to_first_token is not None:
            self._first_token[key] = _ewma(self._first_token.get(key), time_to_first_token)

    async def failure(self, key: str, *, allowed_fails: int, cooldown_seconds: float, immediate: bool) -> float:
        """Count a failure; the cooldown it started (until, unix seconds), else 0."""
        now = time.time()
        until = 0.0
        if immediate:
            until = now + cooldown_seconds
        else:
            buckets = self._failures.setdefault(key, {})
            second = int(now)
            buckets[second] = buckets.get(second, 0) + 1
            if self._window(buckets, second)[0] >= max(allowed_fails, 1):
                until = now + cooldown_seconds
                buckets.clear()  # a deployment back from cooldown starts with a clean slate
        if until:
            self._cooldowns[key] = max(until, self._cooldowns.get(key, 0.0))
            for stale in [k for k, v in self._cooldowns.items() if v <= now]:
                del self._cooldowns[stale]
        return until


# --- Redis ------------------------------------------------------------------------------------

# KEYS: cooldowns hash, latency hash, then per deployment: requests, tokens, in-flight.
# ARGV: now_ms, count, needs usage, needs in-flight, needs latency, then the state keys, then per
# deployment its rpm and tpm limits (0: none).
# Returns per deployment: until_ms, requests, tokens, oldest second (-1 unless it is at a limit),
# in flight, latency, ttft (latencies as strings: Lua numbers would come back truncated to integers).
_READ = WINDOW_LUA + """
local now = tonumber(ARGV[1])
local sec = math.floor(now / 1000)
local n = tonumber(ARGV[2])
local usage, busy, lat = ARGV[3] == '1', ARGV[4] == '1', ARGV[5] == '1'

local out = {}
for i = 0, n - 1 do
  local name = ARGV[6 + i]
  local k = 2 + i * 3
  out[#out + 1] = redis.call('HGET', KEYS[1], name) or '0'
  local requests, tokens, oldest = 0, 0, -1
  if usage then
    requests, tokens = window_total(KEYS[k + 1], sec), window_total(KEYS[k + 2], sec)
    local rpm, tpm = tonumber(ARGV[6 + n + i * 2]) or 0, tonumber(ARGV[7 + n + i * 2]) or 0
    if (rpm > 0 and requests >= rpm) or (tpm > 0 and tokens >= tpm) then  -- for its Retry-After
      local o1, o2 = window_oldest(KEYS[k + 1], sec), window_oldest(KEYS[k + 2], sec)
      oldest = math.min(o1 or o2 or -1, o2 or o1 or -1)
    end
  end
  out[#out + 1] = requests
  out[#out + 1] = tokens
  out[#out + 1] = oldest
  local in_flight = 0
  if busy then
    redis.call('ZREMRANGEBYSCORE', KEYS[k + 3], '-inf', now)
    in_flight = redis.call('ZCARD', KEYS[k + 3])
  end
  out[#out + 1] = in_flight
  if lat then
    out[#out + 1] = redis.call('HGET', KEYS[2], name .. ':lat') or ''
    out[#out + 1] = redis.call('HGET', KEYS[2], name .. ':ttft') or ''
  else
    out[#out + 1] = ''
    out[#out + 1] = ''
  end
end
return out
"""

# KEYS: requests, tokens, in-flight. ARGV: now_ms, request id, rpm (0: none), tpm (0: none),
# count usage (0/1), track in flight (0/1), in-flight ttl ms.
# Returns 0 (counted) or the seconds until the deployment has capacity again.
_ACQUIRE = WINDOW_LUA + """
local now = tonumber(ARGV[1])
local sec = math.floor(now / 1000)
local rpm, tpm = tonumber(ARGV[3]), tonumber(ARGV[4])

if rpm > 0 and window_total(KEYS[1], sec) >= rpm then
  return math.max((window_oldest(KEYS[1], sec) or sec) + 60 - sec, 1)
end
if tpm > 0 and window_total(KEYS[2], sec) >= tpm then
  return math.max((window_oldest(KEYS[2], sec) or sec) + 60 - sec, 1)
end
if ARGV[5] == '1' then window_add(KEYS[1], sec, 1) end
if ARGV[6] == '1' then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[7]), ARGV[2])
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[7]))
end
return 0
"""

# KEYS: tokens, in-flight, latency hash. ARGV: now_ms, request id, tokens, count usage (0/1),
# track in flight (0/1), latency ('' if none), ttft ('' if none), state key, smoothing, latency ttl.
_RELEASE = WINDOW_LUA + """
local sec = math.floor(tonumber(ARGV[1]) / 1000)
local tokens = tonumber(ARGV[3])
if ARGV[4] == '1' and tokens > 0 then window_add(KEYS[1], sec, tokens) end
if ARGV[5] == '1' then redis.call('ZREM', KEYS[2], ARGV[2]) end
local alpha = tonumber(ARGV[9])
local function average(field, sample)
  if sample == '' then return end
  local old = tonumber(redis.call('HGET', KEYS[3], field))
  local value = tonumber(sample)
  if old then value = alpha * value + (1 - alpha) * old end
  redis.call('HSET', KEYS[3], field, string.format('%.6f', value))
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[10]))
end
average(ARGV[8] .. ':lat', ARGV[6])
average(ARGV[8] .. ':ttft', ARGV[7])
return 1
"""

# KEYS: failures of the deployment, cooldowns hash. ARGV: now_ms, state key, allowed fails,
# cooldown ms, immediate (0/1), invalidation channel, publish command (SPUBLISH on a cluster: the
# channel carries the keys' hash tag). Returns the cooldown's end (ms) it
# started, else 0; a started cooldown is published to every replica's mirror in the same step.
_FAILURE = """
local now = tonumber(ARGV[1])
local sec = math.floor(now / 1000)
local until_ms = 0
if ARGV[5] == '1' then
  until_ms = now + tonumber(ARGV[4])
else
  redis.call('HINCRBY', KEYS[1], sec, 1)
  redis.call('EXPIRE', KEYS[1], 120)
  local data = redis.call('HGETALL', KEYS[1])
  local total = 0
  for j = 1, #data, 2 do
    if tonumber(data[j]) > sec - 60 then total = total + tonumber(data[j + 1]) end
  end
  if total >= math.max(tonumber(ARGV[3]), 1) then
    until_ms = now + tonumber(ARGV[4])
    redis.call('DEL', KEYS[1])
  end
end
if until_ms > 0 then
  local current = tonumber(redis.call('HGET', KEYS[2], ARGV[2])) or 0
  if until_ms > current then redis.call('HSET', KEYS[2], ARGV[2], until_ms) end
  local all = redis.call('HGETALL', KEYS[2])
  local stale = {}
  for j = 1, #all, 2 do
    if tonumber(all[j + 1]) <= now then stale[#stale + 1] = all[j] end
  end
  if #stale > 0 then redis.call('HDEL', KEYS[2], unpack(stale)) end
  redis.call(ARGV[7], ARGV[6], cjson.encode({kind = 'cooldown', key = ARGV[2], until_ms = until_ms}))
end
return until_ms
"""


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _seconds(value) -> float | None:
    text = _text(value)
    return float(text) if text else None


class RedisDeploymentState:
    def __init__(self) -> None:
        # One hash tag for all routing state: a group's deployments are read in one
        # script, which Redis Cluster only allows within one slot.
        self._prefix = redis_key("rt") + ":{rt}"
        self._cooldowns_key = f"{self._prefix}:cooldowns"
        self._latency_key = f"{self._prefix}:latency"
        self._clients = AsyncRedisPerLoop(on_new=lambda client: tuple(
            register_script(client, script) for script in (_READ, _ACQUIRE, _RELEASE, _FAILURE)))
        # Every replica's cooldowns, mirrored in process from the failure script's messages, so
        # the common read (cooldowns only) costs no round trip. Trusted only while this process
        # listens to the messages; refilled from the hash after any gap.
        self._mirror: dict[str, float] = {}
        self._mirror_synced = False

    def handle_message(self, message: dict) -> None:
        kind = message.get("kind")
        if kind == "cooldown":
            until = float(message.get("until_ms") or 0) / 1000
            key = str(message.get("key"))
            if until > self._mirror.get(key, 0.0):
                self._mirror[key] = until
        elif kind == KIND_DEPLOYMENTS:  # also sent when the subscription (re)starts: refill
            self._mirror_synced = False

    def _client(self) -> tuple:
        client, scripts = self._clients.get()
        return (client, *scripts)

    def _keys(self, key: str) -> tuple[str, str, str]:
        return f"{self._prefix}:req:{key}", f"{self._prefix}:tok:{key}", f"{self._prefix}:busy:{key}"

    async def read(self, keys: list[str], needs: StateNeeds,
                   limits: list | None = None) -> list[DeploymentLoad]:
        """`limits`: each deployment's (rpm, tpm), None for none: a deployment at one of them has
        its oldest counted second read (oldest_second), which costs a read of its whole window."""
        client, read_script, *_ = self._client()
        if needs.cooldowns_only:
            # The common case: from the mirror, else one HGETALL that refills it.
            if not (self._mirror_synced and listening()):
                synced = listening()  # before the read: a message after it lands in the new mirror
                raw = await client.hgetall(self._cooldowns_key)
                now = time.time()
                self._mirror = {_text(k): until for k, v in raw.items() if (until := int(v) / 1000) > now}
                self._mirror_synced = synced
            mirror = self._mirror
            return [DeploymentLoad(cooldown_until=mirror.get(key, 0.0)) for key in keys]
        script_keys = [self._cooldowns_key, self._latency_key]
        for key in keys:
            script_keys += self._keys(key)
        args = [int(time.time() * 1000), len(keys), int(needs.usage), int(needs.in_flight), int(needs.latency), *keys]
        for rpm, tpm in limits or ():
            args += (rpm or 0, tpm or 0)
        flat = await read_script(keys=script_keys, args=args)
        loads = []
        for i in range(len(keys)):
            until, requests, tokens, oldest, in_flight, latency, ttft = flat[i * 7: i * 7 + 7]
            loads.append(DeploymentLoad(
                cooldown_until=int(_text(until)) / 1000,
                requests=int(requests),
                tokens=int(tokens),
                oldest_second=int(oldest) if int(oldest) >= 0 else None,
                in_flight=int(in_flight),
                latency=_seconds(latency),
                time_to_first_token=_seconds(ttft),
            ))
        return loads

    async def acquire(self, key: str, request_id: str, *, rpm: int | None, tpm: int | None,
                      count_usage: bool, track_in_flight: bool) -> int:
        _, _, acquire_script, _, _ = self._client()
        return int(await acquire_script(
            keys=list(self._keys(key)),
            args=[int(time.time() * 1000), request_id, rpm or 0, tpm or 0, int(count_usage),
                  int(track_in_flight), IN_FLIGHT_TTL_MS],
        ))

    async def release(self, key: str, request_id: str, *, tokens: int, count_usage: bool,
                      track_in_flight: bool, latency: float | None, time_to_first_token: float | None) -> None:
        _, _, _, release_script, _ = self._client()
        _, tokens_key, busy_key = self._keys(key)
        await release_script(
            keys=[tokens_key, busy_key, self._latency_key],
            args=[int(time.time() * 1000), request_id, tokens, int(count_usage), int(track_in_flight),
                  "" if latency is None else f"{latency:.6f}",
                  "" if time_to_first_token is None else f"{time_to_first_token:.6f}",
                  key, LATENCY_SMOOTHING, LATENCY_TTL_SECONDS],
        )

    async def failure(self, key: str, *, allowed_fails: int, cooldown_seconds: float, immediate: bool) -> float:
        *_, failure_script = self._client()
        until_ms = await failure_script(
            keys=[f"{self._prefix}:fails:{key}", self._cooldowns_key],
            args=[int(time.time() * 1000), key, allowed_fails, int(cooldown_seconds * 1000), int(immediate),
                  channel(), publish_command()],
        )
        until = int(until_ms) / 1000
        if until > self._mirror.get(key, 0.0):
            self._mirror[key] = until  # this process knows at once, before its own message is back
        return until


_state = None


def deployment_state():
    """The process's deployment state: Redis when one is configured, else in memory."""
    global _state
    if _state is None:
        _state = RedisDeploymentState() if redis_enabled() else MemoryDeploymentState()
        if isinstance(_state, RedisDeploymentState):
            invalidation.register_handler(_state.handle_message)
    return _state
