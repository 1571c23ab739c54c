-- Balance changes: the one way a script writes a tenant's balance (`bal:<tenant>`).
--- @include "keys"

-- Changes added up per tenant and field, written once by flush_ledger.
local function ledger()
  return {order = {}, by = {}}
end

-- The tenant's changes in `L` (field -> delta), made on first use.
local function ledger_of(L, tenant)
  local d = L.by[tenant]
  if not d then
    d = {}
    L.by[tenant] = d
    L.order[#L.order + 1] = tenant
  end
  return d
end

local function ledger_add(L, tenant, field, delta)
  local d = ledger_of(L, tenant)
  d[field] = (d[field] or 0) + delta
end

-- Returns the value the last change left (a one-change ledger: the new balance field).
local LEDGER_FIELDS = {'credits', 'converted_credits', 'avail', 'held', 'captured', 'refunded'}
local function flush_ledger(L)
  local last = nil
  for _, tenant in ipairs(L.order) do
    local d = L.by[tenant]
    local key = nil
    for _, f in ipairs(LEDGER_FIELDS) do
      if d[f] and d[f] ~= 0 then
        key = key or k('bal', tenant)
        last = redis.call('HINCRBY', key, f, int(d[f]))
      end
    end
  end
  return last
end
