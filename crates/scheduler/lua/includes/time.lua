-- The clock, and the timers of time-driven work.
--- @include "keys"
--- @include "config"

-- Redis's clock, shifted by `scheduler.clock_offset_ms` (0 but in tests of day
-- boundaries and active windows).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + CONFIG.clock_offset_ms
end
local NOW = now_ms()
local NOW_S = int(NOW)

-- Time-driven work (cool-downs `cool`, failover max-wait `timers`, delayed retries
-- `delayed`) is a sorted set each; `due` holds the earliest time any of them falls due,
-- so that claims and reaps look at them only when something is due (see due.lua).
local NOTHING_DUE = 9007199254740991
local function schedule(zset, at, member)
  redis.call('ZADD', k(zset), at, member)
  local due = tonumber(redis.call('GET', k('due')) or '')
  if due == nil or at < due then redis.call('SET', k('due'), at) end
end
