-- Quota: holding a task's price at submission, capturing or refunding it once.
--- @include "keys"
--- @include "config"
--- @include "balance"
--- @include "batch"
--- @include "events"

-- Hold `amount` of the tenant's quota; Midjourney converts credits first per the seed's
-- rule (CONFIG.conversion: below `below` quota, the first step of credits the tenant
-- has buys `step × num / den` quota). Returns true, or false and the available amount. In
-- a submit batch the balance is read once per tenant and its changes written by
-- flush_batch().
local function hold(tenant, kind, amount)
  local cache = BATCH and BATCH.bal
  local b = cache and cache[tenant]
  if not b then
    b = {avail = tonumber(redis.call('HGET', k('bal', tenant), 'avail') or '0') or 0}
    -- The tenant's changes: in the batch's ledger, or in one of its own written below.
    local L = cache and BATCH.ledger or ledger()
    b.L, b.d = L, ledger_of(L, tenant)
    if cache then cache[tenant] = b end
  end
  local d = b.d
  if kind == 'mj_quota' and b.avail < CONFIG.conversion.below then
    local conv = CONFIG.conversion
    -- Credits matter only here: read when first needed.
    if not b.credits then b.credits = tonumber(redis.call('HGET', k('bal', tenant), 'credits') or '0') or 0 end
    for _, c in ipairs(conv.steps) do
      if c <= b.credits then
        local q = math.floor(c * conv.num / conv.den)
        b.credits, b.avail = b.credits - c, b.avail + q
        d.credits = (d.credits or 0) - c
        d.converted_credits = (d.converted_credits or 0) + c
        d.avail = (d.avail or 0) + q
        emit('ledger', 'tenant', tenant, 'entry', 'convert', 'credits', c, 'quota', q, 'kind', kind)
        break
      end
    end
  end
  local ok = true
  if amount > 0 then
    if b.avail < amount then
      ok = false
      -- Midjourney quota short and no credits to exchange for more: the tenant is told
      -- (GoAPI's `go_api_quota_exchange_failed`).
      if kind == 'mj_quota' then
        emit('ledger', 'tenant', tenant, 'entry', 'convert_failed', 'credits', int(b.credits or 0),
          'needed', int(amount), 'kind', kind)
      end
    else
      b.avail = b.avail - amount
      d.avail, d.held = (d.avail or 0) - amount, (d.held or 0) + amount
    end
  end
  if not cache then flush_ledger(b.L) end
  return ok, b.avail
end

-- Give back a hold hold() just took in this submit batch (a task refused after it): the
-- batch's cached balance and its not yet written changes.
local function unhold(tenant, amount)
  local b = BATCH.bal[tenant]
  b.avail = b.avail + amount
  b.d.avail, b.d.held = (b.d.avail or 0) + amount, (b.d.held or 0) - amount
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
  local d = ledger_of(L, t.tenant)
  d.held = (d.held or 0) - amount
  local consume = '0'
  if how == 'capture' then
    d.captured = (d.captured or 0) + amount
    t.hold_state = 'captured'
    consume = tonumber(t.hold) and t.hold or int(amount)
  else
    d.avail, d.refunded = (d.avail or 0) + amount, (d.refunded or 0) + amount
    t.hold_state = 'refunded'
  end
  if own then flush_ledger(L) end
  return t.hold_state, consume
end

-- Give back `amount` of a task's hold and keep holding the rest (a fast task that runs in
-- relax keeps the relax price): one ledger entry, the task's hold lowered.
local function refund_part(t, amount)
  if t.hold_state ~= 'held' or amount <= 0 then return end
  local L = ledger()
  local d = ledger_of(L, t.tenant)
  d.held = (d.held or 0) - amount
  d.avail, d.refunded = (d.avail or 0) + amount, (d.refunded or 0) + amount
  flush_ledger(L)
  t.hold = int((tonumber(t.hold) or 0) - amount)
  redis.call('HSET', k('t', t.id), 'hold', t.hold)
  emit('ledger', 'tenant', t.tenant, 'entry', 'downgrade_refund', 'task', t.id, 'amount', int(amount),
    'kind', t.kind or '')
end
