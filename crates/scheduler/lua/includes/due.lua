-- Time-driven work that is due, bounded per call: ended cool-downs, failover max-wait
-- timers, delayed retries, tasks that waited longer than their tenant allows
-- (`expiry`: task -> deadline; a task no longer waiting then is let be); one GET when
-- nothing is due. Claim and reap both run it, so
-- it happens whether or not workers are claiming.
--- @include "keys"
--- @include "time"
--- @include "lanes"
--- @include "accounts"
--- @include "tasks"

local function due_work()
  local due = tonumber(redis.call('GET', k('due')) or '')
  if due ~= nil and NOW < due then return end
  expire_cooldowns(16)
  for _, lane in ipairs(redis.call('ZRANGEBYSCORE', k('timers'), '-inf', NOW, 'LIMIT', 0, 16)) do
    redis.call('ZREM', k('timers'), lane)
    activate(lane)
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', k('delayed'), '-inf', NOW, 'LIMIT', 0, 32)) do
    redis.call('ZREM', k('delayed'), id)
    local t = load_task(id)
    if t.status == 'delayed' then enqueue(t, true) end
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', k('expiry'), '-inf', NOW, 'LIMIT', 0, 32)) do
    redis.call('ZREM', k('expiry'), id)
    local t = load_task(id)
    if unqueue(t) then
      finish(t, 'failed', 'expired_in_queue',
        'the task waited longer than your max_pending_s setting and was not started; its hold was refunded', '')
    end
  end
  -- The next time anything falls due (now again if work was left over).
  local next_due = NOTHING_DUE
  for _, z in ipairs({'cool', 'timers', 'delayed', 'expiry'}) do
    local first = redis.call('ZRANGE', k(z), '0', '0', 'WITHSCORES')[2]
    if first and tonumber(first) < next_due then next_due = tonumber(first) end
  end
  redis.call('SET', k('due'), next_due)
end
