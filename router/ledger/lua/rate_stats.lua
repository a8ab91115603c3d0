-- rate_stats: count one outcome of a rate pool's day (counted, cache_hit, fallback, unsupported), or read the day.
-- KEYS[1] the pool's stats hash of the day. ARGV: outcome ('' to only read), ttl_ms.
-- Returns the hash as a flat list {field, value, ...}.
if ARGV[1] ~= '' then
  redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('HGETALL', KEYS[1])
