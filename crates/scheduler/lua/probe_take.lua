-- Take the accounts whose probe is due (new credentials, or an account an upstream
-- answer disabled): each is held for `hold_ms` (a prober that dies leaves it to the next).
-- An account removed, or disabled by its tenant, is never probed: dropped here.
-- ARGV: limit, hold_ms. Returns account, sealed secret pairs.
--- @include "keys"
--- @include "time"
--- @include "accounts"
local limit, hold = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for _, acc in ipairs(redis.call('ZRANGEBYSCORE', k('probe'), '-inf', NOW, 'LIMIT', 0, limit)) do
  local a = read_account(acc, nil, true)
  if not a or a.state == 'removed' or (a.state == 'disabled' and redis.call('HGET', k('a', acc), 'reason') == BY_TENANT) then
    redis.call('ZREM', k('probe'), acc)
  else
    redis.call('ZADD', k('probe'), NOW + hold, acc)
    out[#out + 1] = acc
    out[#out + 1] = a.secret or ''
  end
end
return out
