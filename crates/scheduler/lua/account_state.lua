-- Change an account's health. ARGV: account, state (active|cooling_down|disabled|removed),
-- until_ms (for cooling_down), reason. Returns 1, or 0 when the account does not exist.
--- @include "time"
--- @include "accounts"
local acc, state, until_ms, reason = ARGV[1], ARGV[2], tonumber(ARGV[3]) or 0, ARGV[4]
if state == 'cooling_down' and until_ms <= NOW then state = 'active' end
-- Made active by hand: fast hours too.
if state == 'active' then end_nofast(acc) end
if set_state(acc, state, until_ms, reason) then return 1 end
return 0
