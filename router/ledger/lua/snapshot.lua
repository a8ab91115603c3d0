-- snapshot: one read for the decision engine (writes nothing).
-- KEYS: per budget: spend key, hold zset, hold sum; per pool: period counter; per family: ramp hash.
-- ARGV: now_ms, n_budgets, n_pools, n_families, then per budget: kind, first; per family: first second.
-- Returns a flat array: per budget settled, held; per pool used; per family tokens, streak start, last minute
-- (-1 when none).
local now = tonumber(ARGV[1])
local nb = tonumber(ARGV[2])
local np = tonumber(ARGV[3])
local nf = tonumber(ARGV[4])
local out = {}
for i = 0, nb - 1 do
  local k = 1 + 3 * i
  local a = 5 + 2 * i
  out[#out + 1] = settled(ARGV[a], KEYS[k], tonumber(ARGV[a + 1]), false)
  out[#out + 1] = held(KEYS[k + 1], KEYS[k + 2], now, false)
end
for j = 0, np - 1 do
  out[#out + 1] = num(redis.call('GET', KEYS[1 + 3 * nb + j]))
end
for f = 0, nf - 1 do
  local key = KEYS[1 + 3 * nb + np + f]
  out[#out + 1] = rolling_total(key, tonumber(ARGV[5 + 2 * nb + f]), false)
  local v = redis.call('HMGET', key, 'ss', 'lm')
  out[#out + 1] = tonumber(v[1]) or -1
  out[#out + 1] = tonumber(v[2]) or -1
end
return out
