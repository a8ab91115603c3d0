-- pt_claim: claim an estimate of Provisioned Throughput capacity (burndown-adjusted tokens) in a
-- rolling window, only if the window's tokens + the estimate stay within the capacity.
-- KEYS[1] the (model, region) rolling hash.
-- ARGV: tokens, capacity, bucket (current second), first second of the window, key_ttl_ms.
-- Returns {granted 1|0, tokens in the window after}.
local key = KEYS[1]
local tokens = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local bucket = tonumber(ARGV[3])
local first = tonumber(ARGV[4])
local used = rolling_total(key, first, true)
if used < 0 then used = 0 end
if used + tokens > capacity then
  return {0, fmt(used)}
end
if tokens > 0 then
  rolling_add(key, bucket, first, ARGV[1], ARGV[5])
end
return {1, fmt(used + tokens)}
