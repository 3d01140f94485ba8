"""Sliding one-minute windows in Redis, as Lua for the scripts that count requests and tokens
(apps.keys.limits: a key's, team's... rpm and tpm; apps.routing.selection.deployment_state: a
deployment's).

A window is a hash of per-second buckets ({second: count}) that together cover the last 60
seconds. Beside them it keeps its running sum (field '0') and the second the sum was brought up
to (field '1'), so reading it drops the buckets expired since, one a second under steady use,
instead of reading all sixty on every request. The sum is rebuilt from the buckets in the first
read of each minute and whenever its fields are missing: what a writer with a skewed clock, or a
replica of a version that kept no sum, put beside it is counted again within a minute. Fields '0'
and '1' read as seconds long past: such a replica drops them as expired buckets and does not
trip on them, so both versions run side by side in a rolling update.

The functions take `sec`, the caller's current unix second; a caller whose clock is behind the
last read's is given the sum as that read left it.
"""

WINDOW_LUA = """
local function window_rescan(key, sec)
  local data = redis.call('HGETALL', key)
  local total, stale = 0, {}
  for j = 1, #data, 2 do
    local s = tonumber(data[j])
    if s > sec - 60 then total = total + tonumber(data[j + 1])
    elseif s > 1 then stale[#stale + 1] = data[j] end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  redis.call('HSET', key, '0', total, '1', sec)
  redis.call('EXPIRE', key, 120)
  return total
end

-- The window's count over the last 60 seconds.
local function window_total(key, sec)
  local book = redis.call('HMGET', key, '0', '1')
  local total, through = tonumber(book[1]), tonumber(book[2])
  if total == nil or through == nil or sec - through >= 60 then return window_rescan(key, sec) end
  if sec <= through then return total end
  if math.floor(sec / 60) ~= math.floor(through / 60) then return window_rescan(key, sec) end
  local gone = {}
  for s = through - 59, sec - 60 do gone[#gone + 1] = s end
  local counts = redis.call('HMGET', key, unpack(gone))
  for j = 1, #counts do total = total - (tonumber(counts[j]) or 0) end
  redis.call('HDEL', key, unpack(gone))
  redis.call('HSET', key, '0', total, '1', sec)
  return total
end

-- Count `amount` in the current second (a read of the window need not come first).
local function window_add(key, sec, amount)
  redis.call('HINCRBY', key, sec, amount)
  redis.call('HINCRBY', key, '0', amount)
  redis.call('EXPIRE', key, 120)
end

-- Take back what was counted in second `second`, if that bucket is still there.
local function window_take_back(key, second, amount)
  if redis.call('HEXISTS', key, second) == 1 then
    redis.call('HINCRBY', key, second, -amount)
    redis.call('HINCRBY', key, '0', -amount)
  end
end

-- The oldest second still counted, or nil (for a Retry-After: read only when at a limit).
local function window_oldest(key, sec)
  local first = nil
  for _, field in ipairs(redis.call('HKEYS', key)) do
    local s = tonumber(field)
    if s > sec - 60 and (first == nil or s < first) then first = s end
  end
  return first
end
"""
