-- Batch mode (submit, claim): queued counts and wake-ups are added up and written once by
-- flush_batch(). In a submit batch, where nothing takes a lane out of its rotation and
-- quota is only held, queue pushes are also gathered per lane (one RPUSH each; the
-- batch's lanes join their rotations with one ZADD per rotation), and each tenant's
-- balance is read once (quota.lua) and its changes written once (`ledger`).
--- @include "keys"
--- @include "lanes"
--- @include "balance"

local BATCH = nil
-- Wake-up tokens kept in `wake` (each wakes one blocked claimer).
local WAKE_MAX = 64

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

-- One wake-up token per new task (up to WAKE_MAX).
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
    BATCH.bal, BATCH.ledger = {}, ledger()
  end
end

local function flush_batch()
  local b = BATCH
  BATCH = nil
  if b.push then
    local lanes = b.push_order
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
    flush_ledger(b.ledger)
  end
  local tenants = b.tenants
  for i = 1, #tenants do
    local n = b.queued[tenants[i]]
    if n ~= 0 then redis.call('HINCRBY', k('tn', tenants[i]), 'queued', int(n)) end
  end
  if b.depth ~= 0 then redis.call('INCRBY', k('depth'), int(b.depth)) end
  if b.wake > 0 then
    local tokens = {}
    for i = 1, math.min(b.wake, WAKE_MAX) do tokens[i] = '1' end
    redis.call('LPUSH', k('wake'), unpack(tokens))
  end
end
