-- Create or update an account (a tenant's hosted account, or owner 'pool').
-- ARGV: account, owner, create (1|0), enabled ('1'|'0'|'' unchanged), check ('1': probe
-- the credentials before the account takes work; it is `checking` until then), then
-- field/value pairs among: name, cap_relax, cap_fast, cap_turbo, weight, backup, secret,
-- hint, gap, dcap, win.
-- Returns 'ok', 'exists' or 'not_found'.
--- @include "keys"
--- @include "time"
--- @include "accounts"
--- @include "events"
local acc, owner, create, enabled, check = ARGV[1], ARGV[2], ARGV[3] == '1', ARGV[4], ARGV[5] == '1'
local cur = read_account(acc)
if create then
  if cur then return 'exists' end
  redis.call('HSET', k('a', acc), 'owner', owner, 'state', 'active', 'until', 0, 'reason', '',
    'weight', 1, 'backup', 0, 'cap_relax', 0, 'cap_fast', 0, 'cap_turbo', 0, 'lru', 0, 'created_ms', NOW)
  redis.call('SADD', k('accs', owner), acc)
  -- Its number among the owner's accounts (GoAPI's integer bot_id), never reused.
  redis.call('HSET', k('a', acc), 'bot', redis.call('INCR', k('bots', owner)))
else
  if not cur or cur.owner ~= owner or cur.state == 'removed' then return 'not_found' end
end
if #ARGV > 5 then
  local fields = {'HSET', k('a', acc)}
  for i = 6, #ARGV, 2 do
    fields[#fields + 1] = ARGV[i]
    fields[#fields + 1] = ARGV[i + 1]
  end
  redis.call(unpack(fields))
end
-- Enabling says the account can serve everything it is set to: fast hours too.
if enabled == '1' then end_nofast(acc) end
local state = redis.call('HGET', k('a', acc), 'state')
if create and check and enabled ~= '0' then
  set_state(acc, 'checking', 0, 'the credentials are being checked')
  schedule_probe(acc, false)
elseif enabled == '0' and state ~= 'disabled' then
  set_state(acc, 'disabled', 0, BY_TENANT)
elseif enabled == '1' and state ~= 'active' then
  set_state(acc, 'active', 0, '')
else
  acc_sync(acc)
  acc_unpark(acc, owner)
end
if create then emit('account', 'account', acc, 'owner', owner, 'state', 'created') end
return 'ok'
