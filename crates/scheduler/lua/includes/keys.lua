-- Keys and the values written to them.
--
-- KEYS[1] is the shard base `<prefix>:{<provider>:<shard>}`. Every key a script touches is
-- built from it by k(), so every key carries the shard's hash tag and lives in one slot
-- (Redis Cluster runs every script unchanged). The Rust mirror of these names is
-- src/keys.rs; docs/redis-layout.md lists them all.

local B = KEYS[1]
-- Key names are built on every call of every script by plain concatenation (a new Lua
-- string each time: build a key once per use site, keep it). The shard's own keys, one
-- part after the base, are built once per call.
local K1 = {}
local function k(a, b, c, d)
  if d ~= nil then return B .. ':' .. a .. ':' .. b .. ':' .. c .. ':' .. d end
  if c ~= nil then return B .. ':' .. a .. ':' .. b .. ':' .. c end
  if b ~= nil then return B .. ':' .. a .. ':' .. b end
  local key = K1[a]
  if not key then
    key = B .. ':' .. a
    K1[a] = key
  end
  return key
end

-- A task's hash key, built once per task table.
local function tkey(t)
  local key = t.key
  if not key then
    key = k('t', t.id)
    t.key = key
  end
  return key
end

-- Numbers given to redis.call are formatted with '%.17g' (costly); integers go as strings.
local function int(x)
  return string.format('%d', x)
end
