-- Extend leases. ARGV: lease_ms, then id/token pairs. Returns 1 (extended) or 0 (the
-- lease is no longer this worker's) per pair. Reads the running terms (one lookup per
-- task) and moves the deadlines with one ZADD.
--- @include "keys"
--- @include "time"
--- @include "running"
local lease_ms = tonumber(ARGV[1])
local out, ids, deadlines = {}, {}, {}
for i = 2, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then return out end
local terms = redis.call('HMGET', k('running'), unpack(ids))
local deadline = int(NOW + lease_ms)
for i, id in ipairs(ids) do
  local term = terms[i]
  if term and running_token(term) == ARGV[2 * i + 1] then
    deadlines[#deadlines + 1] = deadline
    deadlines[#deadlines + 1] = id
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if #deadlines > 0 then redis.call('ZADD', k('leases'), unpack(deadlines)) end
return out
