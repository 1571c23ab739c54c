-- Tasks: reading them, queueing, taking them off their slots, finishing, failing over.
--- @include "keys"
--- @include "time"
--- @include "config"
--- @include "lanes"
--- @include "batch"
--- @include "quota"
--- @include "accounts"
--- @include "events"
--- @include "usage"

local TASK_FIELDS = {'tenant', 'pool', 'mode', 'pin', 'account', 'status', 'token', 'attempts',
  'hold', 'hold_state', 'retention_s', 'ppu_price', 'kind', 'enq_ms', 'failover', 'upstream', 'wh_endpoint'}

-- Read the fields scripts need, once (`fields`: a shorter list for a hot path).
local function load_task(id, fields)
  fields = fields or TASK_FIELDS
  local key = k('t', id)
  local v = redis.call('HMGET', key, unpack(fields))
  local t = {id = id, key = key}
  for i, f in ipairs(fields) do t[f] = v[i] end
  return t
end

-- A task whose job already runs upstream (it has a reference) can only be resumed on the
-- account that holds that job: pin it there before it goes back to a queue.
local function keep_on_account(t)
  if t.upstream and t.upstream ~= '' and t.account and t.account ~= '' then
    t.pin = t.account
    redis.call('HSET', tkey(t), 'pin', t.account)
  end
end

-- Queue a task at the back (or front) of its lane and put the lane in rotation.
-- `stored`: the caller already wrote status and enq_ms.
local function enqueue(t, front, stored)
  local lane = lane_id(t.tenant, t.pool, t.mode, t.pin)
  local gathered = false
  if front then
    redis.call('LPUSH', k('q', lane), t.id)
  elseif BATCH and BATCH.push then
    -- A submit batch: each lane's tasks are pushed together by flush_batch(), which also
    -- puts the lane in rotation (nothing in a submit takes it out).
    local ids = BATCH.push[lane]
    if not ids then
      BATCH.push[lane] = {t.id}
      local n = #BATCH.push_order + 1
      BATCH.push_order[n] = lane
      BATCH.push_rot[n] = rot_of(t.pool, t.mode, t.pin)
    else
      ids[#ids + 1] = t.id
    end
    gathered = true
  else
    redis.call('RPUSH', k('q', lane), t.id)
  end
  if not stored then
    redis.call('HSET', tkey(t), 'status', 'queued', 'enq_ms', NOW_S)
  end
  count_queued(t.tenant, 1)
  if not gathered then activate(lane) end
  wake()
end

-- Add `id` to the group (a, b) of `list`, made on first use: {a, b, ids = {...}}.
local function group_add(list, by, a, b, id)
  local key = a .. '|' .. b
  local g = by[key]
  if not g then
    g = {a, b, ids = {}}
    by[key] = g
    list[#list + 1] = g
  end
  g.ids[#g.ids + 1] = id
end

-- Take processing tasks off their slots (lease, account, tenant), waking what waited
-- for them: one removal per set and one refresh per account touched, whatever the
-- number of tasks. Returns the account of the first task.
local function release_many(ts)
  local ids, accs, accs_by, tns, tns_by = {}, {}, {}, {}, {}
  for _, t in ipairs(ts) do
    ids[#ids + 1] = t.id
    if t.account and t.account ~= '' then group_add(accs, accs_by, t.account, t.mode, t.id) end
    group_add(tns, tns_by, t.tenant, t.pool, t.id)
  end
  if #ids == 0 then return nil end
  local woke = 0
  redis.call('ZREM', k('leases'), unpack(ids))
  redis.call('HDEL', k('running'), unpack(ids))
  for _, g in ipairs(accs) do
    local acc, mode = g[1], g[2]
    local gone = redis.call('SREM', k('ainf', acc, mode), unpack(g.ids))
    local free, a = acc_refresh(acc, mode)
    if a and a.state == 'removed' and redis.call('SCARD', k('ainf', acc, 'relax')) + redis.call('SCARD', k('ainf', acc, 'fast')) + redis.call('SCARD', k('ainf', acc, 'turbo')) == 0 then
      redis.call('DEL', k('a', acc))
    end
    -- Capacity came back from none: lanes parked for want of it may run now. (A lane
    -- parks on an account, or on its tenant's accounts, only when they have no free
    -- capacity or are not active; becoming active unparks them in set_state.)
    if free >= 1 and free - gone <= 0 then
      woke = woke + 1 + unpark(k('park', 'a', acc))
      if a and a.owner ~= 'pool' then woke = woke + unpark(k('park', 't', a.owner)) end
    end
  end
  for _, g in ipairs(tns) do
    local tenant, pool = g[1], g[2]
    if pool == 'ppu' then
      redis.call('SREM', k('tinf', tenant), unpack(g.ids))
      woke = woke + unpark(k('park', 'cap', tenant))
    else
      redis.call('SREM', k('binf', tenant), unpack(g.ids))
    end
  end
  if woke > 0 then wake() end
  return ts[1].account
end

local function release(t)
  return release_many({t})
end

-- A waiting task leaves its wait: a queued one is no longer counted (claim drops its
-- queue entry lazily), a delayed one leaves the retry set. Returns false for a task not
-- waiting.
local function unqueue(t)
  if t.status == 'queued' then
    count_queued(t.tenant, -1)
  elseif t.status == 'delayed' then
    redis.call('ZREM', k('delayed'), t.id)
  else
    return false
  end
  return true
end

-- Whether the task has a webhook (names_webhook): `t.wh` from its running terms, else its
-- `wh_endpoint` as load_task read it. A task without one that fails still writes
-- `failed` (the dashboard lists failures); one that completes is counted in its complete
-- call's `completed_n` (see complete.lua).
local function has_webhook(t)
  if t.wh ~= nil then return t.wh end
  return names_webhook(t.wh_endpoint)
end

-- Finish a task: status, settlement, retention TTL, event (with a webhook). `L`: a ledger() for the
-- balance changes (the caller flushes it; nil: written at once). Then more fields to
-- set, as name, value pairs.
local function finish(t, status, code, message, raw, L, ...)
  local hold_state, consume = settle(t, status == 'completed' and 'capture' or 'refund', L)
  count_usage(t, status, consume)
  local f = {'HSET', tkey(t), 'status', status, 'ended_ms', NOW_S, 'hold_state', hold_state, 'consume', consume, ...}
  code, message, raw = code or '', message or '', raw or ''
  -- A first run that succeeds has no error fields to write or to clear (an earlier
  -- failed run may have left error_raw).
  if code ~= '' or message ~= '' or raw ~= '' or (tonumber(t.attempts) or 2) > 1 then
    local n = 10 + select('#', ...)
    f[n + 1], f[n + 2], f[n + 3], f[n + 4], f[n + 5], f[n + 6] =
      'error_code', code, 'error_message', message, 'error_raw', raw
  end
  redis.call(unpack(f))
  local ttl = t.retention_s
  if not tonumber(ttl or '') then ttl = CONFIG.retention_fallback_s end
  redis.call('EXPIRE', tkey(t), ttl)
  redis.call('EXPIRE', k('tb', t.id), ttl)
  if status == 'failed' or has_webhook(t) then
    emit(status, 'task', t.id, 'tenant', t.tenant, 'code', code, 'account', t.account or '')
  end
end

-- A queued BYOA task moves to the PPU pool: hold its PPU price, requeue it there.
-- Returns true when moved; false when the quota is short (the task then fails).
local function fail_over(t)
  local price = tonumber(t.ppu_price or '0') or 0
  local ok = hold(t.tenant, t.kind, price)
  if not ok then
    finish(t, 'failed', 'insufficient_quota', 'failover to the PPU pool needs ' .. price .. ' ' .. (t.kind or '') .. ' and the balance is short; top up or re-enable an account', '')
    return false
  end
  local state = 'none'
  if price > 0 then state = 'held' end
  t.pool, t.pin, t.hold, t.hold_state = 'ppu', '', price, state
  redis.call('HSET', tkey(t), 'pool', 'ppu', 'pin', '', 'failover', 1, 'hold', price, 'hold_state', state)
  emit('failover', 'task', t.id, 'tenant', t.tenant)
  enqueue(t, true)
  return true
end
