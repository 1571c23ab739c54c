-- The shard's event stream.
--- @include "keys"
--- @include "config"

-- Whether a task's `wh_endpoint` (as read: nil or false when absent) names a webhook. A
-- task's own events (created, progress, completed, cancelled) are for the webhook
-- deliverer, and are written only for a task with one.
local function names_webhook(endpoint)
  return endpoint ~= nil and endpoint ~= false and endpoint ~= ''
end

-- An event: its entry id is its time (readers take `at` from it). The fields come as
-- name, value pairs; empty values are left out (readers take a missing field as empty).
local function emit(kind, ...)
  local args = {'XADD', k('ev'), 'MAXLEN', '~', CONFIG.events_max_len, '*', 'type', kind, ...}
  local n = 8
  for i = 9, 8 + select('#', ...), 2 do
    local v = args[i + 1]
    if v ~= nil and v ~= '' then
      if n ~= i - 1 then args[n + 1], args[n + 2] = args[i], v end
      n = n + 2
    end
  end
  redis.call(unpack(args, 1, n))
end
