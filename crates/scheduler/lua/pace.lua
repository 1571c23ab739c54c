-- Pacing at the moment of submission (claim keeps an account from being claimed before
-- its next allowed time; this keeps the submissions themselves apart, whichever worker
-- process sends them and however long each took to get ready): an account's last
-- submission and the gap drawn for it hold the next one back.
-- ARGV: account, the gap (ms) drawn for this submission.
-- Returns 0 (go: this submission is recorded) or the milliseconds to wait first.
--- @include "keys"
--- @include "time"
local acc, gap = ARGV[1], tonumber(ARGV[2]) or 0
local key = k('a', acc)
local v = redis.call('HMGET', key, 'sub_ms', 'sub_gap', 'owner')
local due = (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0)
if NOW < due then return int(due - NOW) end
if v[3] then redis.call('HSET', key, 'sub_ms', NOW, 'sub_gap', int(gap)) end
return 0
