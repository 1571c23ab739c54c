-- The outcome of an account's probe. ARGV: account, outcome, reason.
--   ok     the account works: a new one (checking) or one an upstream answer disabled
--          becomes active (`account` event, prev disabled: account_reenabled), and a
--          pause for want of fast hours ends;
--   dead   it does not: disabled with the reason, probed again after a backoff that
--          doubles per failed probe (scheduler.probe_backoff_ms … probe_backoff_max_ms),
--          or at the end the reason names (`… until <ms>`);
--   nofast it works but has no fast hours (Midjourney's /info): as ok, but a pause for
--          want of fast hours is kept, and the account probed again while it lasts;
--   retry  the probe could not tell (network, rate limit): probed again after the backoff,
--          the state unchanged.
-- An account removed or disabled by its tenant meanwhile is left as it is. Returns 1, or
-- 0 when it was left.
--- @include "keys"
--- @include "time"
--- @include "accounts"
local acc, outcome, reason = ARGV[1], ARGV[2], ARGV[3]
local a = read_account(acc)
local by_tenant = a and a.state == 'disabled' and redis.call('HGET', k('a', acc), 'reason') == BY_TENANT
if not a or a.state == 'removed' or by_tenant then
  redis.call('ZREM', k('probe'), acc)
  return 0
end
redis.call('HSET', k('a', acc), 'probed_ms', NOW)
if outcome == 'ok' or outcome == 'nofast' then
  if a.state == 'checking' or a.state == 'disabled' then set_state(acc, 'active', 0, '') end
  if outcome == 'ok' then
    -- Its fast hours are there: a pause for want of them ends.
    if end_nofast(acc) then
      acc_sync(acc)
      acc_unpark(acc, a.owner)
    end
  elseif a.nofast_until and NOW < (tonumber(a.nofast_until) or 0) then
    -- Still none: probed again while the pause lasts.
    schedule_probe(acc, true)
    return 1
  end
  redis.call('ZREM', k('probe'), acc)
  redis.call('HDEL', k('a', acc), 'probes')
  return 1
end
if outcome == 'dead' then set_state(acc, 'disabled', 0, reason) end
schedule_probe(acc, true, reason)
return 1
