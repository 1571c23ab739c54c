-- Shared helpers, prepended to every scheduler script.
--
-- KEYS[1] is the shard base `<prefix>:{<provider>:<shard>}`. Every key a script touches is
-- built from it by k(), so every key carries the shard's hash tag and lives in one slot
-- (Redis Cluster runs every script unchanged). The Rust mirror of these names is
-- src/keys.rs; docs/redis-layout.md lists them all.
--
-- Lanes: a lane is one FIFO of queued tasks, `tenant|pool|mode|pin` (pool: ppu or byoa,
-- mode: relax/fast/turbo, pin: an account id or empty). Unpinned lanes rotate in
-- rr:<pool>:<mode>, pinned lanes in rr:pin. A lane that cannot be served (tenant at its
-- cap, accounts busy) leaves its rotation and is parked on the resource it waits for;
-- the script that frees the resource puts it back. Nothing ever scans all lanes.

local B = KEYS[1]
-- Key names are built on every call of every script by plain concatenation (a new Lua
-- string each time: build a key once per use site, keep it). The shard's own keys, one
-- part after the base, are built once per call.
local K1 = {}
local function k(a, b, c, d)
  if d ~= nil then return B .. ':' .. a .. ':' .. b .. ':' .. c .. ':' .. d end
  if c ~= nil then return B .. ':' .. a .. ':' .. b .. ':' .. c end
  if b ~= nil then return B .. ':' .. a .. ':' .. b end
  local key = K1[a]
  if not key then
    key = B .. ':' .. a
    K1[a] = key
  end
  return key
end

-- A task's hash key, built once per task table.
local function tkey(t)
  local key = t.key
  if not key then
    key = k('t', t.id)
    t.key = key
  end
  return key
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local NOW = now_ms()
-- Numbers given to redis.call are formatted with '%.17g' (costly); integers go as strings.
local function int(x)
  return string.format('%d', x)
end
local NOW_S = int(NOW)

local CFG = nil
local function cfg(name, default)
  if CFG == nil then
    CFG = {}
    local raw = redis.call('HGETALL', k('cfg'))
    for i = 1, #raw, 2 do CFG[raw[i]] = raw[i + 1] end
  end
  local v = CFG[name]
  if v == nil then return default end
  return tonumber(v) or v
end

local MODES = {'relax', 'fast', 'turbo'}

local function lane_id(tenant, pool, mode, pin)
  return tenant .. '|' .. pool .. '|' .. mode .. '|' .. (pin or '')
end

local function split_lane(l)
  return string.match(l, '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
end

local function rot_of(pool, mode, pin)
  if pin ~= nil and pin ~= '' then return 'pin' end
  return pool .. ':' .. mode
end

-- A tenant's balance as hold() reads it (`avail`; `credits` once a conversion needs them)
-- with the changes to write (`d_avail`, `d_held`, `d_credits`: converted credits are the
-- credits spent).
local function bal_write(tenant, b)
  local key = k('bal', tenant)
  if b.d_credits ~= 0 then
    redis.call('HINCRBY', key, 'credits', int(b.d_credits))
    redis.call('HINCRBY', key, 'converted_credits', int(-b.d_credits))
  end
  if b.d_avail ~= 0 then redis.call('HINCRBY', key, 'avail', int(b.d_avail)) end
  if b.d_held ~= 0 then redis.call('HINCRBY', key, 'held', int(b.d_held)) end
end

-- Batch mode (submit, claim): queued counts and wake-ups are added up and written once
-- by flush_batch(). In a submit batch (`submit`), where nothing takes a lane out of its
-- rotation and quota is only held, queue pushes are also gathered per lane (one RPUSH
-- each; the batch's lanes join their rotations with one ZADD per rotation), and each
-- tenant's balance is read once and written once.
local BATCH = nil

-- Put a lane (back) into its rotation, at the back of the round. Idempotent.
local function activate(lane)
  local _, pool, mode, pin = split_lane(lane)
  local seq = redis.call('INCR', k('seq'))
  redis.call('ZADD', k('rr', rot_of(pool, mode, pin)), 'NX', seq, lane)
end

-- Queued tasks: per tenant (`me`, staged/pending) and per shard (queue depth for
-- autoscaling).
local function count_queued(tenant, delta)
  if BATCH then
    if not BATCH.queued[tenant] then
      BATCH.queued[tenant] = 0
      BATCH.tenants[#BATCH.tenants + 1] = tenant
    end
    BATCH.queued[tenant] = BATCH.queued[tenant] + delta
    BATCH.depth = BATCH.depth + delta
    return
  end
  redis.call('HINCRBY', k('tn', tenant), 'queued', delta)
  redis.call('INCRBY', k('depth'), delta)
end

-- One wake-up token per new task (up to 64): each wakes one blocked claimer.
local function wake()
  if BATCH then
    BATCH.wake = BATCH.wake + 1
    return
  end
  redis.call('LPUSH', k('wake'), '1')
end

local function begin_batch(submit)
  BATCH = {queued = {}, tenants = {}, depth = 0, wake = 0}
  if submit then
    BATCH.push, BATCH.push_order, BATCH.push_rot = {}, {}, {}
    BATCH.bal, BATCH.bal_order = {}, {}
  end
end

local function flush_batch()
  local b = BATCH
  BATCH = nil
  if b.push then
    local lanes, tenants = b.push_order, b.bal_order
    for i = 1, #lanes do redis.call('RPUSH', k('q', lanes[i]), unpack(b.push[lanes[i]])) end
    -- The batch's lanes join their rotations in the order they first appeared (as
    -- activate() would put them), one ZADD per rotation.
    if #lanes > 0 then
      local seq = tonumber(redis.call('INCRBY', k('seq'), int(#lanes))) - #lanes
      local rots, order = {}, {}
      for i = 1, #lanes do
        local rot = b.push_rot[i]
        local z = rots[rot]
        if not z then
          z = {}
          rots[rot] = z
          order[#order + 1] = rot
        end
        z[#z + 1] = int(seq + i)
        z[#z + 1] = lanes[i]
      end
      for i = 1, #order do redis.call('ZADD', k('rr', order[i]), 'NX', unpack(rots[order[i]])) end
    end
    for i = 1, #tenants do bal_write(tenants[i], b.bal[tenants[i]]) end
  end
  local tenants = b.tenants
  for i = 1, #tenants do
    local n = b.queued[tenants[i]]
    if n ~= 0 then redis.call('HINCRBY', k('tn', tenants[i]), 'queued', int(n)) end
  end
  if b.depth ~= 0 then redis.call('INCRBY', k('depth'), int(b.depth)) end
  if b.wake > 0 then
    local tokens = {}
    for i = 1, math.min(b.wake, 64) do tokens[i] = '1' end
    redis.call('LPUSH', k('wake'), unpack(tokens))
  end
end

local function unpark(key, limit)
  local lanes = redis.call('SPOP', key, limit)
  for _, l in ipairs(lanes) do activate(l) end
  return #lanes
end

-- An event: its entry id is its time (readers take `at` from it). The fields come as
-- name, value pairs; empty values are left out (readers take a missing field as empty).
local EV_MAX = nil
local function emit(kind, ...)
  if not EV_MAX then EV_MAX = tostring(cfg('events_max_len', 100000)) end
  local args = {'XADD', k('ev'), 'MAXLEN', '~', EV_MAX, '*', 'type', kind, ...}
  local n = 8
  for i = 9, 8 + select('#', ...), 2 do
    local v = args[i + 1]
    if v ~= nil and v ~= '' then
      if n ~= i - 1 then args[n + 1], args[n + 2] = args[i], v end
      n = n + 2
    end
  end
  redis.call(unpack(args, 1, n))
end

-- Accounts ------------------------------------------------------------------------------

-- An account whose fast hours ran out (Midjourney's "Credits exhausted") keeps its relax
-- capacity and takes no fast or turbo work until `nofast_until` (ms) passes; a timer
-- (`nofast|<account>` in `cool`) gives them back then.
local function mode_cap(cap, mode, nofast_until)
  if mode ~= 'relax' and nofast_until and NOW < (tonumber(nofast_until) or 0) then return 0 end
  return tonumber(cap or '0') or 0
end

-- End an account's fast-hours pause (its timer, or an operator enabling it). Returns
-- whether there was one; the caller syncs the account.
local function end_nofast(acc)
  redis.call('ZREM', k('cool'), 'nofast|' .. acc)
  return redis.call('HDEL', k('a', acc), 'nofast_until') == 1
end

-- An account's place in its free set (free:<owner>:<mode> or freeb:…): there while
-- active with free capacity, scored lowest first = most free capacity × weight, then
-- least recently used.
local function place_account(zkey, acc, active, free, weight, lru)
  if active and free > 0 then
    redis.call('ZADD', zkey, int(-(free * weight) * 4294967296 + lru), acc)
  else
    redis.call('ZREM', zkey, acc)
  end
end

-- Score in free:<owner>:<mode>: lowest first = most free capacity × weight, then least
-- recently used. Returns the free capacity and the fields read
-- (owner, state, cap, weight, backup, lru).
local function acc_refresh(acc, mode, fix_backup)
  local a = redis.call('HMGET', k('a', acc), 'owner', 'state', 'cap_' .. mode, 'weight', 'backup', 'lru', 'nofast_until')
  local owner = a[1]
  if not owner then return 0, a end
  local cap = mode_cap(a[3], mode, a[7])
  local weight = tonumber(a[4] or '1') or 1
  local lru = tonumber(a[6] or '0') or 0
  local free = cap - redis.call('SCARD', k('ainf', acc, mode))
  local zkey = k('free', owner, mode)
  if a[5] == '1' then zkey = k('freeb', owner, mode) end
  if fix_backup then
    local other = k('freeb', owner, mode)
    if a[5] == '1' then other = k('free', owner, mode) end
    redis.call('ZREM', other, acc)
  end
  place_account(zkey, acc, a[2] == 'active', free, weight, lru)
  return free, a
end

-- Membership of live:<owner>:<mode> (not disabled, serves the mode) and
-- use:<owner>:<mode> (active now, serves the mode), then the free sets.
local function acc_sync(acc)
  local a = redis.call('HMGET', k('a', acc), 'owner', 'state', 'cap_relax', 'cap_fast', 'cap_turbo', 'nofast_until')
  local owner, state = a[1], a[2]
  if not owner then return end
  for i, mode in ipairs(MODES) do
    -- Live counts what the account is set to serve (it may be resting); use, what it can
    -- serve now.
    local live = (tonumber(a[2 + i] or '0') or 0) > 0 and (state == 'active' or state == 'cooling_down')
    local cap = mode_cap(a[2 + i], mode, a[6])
    local use = cap > 0 and state == 'active'
    if live then redis.call('SADD', k('live', owner, mode), acc) else redis.call('SREM', k('live', owner, mode), acc) end
    if use then redis.call('SADD', k('use', owner, mode), acc) else redis.call('SREM', k('use', owner, mode), acc) end
    acc_refresh(acc, mode, true)
  end
end

-- Wake every lane that may have been waiting for this account.
local function acc_unpark(acc)
  local owner = redis.call('HGET', k('a', acc), 'owner')
  unpark(k('park', 'a', acc), '64')
  if owner and owner ~= 'pool' then unpark(k('park', 't', owner), '64') end
  wake()
end

-- Time-driven work (cool-downs `cool`, failover max-wait `timers`, delayed retries
-- `delayed`) is a sorted set each; `due` holds the earliest time any of them falls due,
-- so that claims and reaps look at them only when something is due.
local NOTHING_DUE = 9007199254740991
local function schedule(zset, at, member)
  redis.call('ZADD', k(zset), at, member)
  local due = tonumber(redis.call('GET', k('due')) or '')
  if due == nil or at < due then redis.call('SET', k('due'), at) end
end

local function set_state(acc, state, until_ms, reason)
  local prev = redis.call('HMGET', k('a', acc), 'state', 'owner', 'name')
  if not prev[2] then return false end
  if state == 'removed' then
    -- Keep the hash while tasks run on it (they finish); nothing new is sent.
    redis.call('HSET', k('a', acc), 'state', 'removed')
    redis.call('SREM', k('accs', prev[2]), acc)
  else
    redis.call('HSET', k('a', acc), 'state', state, 'until', until_ms or 0, 'reason', reason or '')
  end
  if state == 'cooling_down' then
    schedule('cool', until_ms, acc)
  else
    redis.call('ZREM', k('cool'), acc)
  end
  acc_sync(acc)
  -- Any change may unblock a lane: active gives capacity; unusable may trigger failover.
  acc_unpark(acc)
  if prev[1] ~= state then
    emit('account', 'account', acc, 'owner', prev[2], 'state', state, 'until', until_ms or 0, 'reason', reason or '')
  end
  return true
end

-- Accounts whose cool-down has ended become active again (bounded per call).
local function expire_cooldowns(limit)
  local due = redis.call('ZRANGEBYSCORE', k('cool'), '-inf', NOW, 'LIMIT', 0, limit)
  for _, acc in ipairs(due) do
    local fast_back = string.match(acc, '^nofast|(.*)$')
    if fast_back then
      if end_nofast(fast_back) then
        acc_sync(fast_back)
        acc_unpark(fast_back)
      end
    elseif redis.call('HGET', k('a', acc), 'state') == 'cooling_down' then
      set_state(acc, 'active', 0, '')
    else
      redis.call('ZREM', k('cool'), acc)
    end
  end
end

-- Quota ---------------------------------------------------------------------------------

-- Hold `amount` of the tenant's quota; Midjourney converts credits first per the seed's
-- rule. Returns true, or false and the available amount. In a submit batch the balance is
-- read once per tenant and its changes written by flush_batch().
local function hold(tenant, kind, amount)
  local cache = BATCH and BATCH.bal
  local b = cache and cache[tenant]
  if not b then
    b = {avail = tonumber(redis.call('HGET', k('bal', tenant), 'avail') or '0') or 0, d_avail = 0, d_held = 0,
      d_credits = 0}
    if cache then
      cache[tenant] = b
      BATCH.bal_order[#BATCH.bal_order + 1] = tenant
    end
  end
  if kind == 'mj_quota' then
    local below = cfg('conv_below', 100)
    if b.avail < below then
      -- Credits matter only here: read when first needed.
      if not b.credits then b.credits = tonumber(redis.call('HGET', k('bal', tenant), 'credits') or '0') or 0 end
      local steps = tostring(cfg('conv_steps', '2100,700'))
      for step in string.gmatch(steps, '%d+') do
        local c = tonumber(step)
        if c <= b.credits then
          local q = math.floor(c * cfg('conv_num', 200) / cfg('conv_den', 700))
          b.credits, b.d_credits = b.credits - c, b.d_credits - c
          b.avail, b.d_avail = b.avail + q, b.d_avail + q
          emit('ledger', 'tenant', tenant, 'entry', 'convert', 'credits', c, 'quota', q, 'kind', kind)
          break
        end
      end
    end
  end
  local ok = true
  if amount > 0 then
    if b.avail < amount then
      ok = false
    else
      b.avail, b.d_avail, b.d_held = b.avail - amount, b.d_avail - amount, b.d_held + amount
    end
  end
  if not cache then bal_write(tenant, b) end
  return ok, b.avail
end

-- Tasks ---------------------------------------------------------------------------------

local TASK_FIELDS = {'tenant', 'pool', 'mode', 'pin', 'account', 'status', 'token', 'attempts',
  'hold', 'hold_state', 'retention_s', 'ppu_price', 'kind', 'enq_ms', 'failover', 'upstream'}

-- A task whose job already runs upstream (it has a reference) can only be resumed on the
-- account that holds that job: pin it there before it goes back to a queue.
local function keep_on_account(t)
  if t.upstream and t.upstream ~= '' and t.account and t.account ~= '' then
    t.pin = t.account
    redis.call('HSET', tkey(t), 'pin', t.account)
  end
end

-- What complete and heartbeat need of a running task, written by claim to the shard's
-- `running` hash (task id -> terms) and removed with its lease: one lookup per task in a
-- hash of the running tasks instead of many fields of the task hash. The account goes
-- last (the one part that is not a generated id).
local function running_terms(token, tenant, pool, mode, acc, hold, hold_state, retention_s, attempts)
  return token .. '|' .. (hold or '0') .. '|' .. (hold_state or 'none') .. '|' .. (retention_s or '') .. '|' ..
    attempts .. '|' .. pool .. '|' .. mode .. '|' .. tenant .. '|' .. acc
end

-- The task table of a running task from its terms.
local function running_task(id, terms)
  local token, hold, hold_state, retention_s, attempts, pool, mode, tenant, acc =
    string.match(terms, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$')
  return {id = id, token = token, hold = hold, hold_state = hold_state,
    retention_s = retention_s, attempts = attempts, pool = pool, mode = mode, tenant = tenant,
    account = acc}
end

-- Just the lease token of a running task's terms (heartbeat needs no more).
local function running_token(terms)
  return string.match(terms, '^[^|]*')
end

-- Read the fields scripts need, once (`fields`: a shorter list for a hot path).
local function load_task(id, fields)
  fields = fields or TASK_FIELDS
  local key = k('t', id)
  local v = redis.call('HMGET', key, unpack(fields))
  local t = {id = id, key = key}
  for i, f in ipairs(fields) do t[f] = v[i] end
  return t
end

-- Balance changes of a batch, added up per tenant and written once by flush_ledger.
local function ledger()
  return {order = {}, by = {}}
end

local function ledger_add(L, tenant, field, delta)
  local d = L.by[tenant]
  if not d then
    d = {}
    L.by[tenant] = d
    L.order[#L.order + 1] = tenant
  end
  d[field] = (d[field] or 0) + delta
end

local LEDGER_FIELDS = {'held', 'avail', 'captured', 'refunded'}
local function flush_ledger(L)
  for _, tenant in ipairs(L.order) do
    local d = L.by[tenant]
    for _, f in ipairs(LEDGER_FIELDS) do
      if d[f] and d[f] ~= 0 then redis.call('HINCRBY', k('bal', tenant), f, int(d[f])) end
    end
  end
end

-- Settle a task's hold once ('capture' or 'refund'); hold_state makes it idempotent
-- whatever is retried. Returns the task's hold state and consumed amount to write. `L`: a
-- ledger() to add the balance changes to (the caller flushes it); written at once without
-- one.
local function settle(t, how, L)
  if t.hold_state ~= 'held' then return t.hold_state or 'none', '0' end
  local amount = tonumber(t.hold or '0') or 0
  local own = L == nil
  L = L or ledger()
  ledger_add(L, t.tenant, 'held', -amount)
  local consume = '0'
  if how == 'capture' then
    ledger_add(L, t.tenant, 'captured', amount)
    t.hold_state = 'captured'
    consume = tonumber(t.hold) and t.hold or int(amount)
  else
    ledger_add(L, t.tenant, 'avail', amount)
    ledger_add(L, t.tenant, 'refunded', amount)
    t.hold_state = 'refunded'
  end
  if own then flush_ledger(L) end
  return t.hold_state, consume
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
    local owner = a[1]
    if a[2] == 'removed' and redis.call('SCARD', k('ainf', acc, 'relax')) + redis.call('SCARD', k('ainf', acc, 'fast')) + redis.call('SCARD', k('ainf', acc, 'turbo')) == 0 then
      redis.call('DEL', k('a', acc))
    end
    -- Capacity came back from none: lanes parked for want of it may run now. (A lane
    -- parks on an account, or on its tenant's accounts, only when they have no free
    -- capacity or are not active; becoming active unparks them in set_state.)
    if free >= 1 and free - gone <= 0 then
      woke = woke + 1 + unpark(k('park', 'a', acc), '64')
      if owner and owner ~= 'pool' then woke = woke + unpark(k('park', 't', owner), '64') end
    end
  end
  for _, g in ipairs(tns) do
    local tenant, pool = g[1], g[2]
    if pool == 'ppu' then
      redis.call('SREM', k('tinf', tenant), unpack(g.ids))
      woke = woke + unpark(k('park', 'cap', tenant), '64')
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

-- Finish a task: status, settlement, retention TTL, event. `L`: a ledger() for the
-- balance changes (the caller flushes it; nil: written at once). Then more fields to
-- set, as name, value pairs.
local function finish(t, status, code, message, raw, L, ...)
  local hold_state, consume = settle(t, status == 'completed' and 'capture' or 'refund', L)
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
  if not tonumber(ttl or '') then ttl = '172800' end
  redis.call('EXPIRE', tkey(t), ttl)
  redis.call('EXPIRE', k('tb', t.id), ttl)
  emit(status, 'task', t.id, 'tenant', t.tenant, 'code', code, 'account', t.account or '')
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

-- Time-driven work that is due, bounded per call: ended cool-downs, failover max-wait
-- timers, delayed retries; one GET when nothing is due. Claim and reap both run it, so
-- it happens whether or not workers are claiming.
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
  -- The next time anything falls due (now again if work was left over).
  local next_due = NOTHING_DUE
  for _, z in ipairs({'cool', 'timers', 'delayed'}) do
    local first = redis.call('ZRANGE', k(z), '0', '0', 'WITHSCORES')[2]
    if first and tonumber(first) < next_due then next_due = tonumber(first) end
  end
  redis.call('SET', k('due'), next_due)
end
