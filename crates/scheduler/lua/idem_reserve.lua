-- Reserve a task-create Idempotency-Key for a provider (registry.rs, `idempotency_reserve`).
-- KEYS[1] the key's record (`<prefix>:{global}:idemp:<tenant>:<hash>`); ARGV provider,
-- TTL (s) of a reservation without a created task. Global keys: no shard includes.
local p = redis.call('HGET', KEYS[1], 'provider')
if p and p ~= ARGV[1] then
  return {p, redis.call('HGET', KEYS[1], 'created') or '0'}
end
redis.call('HSET', KEYS[1], 'provider', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'inflight', 1)
if redis.call('HGET', KEYS[1], 'created') ~= '1' then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return {}
