-- pt_adjust: reconcile a claim with the actual usage: add delta (may be negative) to the bucket the
-- claim went to, if that bucket is still in the window (older ones have already left the count).
-- KEYS[1] the (model, region) rolling hash.
-- ARGV: delta, bucket, first second of the window, key_ttl_ms.
-- Returns 1 when counted, 0 when the bucket has left the window.
local delta = tonumber(ARGV[1])
local bucket = tonumber(ARGV[2])
local first = tonumber(ARGV[3])
if delta == 0 or bucket < first then
  return 0
end
if delta < 0 then
  -- never take out more than the bucket holds (a bucket is never negative)
  local have = num(redis.call('HGET', KEYS[1], fmt(bucket)))
  if have + delta < 0 then delta = -have end
  if delta == 0 then return 0 end
end
if rolling_add(KEYS[1], bucket, first, fmt(delta), ARGV[4]) then
  return 1
end
return 0
