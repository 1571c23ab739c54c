-- What complete and heartbeat need of a running task, written by claim to the shard's
-- `running` hash (task id -> terms) and removed with its lease: one lookup per task in a
-- hash of the running tasks instead of many fields of the task hash. The account goes
-- last (the one part that is not a generated id).

local function running_terms(token, tenant, pool, mode, acc, hold, hold_state, retention_s, attempts)
  return token .. '|' .. (hold or '0') .. '|' .. (hold_state or 'none') .. '|' .. (retention_s or '') .. '|' ..
    attempts .. '|' .. pool .. '|' .. mode .. '|' .. tenant .. '|' .. acc
end

-- The task table of a running task from its terms.
local function running_task(id, terms)
  local token, hold, hold_state, retention_s, attempts, pool, mode, tenant, acc =
    string.match(terms, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$')
  return {id = id, token = token, hold = hold, hold_state = hold_state,
    retention_s = retention_s, attempts = attempts, pool = pool, mode = mode, tenant = tenant,
    account = acc}
end

-- Just the lease token of a running task's terms (heartbeat needs no more).
local function running_token(terms)
  return string.match(terms, '^[^|]*')
end
