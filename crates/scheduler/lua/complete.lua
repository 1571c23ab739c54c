-- Complete tasks: free their slots, capture their holds, store their outputs, set
-- retention. ARGV: id, token, output triples (a batch from one worker; bounded by the
-- caller). Returns, per task, 'ok', 'already' (completed before: nothing charged again)
-- or 'stale' (the lease is not this worker's; nothing changed).
-- The batch's slots are freed together (one removal per set, one refresh per account)
-- and its balance changes written once per tenant.
local FIELDS = {'tenant', 'pool', 'mode', 'account', 'status', 'token', 'hold', 'hold_state', 'retention_s', 'attempts'}
local out, done, outputs, seen = {}, {}, {}, {}
for i = 1, #ARGV, 3 do
  local id, token = ARGV[i], ARGV[i + 1]
  local t = load_task(id, FIELDS)
  if t.status == 'completed' or seen[id] then
    out[#out + 1] = 'already'
  elseif t.status ~= 'processing' or t.token ~= token then
    out[#out + 1] = 'stale'
  else
    seen[id] = true
    done[#done + 1] = t
    outputs[#done] = ARGV[i + 2]
    out[#out + 1] = 'ok'
  end
end
release_many(done)
local L = ledger()
for i, t in ipairs(done) do
  finish(t, 'completed', '', '', '', {'output', outputs[i], 'progress', 100}, L)
end
flush_ledger(L)
return out
