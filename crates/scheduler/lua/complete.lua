-- Complete tasks: free their slots, capture their holds, store their outputs, set
-- retention. ARGV: id, token, output triples (a batch from one worker; bounded by the
-- caller). Returns, per task, 'ok', 'already' (completed before: nothing charged again)
-- or 'stale' (the lease is not this worker's; nothing changed).
-- The batch's slots are freed together (one removal per set, one refresh per account)
-- and its balance changes written once per tenant.
--- @include "keys"
--- @include "balance"
--- @include "running"
--- @include "tasks"
local out, done, outputs, seen, ids = {}, {}, {}, {}, {}
for i = 1, #ARGV, 3 do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then return out end
local terms = redis.call('HMGET', k('running'), unpack(ids))
for i = 1, #ARGV, 3 do
  local id, token = ARGV[i], ARGV[i + 1]
  local term = terms[(i + 2) / 3]
  local t = term and running_task(id, term)
  if t and t.token == token and not seen[id] then
    seen[id] = true
    done[#done + 1] = t
    outputs[#done] = ARGV[i + 2]
    out[#out + 1] = 'ok'
  elseif seen[id] or redis.call('HGET', k('t', id), 'status') == 'completed' then
    out[#out + 1] = 'already'
  else
    out[#out + 1] = 'stale'
  end
end
release_many(done)
local L = ledger()
USAGE.batch = true
for i, t in ipairs(done) do
  finish(t, 'completed', '', '', '', L, 'output', outputs[i], 'progress', '100') -- per cent, not configured
end
flush_ledger(L)
flush_usage()
return out
