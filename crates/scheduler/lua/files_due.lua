-- Take completed tasks whose hosted files are due for deletion (their retention ended):
-- each taken entry is pushed back by the hold time, so one sweeper deletes a task's
-- files at a time, and a sweeper that dies before it is done leaves the entry to be
-- taken again. ARGV: limit, hold_ms. Returns the task ids taken.
--- @include "keys"
--- @include "time"
local limit, hold_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
local due = redis.call('ZRANGEBYSCORE', k('files'), '-inf', NOW, 'LIMIT', 0, limit)
for _, id in ipairs(due) do
  redis.call('ZADD', k('files'), NOW + hold_ms, id)
end
return due
