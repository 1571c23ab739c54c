-- Submit tasks: idempotency, pool choice (BYOA, or PPU by request or failover), quota
-- hold, store, queue, wake. Each task is all or nothing: a refused one writes nothing.
-- ARGV: for each task, its argument count, then its arguments: id, tenant, service_mode
--       (ppu|byoa), mode, pin (`!<account>`: the owner of what the task continues),
--       ppu_price, quota_kind, idempotency_key, idempotency_hash,
--       idempotency_ttl_s, then field/value pairs (`body`: the body's own key; `log`: an
--       entry of the task's log). A batch comes from one caller and is bounded by it.
-- Returns one reply per task: {'ok', id, pool, failover, held} | {'dup', id} |
-- {'err', code, detail}.
-- Tenant settings read by this call (a submit changes none).
--- @include "keys"
--- @include "time"
--- @include "accounts"
--- @include "quota"
--- @include "tasks"
--- @include "batch"
--- @include "events"
local TENANTS = {}

local function submit_one(A)
  local id, tenant, svc, mode, pin = A[1], A[2], A[3], A[4], A[5]
  local ppu_price, kind = tonumber(A[6]), A[7]
  local idem, idem_hash, idem_ttl = A[8], A[9], tonumber(A[10])

  if idem ~= '' then
    local prev = redis.call('HMGET', k('idem', tenant, idem), 'task', 'hash')
    if prev[1] then
      if prev[2] ~= idem_hash then return {'err', 'idempotency_key_reused', prev[1]} end
      return {'dup', prev[1]}
    end
  end
  local tn = TENANTS[tenant]
  if not tn then
    tn = redis.call('HMGET', k('tn', tenant), 'failover', 'plan', 'retention_s', 'queued', 'max_queued', 'max_pending_ms')
    TENANTS[tenant] = tn
  end
  -- Tenants are written with their plan's retention (tenant.lua); one without is unknown.
  if not tn[2] or not tn[3] then return {'err', 'no_tenant', tenant} end
  if redis.call('EXISTS', k('t', id)) == 1 then return {'dup', id} end

  -- A follow-up pinned to the account that owns its upstream object (its pin comes as
  -- `!<account>`, and the task's `owner_pin` field says what it names) is taken as it is:
  -- if that account cannot serve it, claim fails it `account_error`, as it must not run
  -- elsewhere.
  local owner_pin = string.byte(pin, 1) == 33
  if owner_pin then pin = string.sub(pin, 2) end
  local pool, failover = svc, 0
  if owner_pin and pin ~= '' then
    -- queued on its pin, whatever the account's state
  elseif svc == 'byoa' then
    if pin ~= '' then
      local a = read_account(pin, mode)
      if not a or a.owner ~= tenant or a.state == 'removed' then return {'err', 'account_not_found', pin} end
      if a.state == 'disabled' then return {'err', 'no_account', 'the pinned account ' .. pin .. ' is disabled'} end
      if (tonumber(a[CAP_FIELD[mode]] or '0') or 0) <= 0 then
        return {'err', 'no_account', 'the pinned account ' .. pin .. ' has no ' .. mode .. ' capacity'}
      end
    else
      local usable = redis.call('SCARD', k('use', tenant, mode))
      if usable == 0 then
        if tn[1] == '1' then
          pool, failover = 'ppu', 1
        elseif redis.call('SCARD', k('live', tenant, mode)) == 0 then
          return {'err', 'no_account', 'no usable account serves ' .. mode .. ' mode and the plan has no failover to PPU'}
        end
      end
    end
  elseif pin ~= '' then
    -- A PPU task pinned to a pool account (a follow-up on its origin's account).
    local a = read_account(pin)
    if not a or a.owner ~= 'pool' then pin = '' end
  end
  if pool == 'ppu' and failover == 1 then pin = '' end

  -- The tenant's queue for this provider: refused when full, after the quota check (402
  -- comes first), with the hold given back.
  local max_queued = tonumber(tn[5] or '') or -1
  local full = max_queued >= 0 and
    (tonumber(tn[4] or '') or 0) + (BATCH and BATCH.queued[tenant] or 0) >= max_queued

  local held = 0
  if pool == 'ppu' then
    local ok, avail = hold(tenant, kind, ppu_price)
    if not ok then return {'err', 'insufficient_quota', tostring(avail)} end
    if full then
      unhold(tenant, ppu_price)
      return {'err', 'queue_full', tostring(max_queued)}
    end
    held = ppu_price
  elseif full then
    return {'err', 'queue_full', tostring(max_queued)}
  end

  local state = 'none'
  if held > 0 then state = 'held' end
  -- Fields absent here read as empty or 0. The body (often longer than 64 bytes) lives in
  -- its own key so that the hash keeps Redis's compact encoding, a list that Redis
  -- searches from the front: the fields every claim reads come first (an empty token:
  -- never claimed).
  local fields = {'HSET', k('t', id), 'status', 'queued', 'attempts', '0', 'token', '', 'hold', held > 0 and A[6] or '0',
    'hold_state', state, 'retention_s', tn[3], 'id', id, 'tenant', tenant, 'svc', svc,
    'pool', pool, 'mode', mode, 'pin', pin, 'ppu_price', A[6], 'kind', kind, 'created_ms', NOW_S,
    'enq_ms', NOW_S}
  if failover == 1 then
    fields[#fields + 1] = 'failover'
    fields[#fields + 1] = 1
  end
  if pin ~= '' then
    -- What the client (or the origin task) pinned, as opposed to a pin for resuming.
    fields[#fields + 1] = 'user_pin'
    fields[#fields + 1] = pin
  end
  local webhook = false
  for i = 11, #A, 2 do
    if A[i] == 'wh_endpoint' and names_webhook(A[i + 1]) then webhook = true end
    if A[i] == 'body' then
      redis.call('SET', k('tb', id), A[i + 1])
    elseif A[i] == 'log' then
      -- A note of the intake. Entries appended later take the task's TTL once it has one;
      -- until then the tenant's retention bounds the list.
      redis.call('RPUSH', k('tlog', id), A[i + 1])
      redis.call('EXPIRE', k('tlog', id), tn[3])
    else
      fields[#fields + 1] = A[i]
      fields[#fields + 1] = A[i + 1]
    end
  end
  redis.call(unpack(fields))
  enqueue({id = id, tenant = tenant, pool = pool, mode = mode, pin = pin}, false, true)
  if idem ~= '' then
    redis.call('HSET', k('idem', tenant, idem), 'task', id, 'hash', idem_hash)
    redis.call('EXPIRE', k('idem', tenant, idem), idem_ttl)
  end
  -- The tenant's limit on waiting: the task expires if it is still waiting then.
  local max_pending = tonumber(tn[6] or '') or 0
  if max_pending > 0 then schedule('expiry', NOW + max_pending, id) end
  if webhook then emit('created', 'task', id, 'tenant', tenant) end
  return {'ok', id, pool, failover, held}
end

local out = {}
local i = 1
begin_batch(true)
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local A = {}
  for j = 1, n do A[j] = ARGV[i + j] end
  out[#out + 1] = submit_one(A)
  i = i + n + 1
end
flush_batch()
return out
