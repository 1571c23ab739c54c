-- What complete and heartbeat need of a running task, written by claim to the shard's
-- `running` hash (task id -> terms) and removed with its lease: one lookup per task in a
-- hash of the running tasks instead of many fields of the task hash. The terms start
-- with `w#` when the task has a webhook (its events are written), `#` when it has none;
-- then the token, …, and the account last (the one part that is not a generated id).
-- Terms without the mark (written by an earlier version) read as a task with a webhook.

local function running_terms(token, tenant, pool, mode, acc, hold, hold_state, retention_s, attempts, webhook)
  return (webhook and 'w#' or '#') .. token .. '|' .. (hold or '0') .. '|' .. (hold_state or 'none') .. '|' ..
    (retention_s or '') .. '|' .. attempts .. '|' .. pool .. '|' .. mode .. '|' .. tenant .. '|' .. acc
end

-- The task table of a running task from its terms.
local function running_task(id, terms)
  local mark, rest = string.match(terms, '^(w?)#(.*)$')
  local token, hold, hold_state, retention_s, attempts, pool, mode, tenant, acc =
    string.match(rest or terms, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$')
  return {id = id, token = token, hold = hold, hold_state = hold_state,
    retention_s = retention_s, attempts = attempts, pool = pool, mode = mode, tenant = tenant,
    account = acc, wh = mark == nil or mark == 'w'}
end

-- Just the lease token of a running task's terms (heartbeat needs no more).
local function running_token(terms)
  return string.match(terms, '^w?#([^|]*)') or string.match(terms, '^[^|]*')
end
