-- Complete tasks: free their slots, capture their holds, store their outputs, set
-- retention. ARGV: id, token, output triples (a batch from one worker; bounded by the
-- caller). Returns, per task, 'ok', 'already' (completed before: nothing charged again)
-- or 'stale' (the lease is not this worker's; nothing changed).
local out = {}
for i = 1, #ARGV, 3 do
  local id, token, output = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local t = load_task(id)
  if t.status == 'completed' then
    out[#out + 1] = 'already'
  elseif t.status ~= 'processing' or t.token ~= token then
    out[#out + 1] = 'stale'
  else
    release(t)
    finish(t, 'completed', '', '', '', {'output', output, 'progress', 100})
    out[#out + 1] = 'ok'
  end
end
return out
