-- Cancel a queued task of this tenant. ARGV: id, tenant.
-- Returns 'ok', 'already', 'not_found' (absent or another tenant's) or
-- 'not_cancellable:<status>'. The queue entry is dropped lazily by claim.
local id, tenant = ARGV[1], ARGV[2]
local t = redis.call('HMGET', k('t', id), 'tenant', 'status')
if t[1] ~= tenant then return 'not_found' end
if t[2] == 'cancelled' then return 'already' end
if t[2] == 'queued' then
  redis.call('HINCRBY', k('tn', tenant), 'queued', -1)
elseif t[2] == 'delayed' then
  redis.call('ZREM', k('delayed'), id)
else
  return 'not_cancellable:' .. (t[2] or '')
end
finish(id, 'cancelled', 'cancelled', 'cancelled by the client', '')
return 'ok'
