-- rate: take N requests from a per-minute rate pool (1-second buckets over a 61-second window), or read it.
-- KEYS[1] the pool's rolling hash.
-- ARGV: n (0: read only), bucket index now, first bucket of the window, limit, key_ttl_ms.
-- Returns {granted (1/0), requests in the window after the take}.
local key = KEYS[1]
local n = tonumber(ARGV[1])
local first = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local total = rolling_total(key, first, true)
if n == 0 then
  return {1, fmt(total)}
end
if total + n > limit then
  return {0, fmt(total)}
end
rolling_add(key, tonumber(ARGV[2]), first, fmt(n), ARGV[5])
return {1, fmt(total + n)}
