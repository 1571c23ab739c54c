-- Lanes and their rotations.
--
-- A lane is one FIFO of queued tasks, `tenant|pool|mode|pin` (pool: ppu or byoa, mode:
-- relax/fast/turbo, pin: an account id or empty). Unpinned lanes rotate in
-- rr:<pool>:<mode>, pinned lanes in rr:pin. A lane that cannot be served (tenant at its
-- cap, accounts busy) leaves its rotation and is parked on the resource it waits for;
-- the script that frees the resource puts it back (unpark). Nothing ever scans all lanes.
--- @include "keys"

local MODES = {'relax', 'fast', 'turbo'}
-- Lanes put back in rotation per parking set and call.
local UNPARK_MAX = '64'

local function lane_id(tenant, pool, mode, pin)
  return tenant .. '|' .. pool .. '|' .. mode .. '|' .. (pin or '')
end

local function split_lane(l)
  return string.match(l, '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
end

local function rot_of(pool, mode, pin)
  if pin ~= nil and pin ~= '' then return 'pin' end
  return pool .. ':' .. mode
end

-- Put a lane (back) into its rotation, at the back of the round. Idempotent.
local function activate(lane)
  local _, pool, mode, pin = split_lane(lane)
  local seq = redis.call('INCR', k('seq'))
  redis.call('ZADD', k('rr', rot_of(pool, mode, pin)), 'NX', seq, lane)
end

-- Put lanes parked on `key` back in rotation (at most UNPARK_MAX). Returns how many.
local function unpark(key)
  local lanes = redis.call('SPOP', key, UNPARK_MAX)
  for _, l in ipairs(lanes) do activate(l) end
  return #lanes
end
