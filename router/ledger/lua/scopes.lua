-- List the budgets the ledger knows, pruning those no reservation has named since the cutoff, so the
-- budget registry stays bounded with high-cardinality scopes (tag:*, tenant:*).
-- KEYS[1] = the meta hash (BID -> "limit_nano|last_seen_ms"); ARGV[1] = cutoff (epoch ms).
-- Returns the kept fields as a flat {BID, value, ...} list.
local raw = redis.call('HGETALL', KEYS[1])
local cutoff = tonumber(ARGV[1])
local kept = {}
for i = 1, #raw, 2 do
  local value = raw[i + 1]
  local bar = string.find(value, '|', 1, true)
  local last = bar and tonumber(string.sub(value, bar + 1)) or 0
  if last < cutoff then
    redis.call('HDEL', KEYS[1], raw[i])
  else
    kept[#kept + 1] = raw[i]
    kept[#kept + 1] = value
  end
end
return kept
