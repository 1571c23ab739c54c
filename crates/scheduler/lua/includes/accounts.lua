-- Accounts: their state, capacity per mode, and their places in the free, live and use
-- sets that claims choose from.
--- @include "keys"
--- @include "time"
--- @include "lanes"
--- @include "batch"
--- @include "events"

-- The fields of an account hash that scripts read, by read_account alone: always these,
-- then the capacity of one mode (or of every mode), then the secret when asked for.
local ACCOUNT_FIELDS = {'owner', 'state', 'weight', 'backup', 'lru', 'nofast_until'}
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
    relax, fast, turbo, sealed = v[7], v[8], v[9], v[10]
  else
    sealed = v[8]
    if mode == 'relax' then relax = v[7] elseif mode == 'fast' then fast = v[7] else turbo = v[7] end
  end
  return {owner = v[1], state = v[2], weight = tonumber(v[3] or '1') or 1, backup = v[4] == '1',
    lru = tonumber(v[5] or '0') or 0, nofast_until = v[6], cap_relax = relax, cap_fast = fast,
    cap_turbo = turbo, secret = sealed, cap = nil, inf = nil, zkey = nil, ids = nil}
end

-- An account whose fast hours ran out (Midjourney's "Credits exhausted") keeps its relax
-- capacity and takes no fast or turbo work until `nofast_until` (ms) passes; a timer
-- (`nofast|<account>` in `cool`) gives them back then. The capacity of `a` in `mode`.
local function mode_cap(a, mode)
  if mode ~= 'relax' and a.nofast_until and NOW < (tonumber(a.nofast_until) or 0) then return 0 end
  return tonumber(a[CAP_FIELD[mode]] or '0') or 0
end

-- End an account's fast-hours pause (its timer, or an operator enabling it). Returns
-- whether there was one; the caller syncs the account.
local function end_nofast(acc)
  redis.call('ZREM', k('cool'), 'nofast|' .. acc)
  return redis.call('HDEL', k('a', acc), 'nofast_until') == 1
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
  place_account(free_key(a, mode), acc, a.state == 'active', free, a.weight, a.lru)
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
local function acc_sync(acc)
  local a = read_account(acc)
  if not a then return nil end
  local owner, state = a.owner, a.state
  for _, mode in ipairs(MODES) do
    -- Live counts what the account is set to serve (it may be resting); use, what it can
    -- serve now.
    local live = (tonumber(a[CAP_FIELD[mode]] or '0') or 0) > 0 and (state == 'active' or state == 'cooling_down')
    local use = mode_cap(a, mode) > 0 and state == 'active'
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

local function set_state(acc, state, until_ms, reason)
  local prev = read_account(acc)
  if not prev then return false end
  if state == 'removed' then
    -- Keep the hash while tasks run on it (they finish); nothing new is sent.
    redis.call('HSET', k('a', acc), 'state', 'removed')
    redis.call('SREM', k('accs', prev.owner), acc)
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
  acc_unpark(acc, prev.owner)
  if prev.state ~= state then
    emit('account', 'account', acc, 'owner', prev.owner, 'state', state, 'until', until_ms or 0, 'reason', reason or '',
      'prev', prev.state or '')
    -- A tenant's last account that could serve (active or cooling down) is gone.
    if (state == 'disabled' or state == 'removed') and prev.owner ~= 'pool' then
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
    if fast_back then
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
