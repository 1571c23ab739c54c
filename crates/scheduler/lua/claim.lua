-- Claim up to n tasks in fair rotation. For each: the tenant's PPU cap, then an account
-- with free capacity in the task's mode (least loaded × weight, then least recently
-- used; backups only when no primary can serve), a lease with a fencing token.
-- Also does the time-driven work that is due (bounded): ended cool-downs, max-wait
-- timers, delayed retries.
-- ARGV: n, lease_ms, max_iterations.
-- Returns a flat array, 9 values per task:
--   id, token, account, attempt, pool, mode, body, upstream_ref, account_secret.
local n, lease_ms, max_iter = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])

expire_cooldowns(16)
for _, lane in ipairs(redis.call('ZRANGEBYSCORE', k('timers'), '-inf', NOW, 'LIMIT', 0, 16)) do
  redis.call('ZREM', k('timers'), lane)
  activate(lane)
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', k('delayed'), '-inf', NOW, 'LIMIT', 0, 32)) do
  redis.call('ZREM', k('delayed'), id)
  if redis.call('HGET', k('t', id), 'status') == 'delayed' then enqueue(id, true) end
end

local function park(rot, lane, key)
  redis.call('ZREM', k('rr', rot), lane)
  redis.call('SADD', key, lane)
end

local function pick(owner, mode)
  local acc = redis.call('ZRANGE', k('free', owner, mode), 0, 0)[1]
  if acc then return acc end
  return redis.call('ZRANGE', k('freeb', owner, mode), 0, 0)[1]
end

-- Returns 'claimed', id, token, account, attempt  |  'blocked' | 'empty' | 'skipped' |
-- 'moved' | 'nopool'.
local function try_lane(rot, lane)
  local tenant, pool, mode, pin = split_lane(lane)
  local q = k('q', lane)
  local id = redis.call('LINDEX', q, 0)
  if not id then
    redis.call('ZREM', k('rr', rot), lane)
    return 'empty'
  end
  local t = redis.call('HMGET', k('t', id), 'status', 'enq_ms')
  if t[1] ~= 'queued' then
    -- Cancelled (or expired) while queued: dropped here, lazily, in O(1).
    redis.call('LPOP', q)
    return 'skipped'
  end
  if pool == 'ppu' then
    local cap = tonumber(redis.call('HGET', k('tn', tenant), 'cap') or '-1') or -1
    if cap >= 0 and redis.call('SCARD', k('tinf', tenant)) >= cap then
      park(rot, lane, k('park', 'cap', tenant))
      return 'blocked'
    end
  end
  local acc
  if pin ~= '' then
    local a = redis.call('HMGET', k('a', pin), 'state', 'cap_' .. mode)
    local free = (tonumber(a[2] or '0') or 0) - redis.call('SCARD', k('ainf', pin, mode))
    if a[1] == 'active' and free > 0 then
      acc = pin
    else
      park(rot, lane, k('park', 'a', pin))
      return 'blocked'
    end
  else
    local owner = tenant
    if pool == 'ppu' then owner = 'pool' end
    acc = pick(owner, mode)
    if not acc then
      if pool == 'ppu' then return 'nopool' end
      local tn = redis.call('HMGET', k('tn', tenant), 'failover', 'max_wait_ms')
      if tn[1] == '1' then
        local max_wait = tonumber(tn[2] or '0') or 0
        local enq = tonumber(t[2] or '0') or 0
        local none_usable = redis.call('SCARD', k('use', tenant, mode)) == 0
        if none_usable or (max_wait > 0 and NOW - enq >= max_wait) then
          redis.call('LPOP', q)
          redis.call('HINCRBY', k('tn', tenant), 'queued', -1)
          fail_over(id)
          return 'moved'
        end
        if max_wait > 0 then redis.call('ZADD', k('timers'), enq + max_wait, lane) end
      end
      park(rot, lane, k('park', 't', tenant))
      return 'blocked'
    end
  end
  redis.call('LPOP', q)
  redis.call('HINCRBY', k('tn', tenant), 'queued', -1)
  local token = tostring(redis.call('INCR', k('tokseq')))
  local attempt = redis.call('HINCRBY', k('t', id), 'attempts', 1)
  local deadline = NOW + lease_ms
  redis.call('HSET', k('t', id), 'status', 'processing', 'account', acc, 'token', token, 'deadline', deadline)
  redis.call('HSETNX', k('t', id), 'started_ms', NOW)
  redis.call('SADD', k('ainf', acc, mode), id)
  if pool == 'ppu' then
    redis.call('SADD', k('tinf', tenant), id)
  else
    redis.call('SADD', k('binf', tenant), id)
  end
  redis.call('ZADD', k('leases'), deadline, id)
  redis.call('HSET', k('a', acc), 'lru', redis.call('INCR', k('lruseq')) % 4294967296)
  acc_refresh(acc, mode)
  if redis.call('LLEN', q) == 0 then
    redis.call('ZREM', k('rr', rot), lane)
  else
    redis.call('ZADD', k('rr', rot), 'XX', redis.call('INCR', k('rrseq')), lane)
  end
  emit('started', {'task', id, 'tenant', tenant, 'account', acc})
  return 'claimed', id, token, acc, attempt
end

local ROTS = {'ppu:relax', 'ppu:fast', 'ppu:turbo', 'byoa:relax', 'byoa:fast', 'byoa:turbo', 'pin'}
local POOL_MODE = {['ppu:relax'] = 'relax', ['ppu:fast'] = 'fast', ['ppu:turbo'] = 'turbo'}
local out = {}
local claimed, iter, idle = 0, 0, 0
local r = tonumber(redis.call('INCR', k('rotseq'))) % #ROTS
while claimed < n and iter < max_iter and idle < #ROTS do
  iter = iter + 1
  r = r % #ROTS + 1
  local rot = ROTS[r]
  local lane = redis.call('ZRANGE', k('rr', rot), 0, 0)[1]
  local pool_mode = POOL_MODE[rot]
  if lane and pool_mode and redis.call('ZCARD', k('free', 'pool', pool_mode)) == 0
      and redis.call('ZCARD', k('freeb', 'pool', pool_mode)) == 0 then
    lane = nil
  end
  if not lane then
    idle = idle + 1
  else
    local res, id, token, acc, attempt = try_lane(rot, lane)
    if res == 'claimed' then
      idle = 0
      claimed = claimed + 1
      local t = redis.call('HMGET', k('t', id), 'pool', 'mode', 'body', 'upstream')
      local secret = redis.call('HGET', k('a', acc), 'secret') or ''
      for _, v in ipairs({id, token, acc, attempt, t[1], t[2], t[3] or '', t[4] or '', secret}) do
        out[#out + 1] = v
      end
    elseif res == 'nopool' then
      idle = idle + 1
    else
      idle = 0
    end
  end
end
return out
