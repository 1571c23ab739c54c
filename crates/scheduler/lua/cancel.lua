-- Cancel queued tasks of this tenant. ARGV: tenant, created_before_ms (0: any), id, ….
-- Returns one answer per id, in order: 'ok', 'already', 'not_found' (absent or another
-- tenant's), 'not_cancellable:<status>', or 'later' (created at or after
-- created_before_ms: left alone). Queue entries are dropped lazily by claim.
--- @include "keys"
--- @include "batch"
--- @include "tasks"
local tenant, before = ARGV[1], tonumber(ARGV[2]) or 0
local out = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local t = load_task(id)
  local answer = 'ok'
  if t.tenant ~= tenant then
    answer = 'not_found'
  elseif t.status == 'cancelled' then
    answer = 'already'
  elseif t.status ~= 'queued' and t.status ~= 'delayed' then
    answer = 'not_cancellable:' .. (t.status or '')
  elseif before > 0 and (tonumber(redis.call('HGET', t.key, 'created_ms')) or 0) >= before then
    answer = 'later'
  else
    unqueue(t)
    finish(t, 'cancelled', 'cancelled', 'cancelled by the client', '')
  end
  out[#out + 1] = answer
end
return out
