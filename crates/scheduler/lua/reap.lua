-- Leases past their deadline: the worker is gone. Free the slots and requeue the task
-- at the front of its lane, or fail it when its attempt budget is spent. Also does the
-- time-driven work claim does, so it happens when no worker is claiming.
-- ARGV: limit. Returns the number of leases reaped.
--- @include "keys"
--- @include "time"
--- @include "config"
--- @include "events"
--- @include "tasks"
--- @include "due"
local limit = tonumber(ARGV[1])
due_work()
local due = redis.call('ZRANGEBYSCORE', k('leases'), '-inf', NOW, 'LIMIT', 0, limit)
for _, id in ipairs(due) do
  local t = load_task(id)
  if t.status ~= 'processing' then
    redis.call('ZREM', k('leases'), id)
  else
    release(t)
    emit('reaped', 'task', id, 'tenant', t.tenant)
    if (tonumber(t.attempts) or 1) >= CONFIG.max_attempts then
      finish(t, 'failed', 'retries_exhausted', 'the worker running this task stopped responding, and the retry budget is spent', '')
    else
      keep_on_account(t)
      enqueue(t, true)
    end
  end
end
return #due
