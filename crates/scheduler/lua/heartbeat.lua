-- Extend leases. ARGV: lease_ms, then id/token pairs. Returns 1 (extended) or 0 (the
-- lease is no longer this worker's) per pair.
local lease_ms = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local t = redis.call('HMGET', k('t', id), 'status', 'token')
  if t[1] == 'processing' and t[2] == token then
    redis.call('ZADD', k('leases'), NOW + lease_ms, id)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
