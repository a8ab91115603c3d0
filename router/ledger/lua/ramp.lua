-- ramp: count Priority PayGo tokens of a model family (1-second buckets) and track the usage streak.
-- KEYS[1] the family's ramp hash; KEYS[2] (optional) a replay de-duplication key.
-- ARGV: tokens, second index, first second of the window, minute index, key_ttl_ms, dedupe_ttl_ms.
-- Returns 1 when counted, 0 when a duplicate or too old.
if #KEYS > 1 then
  if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[6]) then
    return 0
  end
end
local key = KEYS[1]
if not rolling_add(key, tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[1], ARGV[5]) then
  return 0
end
local minute = tonumber(ARGV[4])
local lm = tonumber(redis.call('HGET', key, 'lm'))
if lm == nil or minute > lm + 1 then
  redis.call('HSET', key, 'ss', fmt(minute))
end
if lm == nil or minute > lm then
  redis.call('HSET', key, 'lm', fmt(minute))
end
return 1
