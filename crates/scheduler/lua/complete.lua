-- Complete a task: free its slots, capture its hold, store its output, set retention.
-- ARGV: id, token, output. Returns 'ok', 'already' (completed before: nothing charged
-- again) or 'stale' (the lease is not this worker's; nothing changed).
local id, token, output = ARGV[1], ARGV[2], ARGV[3]
local t = redis.call('HMGET', k('t', id), 'status', 'token')
if t[1] == 'completed' then return 'already' end
if t[1] ~= 'processing' or t[2] ~= token then return 'stale' end
release(id)
redis.call('HSET', k('t', id), 'output', output, 'progress', 100)
finish(id, 'completed', '', '', '')
return 'ok'
