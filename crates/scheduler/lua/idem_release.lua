-- End a reservation of a task-create Idempotency-Key (registry.rs, `idempotency_release`).
-- KEYS[1] the key's record; ARGV created ('1'/'0'), TTL (s) once a task was created.
-- Global keys: no shard includes.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = redis.call('HINCRBY', KEYS[1], 'inflight', -1)
local created = redis.call('HGET', KEYS[1], 'created') == '1'
if ARGV[1] == '1' and not created then
  -- Kept from the first creation on, as long as the scheduler keeps the key (a replay
  -- does not extend it).
  redis.call('HSET', KEYS[1], 'created', '1')
  redis.call('EXPIRE', KEYS[1], ARGV[2])
elseif n <= 0 and not created and ARGV[1] ~= '1' then
  redis.call('DEL', KEYS[1])
end
return 1
