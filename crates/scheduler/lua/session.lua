-- One upstream session per account across every worker process (a Midjourney account's
-- Discord gateway): a lease on `gw:<account>` (holder, until, epoch, session), and the
-- session's events in the stream `gwev:<account>`, which every process following that
-- account's jobs reads. ARGV: op, account, holder, then per op:
--   hold  ttl_ms          take the lease (free, expired, or already ours) or keep it;
--                         returns 1 when held by `holder`, else 0
--   ready session_id      the holder's new session: a new epoch (returned; 0 when not
--                         the holder), and a READY entry with it
--   event epoch type data one event of the holder's session (fenced: refused, 0, unless
--                         `holder` holds the lease and `epoch` is current)
--   release               give the lease up (only the holder's)
--- @include "keys"
--- @include "time"
local op, acc, holder = ARGV[1], ARGV[2], ARGV[3]
local key, stream = k('gw', acc), k('gwev', acc)
local v = redis.call('HMGET', key, 'holder', 'until', 'epoch')
local mine = v[1] == holder
if op == 'hold' then
  local ttl = tonumber(ARGV[4])
  if mine or not v[1] or v[1] == '' or (tonumber(v[2]) or 0) <= NOW then
    redis.call('HSET', key, 'holder', holder, 'until', int(NOW + ttl))
    return 1
  end
  return 0
elseif op == 'ready' then
  if not mine or (tonumber(v[2]) or 0) <= NOW then return 0 end
  local epoch = redis.call('HINCRBY', key, 'epoch', 1)
  redis.call('HSET', key, 'session', ARGV[4])
  redis.call('XADD', stream, 'MAXLEN', '~', 1000, '*', 'e', epoch, 't', 'READY', 'd', ARGV[4], 'h', holder)
  return epoch
elseif op == 'event' then
  if not mine or v[3] ~= ARGV[4] or (tonumber(v[2]) or 0) <= NOW then return 0 end
  redis.call('XADD', stream, 'MAXLEN', '~', 1000, '*', 'e', ARGV[4], 't', ARGV[5], 'd', ARGV[6], 'h', holder)
  return 1
elseif op == 'release' then
  if mine then redis.call('HSET', key, 'holder', '', 'until', 0) end
  return 0
end
return redis.error_reply('unknown session op ' .. tostring(op))
