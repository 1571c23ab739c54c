-- The plans' data report: per tenant and UTC day (`usage:<tenant>:<day>`, days since the
-- epoch), `c:<b>` for the completed tasks whose time from creation (read from the task's
-- UUIDv7 id) falls in bucket b
-- (b = floor(log(ms) / log(ratio))), holding their count and the quota they spent in one
-- integer, spent * 2^24 + count (one command per bucket, not two), and `failed`,
-- `cancelled`. Counts are gathered per script call and written once per tenant and
-- field; the key's time to live is set when a field is new.
--- @include "keys"
--- @include "time"
--- @include "config"

local USAGE = {order = {}, by = {}, batch = false}
local LOG_RATIO = math.log(CONFIG.usage_bucket_ratio)

local function usage_add(tenant, field, n)
  local d = USAGE.by[tenant]
  if not d then
    d = {order = {}, n = {}}
    USAGE.by[tenant] = d
    USAGE.order[#USAGE.order + 1] = tenant
  end
  if not d.n[field] then
    d.n[field] = 0
    d.order[#d.order + 1] = field
  end
  d.n[field] = d.n[field] + n
end

local function flush_usage()
  local day = math.floor(NOW / 86400000)
  for _, tenant in ipairs(USAGE.order) do
    local d = USAGE.by[tenant]
    local key = k('usage', tenant, day)
    local fresh = false
    for _, f in ipairs(d.order) do
      if redis.call('HINCRBY', key, f, d.n[f]) == d.n[f] then fresh = true end
    end
    if fresh then redis.call('EXPIRE', key, CONFIG.usage_keep_s) end
  end
  USAGE.order, USAGE.by = {}, {}
end

-- When a task was created (Unix ms), from its id: a UUIDv7 starts with it (48 bits in
-- the first 12 hex digits). An id of another form reads as now.
local function created_ms(id)
  return tonumber(string.sub(id, 1, 8) .. string.sub(id, 10, 13), 16) or NOW
end

-- Bucket field names, built once per bucket.
local BUCKET = {}

-- Count a task that ended now with `status`, having spent `consume` (a string).
local function count_usage(t, status, consume)
  if status == 'completed' then
    local b = math.floor(math.log(math.max(NOW - created_ms(t.id), 1)) / LOG_RATIO)
    local name = BUCKET[b]
    if not name then
      name = 'c:' .. b
      BUCKET[b] = name
    end
    usage_add(t.tenant, name, (tonumber(consume) or 0) * CONFIG.usage_spent_unit + 1)
  else
    usage_add(t.tenant, status, 1)
  end
  if not USAGE.batch then flush_usage() end
end
