-- Complete tasks: free their slots, capture their holds, store their outputs, set
-- retention, record who owns the upstream objects each produced. ARGV: id, token,
-- output, products quadruples (a batch from one worker; bounded by the caller;
-- `products`: empty, or `h` (it has hosted files) or `-`, then the ids of the upstream
-- objects the task produced, newline-separated).
-- Returns, per task, 'ok', 'already' (completed before: nothing charged again) or 'stale'
-- (the lease is not this worker's; nothing changed).
-- The batch's slots are freed together (one removal per set, one refresh per account)
-- and its balance changes written once per tenant. A task with a webhook writes its
-- `completed` event; those without one are counted in one `completed_n` event of the
-- call (`accounts`: JSON `[[account, n], …]`), which the dashboard reads.
--- @include "keys"
--- @include "time"
--- @include "config"
--- @include "balance"
--- @include "running"
--- @include "tasks"
local out, done, outputs, objects, seen, ids = {}, {}, {}, {}, {}, {}
for i = 1, #ARGV, 4 do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then return out end
local terms = redis.call('HMGET', k('running'), unpack(ids))
for i = 1, #ARGV, 4 do
  local id, token = ARGV[i], ARGV[i + 1]
  local term = terms[(i + 3) / 4]
  local t = term and running_task(id, term)
  if t and t.token == token and not seen[id] then
    seen[id] = true
    done[#done + 1] = t
    outputs[#done] = ARGV[i + 2]
    objects[#done] = ARGV[i + 3]
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
local QUIET, QUIET_ORDER = {}, {}
for i, t in ipairs(done) do
  if not t.wh then
    -- (finish writes no event for it)
    local acc = t.account or ''
    if not QUIET[acc] then
      QUIET[acc] = 0
      QUIET_ORDER[#QUIET_ORDER + 1] = acc
    end
    QUIET[acc] = QUIET[acc] + 1
  end
  finish(t, 'completed', '', '', '', L, 'output', outputs[i], 'progress', '100') -- per cent, not configured
  local o = objects[i]
  if o ~= '' then
    local ttl = tonumber(t.retention_s or '') or tonumber(CONFIG.retention_fallback_s)
    -- Hosted result files go when the task's retention ends.
    if string.byte(o, 1) == 104 then -- 'h'
      redis.call('ZADD', k('files'), NOW + ttl * 1000, t.id)
    end
    -- Follow-ups that name these objects run on this account (in this pool) while the
    -- task is kept.
    local owner = t.pool .. '|' .. t.account
    for obj in string.gmatch(string.sub(o, 2), '[^\n]+') do
      redis.call('SET', k('obj', t.tenant, obj), owner, 'EX', ttl)
    end
  end
end
flush_ledger(L)
flush_usage()
if #QUIET_ORDER > 0 then
  local parts = {}
  for i, acc in ipairs(QUIET_ORDER) do parts[i] = {acc, QUIET[acc]} end
  emit('completed_n', 'accounts', cjson.encode(parts))
end
return out
