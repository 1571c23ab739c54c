-- Record what a running task learned: its upstream reference (so a re-claim resumes
-- instead of submitting twice), progress, partial output. Fenced by the lease token.
-- ARGV: id, token, upstream_ref ('' = unchanged), progress (-1 = unchanged), output ('' = unchanged),
-- forget ('1': the upstream has no job for this task; drop the stored reference).
-- Returns 1, or 0 when the token is stale.
--- @include "keys"
--- @include "events"
local id, token = ARGV[1], ARGV[2]
local t = redis.call('HMGET', k('t', id), 'status', 'token', 'tenant', 'progress', 'wh_endpoint')
if t[1] ~= 'processing' or t[2] ~= token then return 0 end
if ARGV[6] == '1' then
  redis.call('HDEL', k('t', id), 'upstream')
elseif ARGV[3] ~= '' then
  redis.call('HSET', k('t', id), 'upstream', ARGV[3])
end
if ARGV[5] ~= '' then redis.call('HSET', k('t', id), 'output', ARGV[5]) end
local progress = tonumber(ARGV[4])
if progress >= 0 and tostring(progress) ~= (t[4] or '') then
  redis.call('HSET', k('t', id), 'progress', progress)
  if names_webhook(t[5]) then emit('progress', 'task', id, 'tenant', t[3], 'progress', progress) end
end
return 1
