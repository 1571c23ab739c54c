-- Complete a task: free its slots, capture its hold, store its output, set retention.
-- ARGV: id, token, output. Returns 'ok', 'already' (completed before: nothing charged
-- again) or 'stale' (the lease is not this worker's; nothing changed).
local id, token, output = ARGV[1], ARGV[2], ARGV[3]
local t = load_task(id)
if t.status == 'completed' then return 'already' end
if t.status ~= 'processing' or t.token ~= token then return 'stale' end
release(t)
finish(t, 'completed', '', '', '', {'output', output, 'progress', 100})
return 'ok'
