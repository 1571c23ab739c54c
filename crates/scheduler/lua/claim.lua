-- Claim up to n tasks in fair rotation. For each: the tenant's PPU cap, then an account
-- with free capacity in the task's mode (most free capacity × weight, then least
-- recently used; backups only when no primary can serve), a lease with a fencing token.
-- Also does the time-driven work that is due (bounded): ended cool-downs, max-wait
-- timers, delayed retries.
-- An account is taken only while it is not paced (its `next` time passed) and does not
-- rest (daily cap, active window); a claim on an account with pacing draws its next gap.
-- ARGV: n (at most 256: the caller splits larger claims), lease_ms, max_iterations, a
-- random seed (1 … 2^31 - 2) for the gaps, the provider's default gap lo and hi (ms),
-- the caller's claimer id when it will look again when the timers fall due (see the
-- end; empty: it will not).
-- Returns a flat array, 11 values per task:
--   id, token, account, attempt, pool, mode, body, upstream_ref, account_secret, tenant,
--   gap (ms the worker keeps after this submission before the account's next; 0: none);
-- then, when it claimed fewer than n and was asked to, one more value: ms until the shard's time-driven
-- work next falls due (a paced account's gate, a cool-down's end…), so that an idle
-- worker looks again then rather than at its next wake-up slice; -1 when nothing is due
-- or another claimer already watches for it.
--- @include "keys"
--- @include "time"
--- @include "lanes"
--- @include "batch"
--- @include "accounts"
--- @include "running"
--- @include "tasks"
--- @include "due"
local n, lease_ms, max_iter = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local SEED = tonumber(ARGV[4]) or 1
local DEFAULT_GAP = {tonumber(ARGV[5]) or 0, tonumber(ARGV[6]) or 0}
-- Park–Miller: exact in doubles; the seed comes from the caller (scripts get no entropy).
local function rand()
  SEED = (SEED * 16807) % 2147483647
  return SEED / 2147483647
end
local ROW = 11
-- Every lease of this call ends at the same time.
local DEADLINE = int(NOW + lease_ms)

redis.call('LTRIM', k('wake'), '0', int(WAKE_MAX - 1))
begin_batch()
due_work()

-- Rotation keys, built once per call.
local RR = {}
local function rr_key(rot)
  local key = RR[rot]
  if not key then
    key = k('rr', rot)
    RR[rot] = key
  end
  return key
end

local function park(rot, lane, key)
  redis.call('ZREM', rr_key(rot), lane)
  redis.call('SADD', key, lane)
end

-- GoAPI's fast → relax: the head of a fast or turbo lane of `owner`'s (a tenant, or the
-- pool) runs in relax when no account has fast hours for it and its tenant allows it
-- (`downgrade`, on unless turned off). A PPU task keeps the relax price (its
-- `relax_price`, written at intake) and the rest of its hold is refunded. The task shows
-- relax (`mode`, and `downgraded` keeps the mode asked for) and its log says why.
-- Returns 'moved', or nil: the lane goes on as before.
local function downgrade_head(lane, tenant, pool, mode, owner)
  if not no_fast_hours(owner, mode) or redis.call('HGET', k('tn', tenant), 'downgrade') == '0' then
    return nil
  end
  local q = k('q', lane)
  local id = redis.call('LINDEX', q, '0')
  if not id then return nil end
  local t = load_task(id)
  if t.status ~= 'queued' then return nil end
  redis.call('LPOP', q)
  count_queued(tenant, -1)
  if pool == 'ppu' then
    local relax = tonumber(redis.call('HGET', t.key, 'relax_price') or '')
    local held = tonumber(t.hold or '0') or 0
    if relax and relax < held then refund_part(t, held - relax) end
  end
  redis.call('HSET', t.key, 'mode', 'relax', 'downgraded', mode)
  redis.call('RPUSH', k('tlog', id), cjson.encode({kind = 'downgrade', at_ms = NOW,
    message = 'no ' .. (pool == 'ppu' and 'pool' or 'hosted') .. ' account has fast hours for ' .. mode ..
      ' work: runs in relax' .. (pool == 'ppu' and ', charged the relax price (the difference refunded)' or '')}))
  t.mode = 'relax'
  enqueue(t, true)
  return 'moved'
end

-- A BYOA lane whose tenant has no free account: fail its head over to PPU when the plan
-- allows and no account can serve (or the head waited past max wait); else park it.
local function byoa_blocked(rot, lane, tenant, mode)
  local q = k('q', lane)
  local id = redis.call('LINDEX', q, '0')
  if not id then
    redis.call('ZREM', rr_key(rot), lane)
    return 'empty'
  end
  local t = load_task(id)
  if t.status ~= 'queued' then
    redis.call('LPOP', q)
    return 'skipped'
  end
  -- No fast hours anywhere: relax first (GoAPI's order), before failing over.
  if mode ~= 'relax' and downgrade_head(lane, tenant, 'byoa', mode, tenant) then return 'moved' end
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
    if max_wait > 0 then schedule('timers', enq + max_wait, lane) end
  end
  park(rot, lane, k('park', 't', tenant))
  return 'blocked'
end

-- Each rotation is read a page at a time: its first n lanes, in round order. A lane
-- claimed from goes to the back of the round; those moves are written together, one ZADD
-- per rotation, when the page is used up (before reading the next) or at the end.
local PAGE, MOVED = {}, {}
local PAGE_SIZE = int(n - 1)

local function flush_moved(rot)
  local m = MOVED[rot]
  if m then
    redis.call('ZADD', rr_key(rot), 'XX', unpack(m))
    MOVED[rot] = nil
  end
end

-- A rotation's next page (its `at`: the next lane's index), the moves of the page used
-- up written first. Empty when the rotation is.
local function next_page(rot)
  flush_moved(rot)
  local p = redis.call('ZRANGE', rr_key(rot), '0', PAGE_SIZE)
  p.at = 1
  PAGE[rot] = p
  return p
end

-- What this call has read of tenants and accounts, kept up to date by its own claims:
-- a batch reads each tenant's cap and each account's settings once.
local TN, ACC = {}, {}
-- Accounts used by this call and their last use, written once at the end.
local LRU, LRU_ORDER = {}, {}
-- This call's claims per in-flight set, and their leases (deadline, id pairs).
-- (An account's claims in a mode are gathered in its entry in ACC, `ids`, which AINF
-- lists: no second lookup per claim.)
local AINF, TINF, TINF_BY, LEASES = {}, {}, {}, {}
-- This call's running terms (id, terms pairs) for `running`.
local RUNNING = {}
-- Whether the pool has a free account in a mode; read again after a claim may fill one.
-- Whether the pool's fast-mode work must run in relax (no_fast_hours), per mode.
local POOL_FREE, POOL_NOFAST = {}, {}
-- The reply: ROW values per claimed task.
local out = {}
-- Accounts paced by this call's claims: their next allowed time (across modes).
local PACE = {}
-- Accounts to sync at the end (paced, or a limited one that counted a submission).
local RESYNC, RESYNC_ORDER = {}, {}
local function resync_later(acc)
  if not RESYNC[acc] then
    RESYNC[acc] = true
    RESYNC_ORDER[#RESYNC_ORDER + 1] = acc
  end
end

-- The gap (ms) drawn for a submission on `a`: uniform in its pacing range (the
-- provider's default when it has none of its own); 0 without pacing.
local function draw_gap(a)
  local lo, hi = DEFAULT_GAP[1], DEFAULT_GAP[2]
  if a.gap and a.gap ~= '' then
    local l, h = string.match(a.gap, '^(%d+),(%d+)$')
    lo, hi = tonumber(l) or 0, tonumber(h) or 0
  end
  if hi <= 0 then return 0 end
  return lo + math.floor(rand() * (hi - lo + 1))
end

local function tenant_slots(tenant)
  local t = TN[tenant]
  if not t then
    t = {cap = tonumber(redis.call('HGET', k('tn', tenant), 'cap') or '-1') or -1, inf = 0}
    if t.cap >= 0 then t.inf = redis.call('SCARD', k('tinf', tenant)) end
    TN[tenant] = t
  end
  return t
end

local function account(acc, mode)
  local key = acc .. '|' .. mode
  local a = ACC[key]
  if not a then
    a = read_account(acc, mode, true)
    if a then
      a.cap, a.secret = mode_cap(a, mode), a.secret or ''
      a.inf = redis.call('SCARD', k('ainf', acc, mode))
    else
      a = {cap = 0, inf = 0}
    end
    ACC[key] = a
  end
  return a
end

-- Whether `acc`, picked from `owner`'s free sets, cannot take a task in `mode` now: gone,
-- paced (by a claim of this call or an earlier one) or resting. It leaves the free sets
-- then; the sync at the end of the call (or a timer) places it again when it can serve.
local function unclaimable(acc, mode, owner)
  local a = account(acc, mode)
  if a.owner and (PACE[acc] or a.next) <= NOW and a.cap - a.inf > 0
    and not (limits(a) and rest(a, mode)) then
    return false
  end
  redis.call('ZREM', k('free', owner, mode), acc)
  redis.call('ZREM', k('freeb', owner, mode), acc)
  if a.owner then resync_later(acc) end
  return true
end

-- The owner's best claimable account in `mode` (pick_account's rule, less the accounts
-- unclaimable() finds; each is taken off its free set, so this ends).
local function pick_claimable(owner, mode, avoid)
  local acc = pick_account(owner, mode, avoid)
  while acc and unclaimable(acc, mode, owner) do acc = pick_account(owner, mode, avoid) end
  return acc
end

-- The head of a pinned lane whose account cannot serve it (`why`: gone, or `nil` when
-- it only lacks capacity in the lane's mode). A follow-up pinned to the account that owns
-- its upstream object fails `account_error` (it must not run elsewhere); a task pinned
-- only to resume its upstream job there starts afresh elsewhere (the job is lost with the
-- account), unless the account merely lacks capacity; a client's pin waits. Returns
-- 'skipped' | 'moved', or nil: the lane waits.
local function unpin_head(lane, tenant, pin, why)
  local q = k('q', lane)
  local head = redis.call('LINDEX', q, '0')
  if not head then return nil end
  local t = load_task(head)
  if t.status ~= 'queued' then
    redis.call('LPOP', q)
    return 'skipped'
  end
  local pins = redis.call('HMGET', k('t', head), 'user_pin', 'owner_pin')
  local owner_pin = pins[2] or ''
  if owner_pin ~= '' then
    redis.call('LPOP', q)
    unqueue(t)
    finish(t, 'failed', 'account_error', 'the account ' .. pin .. ' that holds ' .. owner_pin .. ' ' ..
      (why or 'has no capacity in this mode') .. '; a follow-up runs only on that account. Re-enable it, or start anew', '')
    return 'skipped'
  end
  if why == nil or (pins[1] or '') ~= '' then return nil end
  redis.call('LPOP', q)
  count_queued(tenant, -1)
  redis.call('HSET', k('t', head), 'pin', '')
  redis.call('HDEL', k('t', head), 'upstream')
  t.pin = ''
  enqueue(t, true)
  return 'moved'
end

-- A pinned lane's account: the pin, when active with a free slot. Returns it, or nil and
-- try_lane's result (the lane parked on the account until it can serve).
local function pinned_account(rot, lane, tenant, mode, pin)
  local a = account(pin, mode)
  local why = nil
  if not a.owner or a.state == 'removed' then
    why = 'was removed'
  elseif a.state == 'disabled' then
    why = 'is disabled'
  end
  -- The capacity it is set to in the mode (a fast-hours pause only makes it wait).
  if why or (tonumber(a[CAP_FIELD[mode]] or '0') or 0) <= 0 then
    local res = unpin_head(lane, tenant, pin, why)
    if res then return nil, res end
  end
  if a.state ~= 'active' or a.cap - a.inf <= 0 then
    park(rot, lane, k('park', 'a', pin))
    return nil, 'blocked'
  end
  -- Paced or resting: it waits for the account (the sync at the end sets its timer).
  if (PACE[pin] or a.next) > NOW or (limits(a) and rest(a, mode)) then
    resync_later(pin)
    park(rot, lane, k('park', 'a', pin))
    return nil, 'blocked'
  end
  return pin
end

-- Record the claim of task `id` (taken off `lane`, its queue at `qkey`; `tk` its hash,
-- `t` the fields read, `started`, `upstream`) on account `acc` with token `seq`: the task
-- hash, the slots and lease, the account's place in its free set, the lane's place in its
-- round, and the claim's row in `out`.
local function record_claim(rot, lane, qkey, seq, id, tk, t, started, upstream, tenant, pool, mode, acc)
  count_queued(tenant, -1)
  -- Read before this claim joins the account's in-flight set.
  local a = account(acc, mode)
  local token = int(seq)
  local attempt = int((tonumber(t[2]) or 0) + 1)
  redis.call('HSET', tk, 'status', 'processing', 'attempts', attempt, 'token', token, 'account', acc,
    'started_ms', started)
  -- Slot and lease sets are written once per set at the end of the call; until then
  -- this call's counts above stand for them.
  local ids = a.ids
  if not ids then
    ids = {}
    a.ids = ids
    AINF[#AINF + 1] = {acc, mode, ids = ids}
  end
  ids[#ids + 1] = id
  if pool == 'ppu' then
    group_add(TINF, TINF_BY, 'tinf', tenant, id)
    local tn = TN[tenant]
    tn.inf = tn.inf + 1
  else
    group_add(TINF, TINF_BY, 'binf', tenant, id)
  end
  LEASES[#LEASES + 1] = DEADLINE
  LEASES[#LEASES + 1] = id
  RUNNING[#RUNNING + 1] = id
  RUNNING[#RUNNING + 1] = running_terms(token, tenant, pool, mode, acc, t[3], t[4], t[5], attempt,
    names_webhook(t[7]))
  -- The account's place in its free set, scored as acc_refresh scores it.
  a.inf = a.inf + 1
  a.lru = seq % 4294967296
  if not LRU[acc] then LRU_ORDER[#LRU_ORDER + 1] = acc end
  LRU[acc] = a.lru
  -- Pacing: no new task on the account before the gap drawn for this one has passed.
  local gap = draw_gap(a)
  if gap > 0 then
    PACE[acc] = NOW + gap
    resync_later(acc)
  end
  -- A daily cap counts the submission; at the cap the account rests.
  if limits(a) then
    count_day(a, mode)
    resync_later(acc)
    if rest(a, mode) then a.cap = 0 end
  end
  if not a.zkey then a.zkey = free_key(a, mode) end
  place_account(a.zkey, acc, a.state == 'active' and not PACE[acc], a.cap - a.inf, a.weight, a.lru)
  -- To the back of the round (written with the rotation's other moves, see next_page), or
  -- out of it when emptied.
  if redis.call('LLEN', qkey) == 0 then
    redis.call('ZREM', rr_key(rot), lane)
  else
    local m = MOVED[rot]
    if not m then
      m = {}
      MOVED[rot] = m
    end
    m[#m + 1] = token
    m[#m + 1] = lane
  end
  if a.owner == 'pool' and (a.cap - a.inf <= 0 or PACE[acc]) then POOL_FREE[mode] = nil end
  -- The row of this claim; its body is filled in at the end, with one MGET for the batch.
  local o = #out
  out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] = id, token, acc, attempt, pool
  out[o + 6], out[o + 7], out[o + 8], out[o + 9], out[o + 10] = mode, '', upstream or '', a.secret, tenant
  out[o + 11] = int(gap)
end

-- Claim the head task of `lane` with token `seq`: the tenant's PPU cap, an account (the
-- pin, or the owner's best free one), the task, the claim. Returns 'claimed' (the claim's
-- row added to `out`) | 'blocked' | 'empty' | 'skipped' | 'moved' | 'nopool'.
local function try_lane(rot, lane, seq)
  local tenant, pool, mode, pin = split_lane(lane)
  local tn, owner = nil, tenant
  if pool == 'ppu' then
    tn, owner = tenant_slots(tenant), 'pool'
    if tn.cap >= 0 and tn.inf >= tn.cap then
      park(rot, lane, k('park', 'cap', tenant))
      return 'blocked'
    end
  end
  local acc, res
  if pin ~= '' then
    acc, res = pinned_account(rot, lane, tenant, mode, pin)
    if not acc then return res end
  else
    acc = pick_claimable(owner, mode)
    if not acc then
      if pool == 'ppu' then return 'nopool' end
      return byoa_blocked(rot, lane, tenant, mode)
    end
  end
  -- The task: the lane's head (taken here, not by a call: this runs for every task).
  local qkey = k('q', lane)
  local id = redis.call('LPOP', qkey)
  if not id then
    redis.call('ZREM', rr_key(rot), lane)
    return 'empty'
  end
  local tk = k('t', id)
  -- The fields claim needs come first in the task hash (see submit.lua); what only a
  -- task claimed before has (start time, upstream reference, an account to avoid) is read
  -- only for those (a task submitted by an earlier version has no token field: nil).
  local t = redis.call('HMGET', tk, 'status', 'attempts', 'hold', 'hold_state', 'retention_s', 'token', 'wh_endpoint')
  if t[1] ~= 'queued' then
    -- Cancelled (or expired) while queued: dropped here, lazily, in O(1).
    return 'skipped'
  end
  local started, upstream, avoid = NOW_S, nil, nil
  if t[6] ~= '' then
    local r = redis.call('HMGET', tk, 'started_ms', 'upstream', 'avoid')
    if r[1] and r[1] ~= '' then started = r[1] end
    upstream, avoid = r[2], r[3]
  end
  -- A retry after a transient failure goes to another account when one is free.
  if pin == '' and avoid and avoid == acc then acc = pick_claimable(owner, mode, acc) or acc end
  record_claim(rot, lane, qkey, seq, id, tk, t, started, upstream, tenant, pool, mode, acc)
  return 'claimed'
end

local ROTS = {'ppu:relax', 'ppu:fast', 'ppu:turbo', 'byoa:relax', 'byoa:fast', 'byoa:turbo', 'pin'}
local POOL_MODE = {['ppu:relax'] = 'relax', ['ppu:fast'] = 'fast', ['ppu:turbo'] = 'turbo'}
-- Rotations found empty; only a lane moved by this call can fill one again.
local EMPTY = {}
local claimed, iter, idle = 0, 0, 0
local r = tonumber(redis.call('INCR', k('rotseq'))) % #ROTS
-- Tokens and round positions for this call's claims, reserved at once.
local seq = tonumber(redis.call('INCRBY', k('seq'), n)) - n
while claimed < n and iter < max_iter and idle < #ROTS do
  iter = iter + 1
  r = r % #ROTS + 1
  local rot = ROTS[r]
  local pool_mode = POOL_MODE[rot]
  -- A PPU rotation is looked at only while the pool has a free account in its mode.
  if pool_mode and POOL_FREE[pool_mode] == nil then
    POOL_FREE[pool_mode] = pick_account('pool', pool_mode) ~= nil
  end
  local lane = nil
  -- The pool has no free account in a fast mode because none has fast hours: the
  -- rotation's lanes run in relax (downgrade_head), a head at a time.
  local pool_downgrade = false
  if pool_mode and pool_mode ~= 'relax' and not POOL_FREE[pool_mode] and not EMPTY[rot] then
    -- (Read once per call and mode: claims do not change which accounts have fast hours.)
    local nf = POOL_NOFAST[pool_mode]
    if nf == nil then
      nf = no_fast_hours('pool', pool_mode)
      POOL_NOFAST[pool_mode] = nf
    end
    pool_downgrade = nf
  end
  if pool_downgrade then
    local p = PAGE[rot]
    if not p or p.at > #p then p = next_page(rot) end
    local l = p[p.at]
    p.at = p.at + 1
    if not l then
      EMPTY[rot] = true
    else
      local tenant = split_lane(l)
      if downgrade_head(l, tenant, 'ppu', pool_mode, 'pool') then
        EMPTY, PAGE = {}, {}
        idle = 0
      end
    end
  end
  if not pool_downgrade and not EMPTY[rot] and not (pool_mode and not POOL_FREE[pool_mode]) then
    -- The next lane of the rotation's round (read here, not by a call: this runs once per
    -- task), or nil when the rotation is empty.
    local p = PAGE[rot]
    if not p or p.at > #p then p = next_page(rot) end
    lane = p[p.at]
    p.at = p.at + 1
    if not lane then EMPTY[rot] = true end
  end
  if pool_downgrade then
    -- (counted as idle unless it moved a task: a rotation of lanes whose tenants keep
    -- fast mode ends the loop.)
    idle = idle + 1
  elseif not lane then
    idle = idle + 1
  else
    local res = try_lane(rot, lane, seq + 1)
    if res == 'claimed' then
      seq = seq + 1
      idle = 0
      claimed = claimed + 1
    elseif res == 'nopool' then
      idle = idle + 1
      POOL_FREE[pool_mode] = nil
    else
      if res == 'skipped' then
        -- The lane keeps its turn: its next task is looked at next.
        PAGE[rot].at = PAGE[rot].at - 1
      elseif res == 'moved' then
        -- Lanes were put in rotation: read every rotation afresh.
        EMPTY, PAGE = {}, {}
      end
      idle = 0
    end
  end
end
for _, rot in ipairs(ROTS) do flush_moved(rot) end
flush_batch()
for _, acc in ipairs(LRU_ORDER) do
  redis.call('HSET', k('a', acc), 'lru', int(LRU[acc]))
end
for _, g in ipairs(AINF) do redis.call('SADD', k('ainf', g[1], g[2]), unpack(g.ids)) end
-- Paced and limited accounts: their next allowed time, then their places and timers.
for acc, at in pairs(PACE) do redis.call('HSET', k('a', acc), 'next', int(at)) end
for _, acc in ipairs(RESYNC_ORDER) do acc_sync(acc) end
for _, g in ipairs(TINF) do redis.call('SADD', k(g[1], g[2]), unpack(g.ids)) end
if #LEASES > 0 then
  redis.call('ZADD', k('leases'), unpack(LEASES))
  redis.call('HSET', k('running'), unpack(RUNNING))
end
if claimed > 0 then
  local bodies = {}
  for i = 1, #out, ROW do bodies[#bodies + 1] = k('tb', out[i]) end
  bodies = redis.call('MGET', unpack(bodies))
  for i, body in ipairs(bodies) do out[(i - 1) * ROW + 7] = body or '' end
end
local WATCH_SLACK_MS = 60 -- not configured: how long a dead watcher holds the watch past its time
local watcher = ARGV[7] or ''
if claimed < n and watcher ~= '' then
  -- One idle claimer (of all the worker processes) is told when the shard's timers fall
  -- due, and watches for it (`duewatch`: that time and the claimer); the others wait for
  -- wake-ups, so a timer wakes one claimer, not every one.
  local due, wait = tonumber(redis.call('GET', k('due')) or ''), '-1'
  if due and due < NOTHING_DUE then
    local w = redis.call('GET', k('duewatch'))
    local at, by = nil, nil
    if w then at, by = string.match(w, '^(%d+)|(.*)$') end
    at = tonumber(at or '')
    if not at or at <= NOW or due < at or by == watcher then
      local ms = math.max(due - NOW, 0)
      redis.call('SET', k('duewatch'), int(due) .. '|' .. watcher, 'PX', int(ms + WATCH_SLACK_MS))
      wait = int(ms)
    end
  end
  out[#out + 1] = wait
end
return out
