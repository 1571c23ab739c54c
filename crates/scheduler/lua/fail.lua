-- A run failed. ARGV: id, token, kind, retry_after_ms, message, raw_message.
-- kind:
--   bad_request   the upstream refused the task: fail it, refund, no retry.
--   transient     retry after a backoff (doubling), until the attempt budget is spent.
--   rate_limited  cool the account down for retry_after_ms; requeue at once.
--   account_dead  disable the account with the message as reason; requeue at once, on
--                 the PPU pool when the tenant's plan fails over.
--   no_fast       the account's fast hours ran out: it takes no fast or turbo work for
--                 retry_after_ms (0: scheduler.no_fast_pause_ms; relax goes on); requeue at once.
--   handback      the worker is shutting down: requeue at once, attempt not counted.
-- Account-level kinds (rate_limited, account_dead, no_fast, handback) do not spend the
-- budget.
-- Returns 'failed', 'retry', 'requeued', 'failover' or 'stale'.
--- @include "keys"
--- @include "time"
--- @include "config"
--- @include "accounts"
--- @include "tasks"
local id, token, kind = ARGV[1], ARGV[2], ARGV[3]
local retry_after, message, raw = tonumber(ARGV[4]) or 0, ARGV[5], ARGV[6]
local t = load_task(id)
if t.status ~= 'processing' or t.token ~= token then return 'stale' end
local attempts = tonumber(t.attempts) or 1
local acc = release(t)

if kind == 'bad_request' then
  finish(t, 'failed', 'upstream_rejected', message, raw)
  return 'failed'
end
if kind == 'transient' then
  if attempts >= CONFIG.max_attempts then
    finish(t, 'failed', 'retries_exhausted', message, raw)
    return 'failed'
  end
  local backoff = math.min(CONFIG.backoff_ms * (2 ^ (attempts - 1)), CONFIG.backoff_max_ms)
  -- Accepted upstream: resume on the same account. Never accepted: prefer another one.
  keep_on_account(t)
  local avoid = acc or ''
  if t.pin == acc then avoid = '' end
  redis.call('HSET', k('t', id), 'status', 'delayed', 'error_raw', raw, 'avoid', avoid)
  schedule('delayed', NOW + backoff, id)
  return 'retry'
end
-- Account-level outcomes: not the task's fault.
redis.call('HSET', k('t', id), 'attempts', attempts - 1)
if kind == 'handback' then
  keep_on_account(t)
else
  -- The account cannot serve: whatever it accepted is lost; start afresh elsewhere
  -- (unless the client pinned this account).
  t.pin = redis.call('HGET', k('t', id), 'user_pin') or ''
  redis.call('HSET', k('t', id), 'pin', t.pin)
  redis.call('HDEL', k('t', id), 'upstream')
  t.upstream = nil
end
if kind == 'rate_limited' then
  if retry_after <= 0 then retry_after = CONFIG.cooldown_ms end
  set_state(acc, 'cooling_down', NOW + retry_after, message ~= '' and message or 'rate_limited')
elseif kind == 'account_dead' then
  local was = redis.call('HGET', k('a', acc), 'state')
  set_state(acc, 'disabled', 0, message ~= '' and message or 'account error')
  -- Disabled by an upstream answer: probed again after a backoff, re-enabled if it passes.
  if was and was ~= 'disabled' and was ~= 'removed' then schedule_probe(acc, true, message) end
  if t.pool == 'byoa' and (t.pin == nil or t.pin == '') and redis.call('HGET', k('tn', t.tenant), 'failover') == '1' then
    if fail_over(t) then return 'failover' end
    return 'failed'
  end
elseif kind == 'no_fast' then
  if retry_after <= 0 then retry_after = CONFIG.no_fast_pause_ms end
  local until_ms = int(NOW + retry_after)
  local a = read_account(acc)
  if a then
    local owner = a.owner
    redis.call('HSET', k('a', acc), 'nofast_until', until_ms)
    redis.call('SADD', k('nofast', owner), acc)
    -- Probed on the backoff while paused: a probe that finds fast hours (Midjourney's
    -- /info) ends the pause early.
    schedule_probe(acc, true)
    schedule('cool', NOW + retry_after, 'nofast|' .. acc)
    acc_sync(acc)
    acc_unpark(acc, owner)
    -- The account keeps its state (active, or resting for another reason): the event
    -- says which, with the pause as its reason.
    emit('account', 'account', acc, 'owner', owner, 'state', a.state, 'until', until_ms,
      'reason', 'no_fast_hours: ' .. (message ~= '' and message or 'no fast hours left'))
  end
elseif kind ~= 'handback' then
  return redis.error_reply('unknown fail kind ' .. tostring(kind))
end
enqueue(t, true)
return 'requeued'
