-- Claim up to n tasks in fair rotation. For each: the tenant's PPU cap, then an account
-- with free capacity in the task's mode (most free capacity × weight, then least
-- recently used; backups only when no primary can serve), a lease with a fencing token.
-- Also does the time-driven work that is due (bounded): ended cool-downs, max-wait
-- timers, delayed retries.
-- ARGV: n, lease_ms, max_iterations.
-- Returns a flat array, 10 values per task:
--   id, token, account, attempt, pool, mode, body, upstream_ref, account_secret, tenant.
local n, lease_ms, max_iter = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])

redis.call('LTRIM', k('wake'), 0, 63)
due_work()

local function park(rot, lane, key)
  redis.call('ZREM', k('rr', rot), lane)
  redis.call('SADD', key, lane)
end

local function pick(owner, mode)
  local acc = redis.call('ZRANGE', k('free', owner, mode), 0, 0)[1]
  if acc then return acc end
  return redis.call('ZRANGE', k('freeb', owner, mode), 0, 0)[1]
end

-- A BYOA lane whose tenant has no free account: fail its head over to PPU when the plan
-- allows and no account can serve (or the head waited past max wait); else park it.
local function byoa_blocked(rot, lane, tenant, mode)
  local q = k('q', lane)
  local id = redis.call('LINDEX', q, 0)
  if not id then
    redis.call('ZREM', k('rr', rot), lane)
    return 'empty'
  end
  local t = load_task(id)
  if t.status ~= 'queued' then
    redis.call('LPOP', q)
    return 'skipped'
  end
  local tn = redis.call('HMGET', k('tn', tenant), 'failover', 'max_wait_ms')
  if tn[1] == '1' then
    local max_wait = tonumber(tn[2] or '0') or 0
    local enq = tonumber(t.enq_ms or '0') or 0
    local none_usable = redis.call('SCARD', k('use', tenant, mode)) == 0
    if none_usable or (max_wait > 0 and NOW - enq >= max_wait) then
      redis.call('LPOP', q)
      count_queued(tenant, -1)
      fail_over(t)
      return 'moved'
    end
    if max_wait > 0 then redis.call('ZADD', k('timers'), enq + max_wait, lane) end
  end
  park(rot, lane, k('park', 't', tenant))
  return 'blocked'
end

-- Returns 'claimed', id, token, account, attempt, secret  |  'blocked' | 'empty' |
-- 'skipped' | 'moved' | 'nopool'.
local function try_lane(rot, lane)
  local tenant, pool, mode, pin = split_lane(lane)
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
    if a[1] == false or a[1] == 'disabled' or a[1] == 'removed' then
      -- The account is gone. A task pinned only to resume its upstream job there starts
      -- afresh elsewhere (the job is lost with the account); a client's pin waits.
      local head = redis.call('LINDEX', k('q', lane), 0)
      if head then
        local t = load_task(head)
        if t.status ~= 'queued' then
          redis.call('LPOP', k('q', lane))
          return 'skipped'
        end
        local user_pin = redis.call('HGET', k('t', head), 'user_pin') or ''
        if user_pin == '' then
          redis.call('LPOP', k('q', lane))
          count_queued(tenant, -1)
          redis.call('HSET', k('t', head), 'pin', '')
          redis.call('HDEL', k('t', head), 'upstream')
          t.pin = ''
          enqueue(t, true)
          return 'moved'
        end
      end
    end
    local free = (tonumber(a[2] or '0') or 0) - redis.call('SCARD', k('ainf', pin, mode))
    if a[1] ~= 'active' or free <= 0 then
      park(rot, lane, k('park', 'a', pin))
      return 'blocked'
    end
    acc = pin
  else
    local owner = tenant
    if pool == 'ppu' then owner = 'pool' end
    acc = pick(owner, mode)
    if not acc then
      if pool == 'ppu' then return 'nopool' end
      return byoa_blocked(rot, lane, tenant, mode)
    end
  end
  local id = redis.call('LPOP', k('q', lane))
  if not id then
    redis.call('ZREM', k('rr', rot), lane)
    return 'empty'
  end
  local t = redis.call('HMGET', k('t', id), 'status', 'attempts', 'started_ms', 'upstream', 'avoid')
  if t[1] ~= 'queued' then
    -- Cancelled (or expired) while queued: dropped here, lazily, in O(1).
    return 'skipped'
  end
  if pin == '' and t[5] and t[5] == acc then
    -- A retry after a transient failure goes to another account when one is free.
    local owner = tenant
    if pool == 'ppu' then owner = 'pool' end
    local alt = redis.call('ZRANGE', k('free', owner, mode), 0, 1)
    local other = alt[1] ~= acc and alt[1] or alt[2]
    if not other then
      alt = redis.call('ZRANGE', k('freeb', owner, mode), 0, 1)
      other = alt[1] ~= acc and alt[1] or alt[2]
    end
    if other then acc = other end
  end
  count_queued(tenant, -1)
  local seq = redis.call('INCR', k('seq'))
  local token = tostring(seq)
  local attempt = (tonumber(t[2]) or 0) + 1
  local deadline = NOW + lease_ms
  redis.call('HSET', k('t', id), 'status', 'processing', 'account', acc, 'token', token,
    'deadline', deadline, 'attempts', attempt, 'started_ms', t[3] or NOW)
  redis.call('SADD', k('ainf', acc, mode), id)
  if pool == 'ppu' then
    redis.call('SADD', k('tinf', tenant), id)
  else
    redis.call('SADD', k('binf', tenant), id)
  end
  redis.call('ZADD', k('leases'), deadline, id)
  redis.call('HSET', k('a', acc), 'lru', seq % 4294967296)
  local _, a = acc_refresh(acc, mode)
  -- To the back of the round, or out of it when emptied.
  if redis.call('LLEN', k('q', lane)) == 0 then
    redis.call('ZREM', k('rr', rot), lane)
  else
    redis.call('ZADD', k('rr', rot), 'XX', seq, lane)
  end
  return 'claimed', id, token, acc, attempt, a[7] or '', t[4] or ''
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
    local res, id, token, acc, attempt, secret, upstream = try_lane(rot, lane)
    if res == 'claimed' then
      idle = 0
      claimed = claimed + 1
      local tenant, pool, mode = split_lane(lane)
      local body = redis.call('GET', k('tb', id)) or ''
      for _, v in ipairs({id, token, acc, attempt, pool, mode, body, upstream, secret, tenant}) do
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
