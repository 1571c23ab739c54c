-- Accounts: their state, capacity per mode, and their places in the free, live and use
-- sets that claims choose from.
--- @include "keys"
--- @include "time"
--- @include "lanes"
--- @include "batch"
--- @include "events"

-- The fields of an account hash that scripts read, by read_account alone: always these,
-- then the capacity of one mode (or of every mode), then the secret when asked for.
-- `gap`: its pacing "lo,hi" in ms (absent: the provider's default); `next`: the time
-- before which it takes no new task (pacing); `dcap`, `win`: its daily cap and active
-- window (JSON, absent when none; see rest()).
local ACCOUNT_FIELDS = {'owner', 'state', 'weight', 'backup', 'lru', 'nofast_until', 'gap', 'next', 'dcap', 'win'}
local NFIELDS = #ACCOUNT_FIELDS
local CAP_FIELD = {relax = 'cap_relax', fast = 'cap_fast', turbo = 'cap_turbo'}
local ACCOUNT_READS, ACCOUNT_READS_SECRET = {}, {}

-- The account's hash as a table (`cap_<mode>` fields as stored), or nil when it does not
-- exist. `mode`: read only that mode's capacity (nil: every mode's); `secret`: also read
-- the credentials (sealed). The table has room for what claim adds (cap, inf, zkey, ids).
local function read_account(acc, mode, secret)
  local reads = secret and ACCOUNT_READS_SECRET or ACCOUNT_READS
  local fields = reads[mode or '*']
  if not fields then
    fields = {unpack(ACCOUNT_FIELDS)}
    if mode then
      fields[#fields + 1] = CAP_FIELD[mode]
    else
      fields[#fields + 1], fields[#fields + 2], fields[#fields + 3] = 'cap_relax', 'cap_fast', 'cap_turbo'
    end
    if secret then fields[#fields + 1] = 'secret' end
    reads[mode or '*'] = fields
  end
  local v = redis.call('HMGET', k('a', acc), unpack(fields))
  if not v[1] then return nil end
  local relax, fast, turbo, sealed
  if not mode then
    relax, fast, turbo, sealed = v[NFIELDS + 1], v[NFIELDS + 2], v[NFIELDS + 3], v[NFIELDS + 4]
  else
    sealed = v[NFIELDS + 2]
    if mode == 'relax' then relax = v[NFIELDS + 1] elseif mode == 'fast' then fast = v[NFIELDS + 1] else turbo = v[NFIELDS + 1] end
  end
  return {id = acc, owner = v[1], state = v[2], weight = tonumber(v[3] or '1') or 1, backup = v[4] == '1',
    lru = tonumber(v[5] or '0') or 0, nofast_until = v[6], gap = v[7], next = tonumber(v[8] or '0') or 0,
    dcap = v[9], win = v[10], lim = nil, cap_relax = relax, cap_fast = fast,
    cap_turbo = turbo, secret = sealed, cap = nil, inf = nil, zkey = nil, ids = nil}
end

-- The account's daily cap and active window, decoded once per read (false: none).
-- dcap: {all?, relax?, fast?, turbo?} submissions per day; win: {s, e} minutes of the
-- local day (from s up to e, across midnight when e < s) and `o`, the zone's UTC offsets
-- [minutes, from ms, minutes, from ms, minutes…] (written by the Rust side from `tz`).
local function limits(a)
  if a.lim == nil then
    local has_d, has_w = a.dcap and a.dcap ~= '', a.win and a.win ~= ''
    a.lim = (has_d or has_w) and {dcap = has_d and cjson.decode(a.dcap) or nil, win = has_w and cjson.decode(a.win) or nil} or false
  end
  return a.lim
end

local DAY_MS = 86400000
local MINUTE_MS = 60 * 1000 -- not configured: a minute

-- The account's local clock now: the zone's offset in ms and the local day's number.
local function local_day(l)
  local off = 0
  local o = l.win and l.win.o
  if o then
    off = o[1]
    for i = 2, #o - 1, 2 do
      if NOW >= o[i] then off = o[i + 1] else break end
    end
    off = off * MINUTE_MS
  end
  return off, math.floor((NOW + off) / DAY_MS)
end

-- Whether the account rests in `mode` now (outside its active window, or its daily cap
-- reached): the time it may take work again and why, or nil. The second time returned
-- is when its state next changes by the clock alone (its window closes), or nil.
local function rest(a, mode)
  local l = limits(a)
  if not l then return nil end
  local off, day = local_day(l)
  local lnow = NOW + off
  local until_ms, why, change = nil, nil, nil
  if l.win then
    local m = math.floor(lnow / MINUTE_MS) % 1440
    local s, e = l.win.s, l.win.e
    local inside
    if s < e then inside = m >= s and m < e else inside = m >= s or m < e end
    if inside then
      change = day * DAY_MS + e * MINUTE_MS
      if change <= lnow then change = change + DAY_MS end
      change = change - off
    else
      local start = day * DAY_MS + s * MINUTE_MS
      if start <= lnow then start = start + DAY_MS end
      until_ms, why = start - off, 'outside_active_window'
    end
  end
  if l.dcap then
    local c = redis.call('HMGET', k('a', a.id), 'day', 'dn', 'dn_' .. mode)
    if tonumber(c[1]) == day then
      local all, own = l.dcap.all, l.dcap[mode]
      if (all and (tonumber(c[2]) or 0) >= all) or (own and (tonumber(c[3]) or 0) >= own) then
        local tomorrow = (day + 1) * DAY_MS - off
        if not until_ms or tomorrow > until_ms then until_ms, why = tomorrow, 'daily_cap' end
      end
    end
  end
  return until_ms, why, change
end

-- Count a submission on a limited account in its day's counters (reset on a new day).
local function count_day(a, mode)
  local l = limits(a)
  if not l or not l.dcap then return end
  local _, day = local_day(l)
  local key = k('a', a.id)
  if tonumber(redis.call('HGET', key, 'day')) ~= day then
    redis.call('HSET', key, 'day', day, 'dn', 0, 'dn_relax', 0, 'dn_fast', 0, 'dn_turbo', 0)
  end
  redis.call('HINCRBY', key, 'dn', 1)
  redis.call('HINCRBY', key, 'dn_' .. mode, 1)
end

-- A timer that syncs the account again at `at` (the earliest one wins).
local function gate_timer(acc, at)
  redis.call('ZADD', k('cool'), 'LT', at, 'gate|' .. acc)
  local due = tonumber(redis.call('GET', k('due')) or '')
  if due == nil or at < due then redis.call('SET', k('due'), at) end
end

-- Whether pacing keeps the account from a new task now (its `next` time is ahead).
local function paced(a)
  return a.next > NOW
end

-- An account whose fast hours ran out (Midjourney's "Credits exhausted") keeps its relax
-- capacity and takes no fast or turbo work until `nofast_until` (ms) passes; a timer
-- (`nofast|<account>` in `cool`) gives them back then. A resting account (rest()) has
-- none. The capacity of `a` in `mode`.
local function mode_cap(a, mode)
  if mode ~= 'relax' and a.nofast_until and NOW < (tonumber(a.nofast_until) or 0) then return 0 end
  if a.lim ~= false and limits(a) and rest(a, mode) then return 0 end
  return tonumber(a[CAP_FIELD[mode]] or '0') or 0
end

-- End an account's fast-hours pause (its timer, or an operator enabling it). Returns
-- whether there was one; the caller syncs the account.
local function end_nofast(acc)
  redis.call('ZREM', k('cool'), 'nofast|' .. acc)
  local owner = redis.call('HGET', k('a', acc), 'owner')
  if owner then redis.call('SREM', k('nofast', owner), acc) end
  return redis.call('HDEL', k('a', acc), 'nofast_until') == 1
end

-- Whether `owner`'s work in `mode` (fast or turbo) cannot run for want of fast hours:
-- no account serves the mode now, one is paused for want of fast hours (`nofast:<owner>`)
-- and one serves relax. Such work runs in relax when its tenant allows (GoAPI's fast →
-- relax).
local function no_fast_hours(owner, mode)
  return mode ~= 'relax' and redis.call('SCARD', k('use', owner, mode)) == 0
    and redis.call('SCARD', k('nofast', owner)) > 0
    and redis.call('SCARD', k('use', owner, 'relax')) > 0
end

-- The free set an account is placed in: free:<owner>:<mode>, or freeb:… for a backup.
local function free_key(a, mode)
  return k(a.backup and 'freeb' or 'free', a.owner, mode)
end

-- An account's place in its free set: there while active with free capacity, scored
-- lowest first = most free capacity × weight, then least recently used.
local function place_account(zkey, acc, active, free, weight, lru)
  if active and free > 0 then
    redis.call('ZADD', zkey, int(-(free * weight) * 4294967296 + lru), acc)
  else
    redis.call('ZREM', zkey, acc)
  end
end

-- The account a claim takes of `owner`'s (a tenant, or 'pool') in `mode`: the first of its
-- free primaries (in place_account's order), or only when no primary is active and serves
-- the mode (busy ones make the task wait), the first of its free backups. With `avoid`, the first other than that one (a retry prefers
-- another account than the one it failed on: the first two are read, one is another).
-- nil when there is none. The one place this rule is written: claims, retries and the
-- check whether the pool can serve a mode all ask here.
local function pick_account(owner, mode, avoid)
  local last = avoid and '1' or '0'
  local r = redis.call('ZRANGE', k('free', owner, mode), '0', last)
  local acc = r[1]
  -- (Without `avoid`, equal only when the set is empty: then r[2] is nil too.)
  if acc == avoid then acc = r[2] end
  if acc then return acc end
  -- Backups only while no primary is active and serves the mode (see backups_check).
  if redis.call('SCARD', k('usep', owner, mode)) > 0 then return nil end
  r = redis.call('ZRANGE', k('freeb', owner, mode), '0', last)
  acc = r[1]
  if acc == avoid then acc = r[2] end
  return acc
end

-- Place the account in its free set for `mode` (and out of the other one, with
-- `fix_backup`). Returns its free capacity and the account read (nil: it does not exist).
local function acc_refresh(acc, mode, fix_backup, a)
  a = a or read_account(acc, mode)
  if not a then return 0, nil end
  local free = mode_cap(a, mode) - redis.call('SCARD', k('ainf', acc, mode))
  if fix_backup then
    redis.call('ZREM', k(a.backup and 'free' or 'freeb', a.owner, mode), acc)
  end
  -- Paced: out of the free set until its next allowed time (a timer puts it back).
  local wait = paced(a)
  if wait and free > 0 then gate_timer(acc, a.next) end
  place_account(free_key(a, mode), acc, a.state == 'active' and not wait, free, a.weight, a.lru)
  return free, a
end

-- Backups (GoAPI's rule): an owner's backup accounts take no work in a mode while one of
-- its primaries is active and serves it (fast hours included); when none does they are
-- promoted, all at once, and demoted when a primary can serve again. Each change is an
-- `account` event (`backups_promoted` / `backups_demoted`, with the mode), kept once by
-- the flag `promo:<owner>:<mode>`; `acc` is the account whose change caused it.
local function backups_check(owner, mode, acc)
  local promoted = redis.call('SCARD', k('usep', owner, mode)) == 0
    and redis.call('SCARD', k('use', owner, mode)) > 0
  local flag = k('promo', owner, mode)
  local was = redis.call('EXISTS', flag) == 1
  if promoted and not was then
    redis.call('SET', flag, NOW)
    emit('account', 'account', acc, 'owner', owner, 'state', 'backups_promoted', 'mode', mode,
      'reason', 'no primary account can take ' .. mode .. ' work')
  elseif was and not promoted then
    redis.call('DEL', flag)
    emit('account', 'account', acc, 'owner', owner, 'state', 'backups_demoted', 'mode', mode,
      'reason', 'a primary account can take ' .. mode .. ' work again')
  end
end

-- Membership of live:<owner>:<mode> (not disabled, serves the mode) and
-- use:<owner>:<mode> (active now, serves the mode), then the free sets. Returns the
-- account read (nil: it does not exist).
-- A limited account's rest (see rest()), kept in its hash for the listing: `rest_until`
-- and `rest_why` while every mode it serves rests; and a timer for the next time its
-- state changes by the clock (a rest ends, its window closes).
local function rest_sync(a)
  if not limits(a) then
    redis.call('HDEL', k('a', a.id), 'rest_until', 'rest_why')
    return
  end
  local all_rest, first, why, wake_at = true, nil, nil, nil
  for _, mode in ipairs(MODES) do
    if (tonumber(a[CAP_FIELD[mode]] or '0') or 0) > 0 then
      local u, w, change = rest(a, mode)
      if u then
        if not first or u < first then first, why = u, w end
      else
        all_rest = false
      end
      local t = u or change
      if t and (not wake_at or t < wake_at) then wake_at = t end
    end
  end
  if all_rest and first then
    redis.call('HSET', k('a', a.id), 'rest_until', first, 'rest_why', why)
  else
    redis.call('HDEL', k('a', a.id), 'rest_until', 'rest_why')
  end
  if wake_at then gate_timer(a.id, wake_at) end
end

local function acc_sync(acc)
  local a = read_account(acc)
  if not a then return nil end
  local owner, state = a.owner, a.state
  rest_sync(a)
  for _, mode in ipairs(MODES) do
    -- Live counts what the account is set to serve (it may be resting); use, what it can
    -- serve now.
    local live = (tonumber(a[CAP_FIELD[mode]] or '0') or 0) > 0 and (state == 'active' or state == 'cooling_down' or state == 'checking')
    -- (An account being checked counts as usable: tasks wait for its check rather than
    -- fail over; it enters the free sets only once active.)
    local use = mode_cap(a, mode) > 0 and (state == 'active' or state == 'checking')
    if live then redis.call('SADD', k('live', owner, mode), acc) else redis.call('SREM', k('live', owner, mode), acc) end
    if use then redis.call('SADD', k('use', owner, mode), acc) else redis.call('SREM', k('use', owner, mode), acc) end
    -- The primaries among them: while one is there, the backups take no work.
    if use and not a.backup then
      redis.call('SADD', k('usep', owner, mode), acc)
    else
      redis.call('SREM', k('usep', owner, mode), acc)
    end
    acc_refresh(acc, mode, true, a)
    backups_check(owner, mode, acc)
  end
  return a
end

-- Wake every lane that may have been waiting for this account (owned by `owner`).
local function acc_unpark(acc, owner)
  unpark(k('park', 'a', acc))
  if owner and owner ~= 'pool' then unpark(k('park', 't', owner)) end
  wake()
end

-- The reason of an account its tenant (or the operator) disabled: never probed, never
-- re-enabled by Switchyard.
local BY_TENANT = 'disabled by tenant'

-- Probe the account (`probe` set: account -> due time): now, or with `backoff` after a
-- delay that doubles with each failed probe — or at the end the upstream gave, when its
-- answer named one (`reason` ending in `until <ms>`: a temporary ban).
local function schedule_probe(acc, backoff, reason)
  local at = NOW
  local ends = tonumber(string.match(reason or '', 'until (%d+)$') or '')
  if ends and ends > NOW then
    at = ends
  elseif backoff then
    local n = redis.call('HINCRBY', k('a', acc), 'probes', 1)
    at = NOW + math.min(CONFIG.probe_backoff_ms * 2 ^ math.min(n - 1, 30), CONFIG.probe_backoff_max_ms)
  end
  redis.call('ZADD', k('probe'), at, acc)
end

local function set_state(acc, state, until_ms, reason)
  local prev = read_account(acc)
  if not prev then return false end
  if state == 'removed' then
    -- Keep the hash while tasks run on it (they finish); nothing new is sent.
    redis.call('HSET', k('a', acc), 'state', 'removed')
    redis.call('SREM', k('accs', prev.owner), acc)
    redis.call('SREM', k('nofast', prev.owner), acc)
  else
    redis.call('HSET', k('a', acc), 'state', state, 'until', until_ms or 0, 'reason', reason or '')
  end
  if state == 'cooling_down' then
    schedule('cool', until_ms, acc)
  else
    redis.call('ZREM', k('cool'), acc)
  end
  -- Made active, removed or disabled by hand: no probe is due any more.
  if state == 'active' or state == 'removed' or reason == BY_TENANT then
    redis.call('ZREM', k('probe'), acc)
    redis.call('HDEL', k('a', acc), 'probes')
  end
  acc_sync(acc)
  -- Any change may unblock a lane: active gives capacity; unusable may trigger failover.
  acc_unpark(acc, prev.owner)
  if prev.state ~= state then
    emit('account', 'account', acc, 'owner', prev.owner, 'state', state, 'until', until_ms or 0, 'reason', reason or '',
      'prev', prev.state or '')
    -- An owner's last account that could serve (active or cooling down) is gone.
    if state == 'disabled' or state == 'removed' then
      local live = 0
      for _, mode in ipairs(MODES) do live = live + redis.call('SCARD', k('live', prev.owner, mode)) end
      if live == 0 then
        emit('account', 'account', acc, 'owner', prev.owner, 'state', 'none_active', 'reason', reason or '')
      end
    end
  end
  return true
end

-- Accounts whose cool-down has ended become active again (bounded per call).
local function expire_cooldowns(limit)
  local due = redis.call('ZRANGEBYSCORE', k('cool'), '-inf', NOW, 'LIMIT', 0, limit)
  for _, acc in ipairs(due) do
    local fast_back = string.match(acc, '^nofast|(.*)$')
    local gated = string.match(acc, '^gate|(.*)$')
    if gated then
      -- Pacing or a rest ended, or a window closed: placed (or not) afresh.
      redis.call('ZREM', k('cool'), acc)
      local a = acc_sync(gated)
      if a then acc_unpark(gated, a.owner) end
    elseif fast_back then
      if end_nofast(fast_back) then
        local a = acc_sync(fast_back)
        acc_unpark(fast_back, a and a.owner)
      end
    elseif redis.call('HGET', k('a', acc), 'state') == 'cooling_down' then
      set_state(acc, 'active', 0, '')
    else
      redis.call('ZREM', k('cool'), acc)
    end
  end
end
