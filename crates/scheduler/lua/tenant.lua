-- Create or update a tenant's scheduling settings in this shard.
-- ARGV: tenant, initial_avail (credited once, on creation), then field/value pairs among:
-- plan, cap (-1 = no cap), failover (0|1), max_wait_ms, retention_s, max_queued (-1 = no
-- limit), max_pending_ms (0 = none).
-- Returns 'created' or 'updated'.
--- @include "keys"
--- @include "lanes"
--- @include "batch"
--- @include "balance"
local tenant, initial = ARGV[1], tonumber(ARGV[2]) or 0
local created = redis.call('EXISTS', k('tn', tenant)) == 0
local fields = {'HSET', k('tn', tenant)}
for i = 3, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
end
if #fields > 2 then redis.call(unpack(fields)) end
if created then
  redis.call('HSETNX', k('tn', tenant), 'queued', 0)
  if initial > 0 then
    local L = ledger()
    ledger_add(L, tenant, 'avail', initial)
    flush_ledger(L)
  end
end
-- A higher cap or new failover settings may let parked lanes run.
unpark(k('park', 'cap', tenant))
unpark(k('park', 't', tenant))
wake()
if created then return 'created' end
return 'updated'
