-- Credit a balance once per idempotency key. ARGV: tenant, field (avail|credits), amount,
-- key, ttl_s. Returns {'ok'|'dup', new_value}.
--- @include "keys"
--- @include "balance"
--- @include "events"
local tenant, field, amount, key, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local done = redis.call('GET', k('topup', tenant, key))
if done then return {'dup', done} end
local L = ledger()
ledger_add(L, tenant, field, amount)
local v = flush_ledger(L) or redis.call('HGET', k('bal', tenant), field) or 0
redis.call('SET', k('topup', tenant, key), tostring(v), 'EX', ttl)
emit('ledger', 'tenant', tenant, 'entry', 'top_up', 'field', field, 'amount', amount)
-- Quota may unblock nothing queued (holds are taken at submit), but wake anyway.
return {'ok', tostring(v)}
