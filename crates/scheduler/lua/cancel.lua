-- Cancel a queued task of this tenant. ARGV: id, tenant.
-- Returns 'ok', 'already', 'not_found' (absent or another tenant's) or
-- 'not_cancellable:<status>'. The queue entry is dropped lazily by claim.
--- @include "keys"
--- @include "batch"
--- @include "tasks"
local id, tenant = ARGV[1], ARGV[2]
local t = load_task(id)
if t.tenant ~= tenant then return 'not_found' end
if t.status == 'cancelled' then return 'already' end
if t.status == 'queued' then
  count_queued(tenant, -1)
elseif t.status == 'delayed' then
  redis.call('ZREM', k('delayed'), id)
else
  return 'not_cancellable:' .. (t.status or '')
end
finish(t, 'cancelled', 'cancelled', 'cancelled by the client', '')
return 'ok'
