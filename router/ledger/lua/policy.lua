-- Publish a policy version so every Router sharing this ledger switches to it.
-- KEYS[1] = current hash (version, at), KEYS[2] = history list ("version|at_ms", newest first),
-- KEYS[3] = the version's text.  ARGV: version, text, at_ms, history cap, text TTL (ms).
-- Returns 1 if the version became current, 0 if it already was.
local current = redis.call('HGET', KEYS[1], 'version')
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[5])
if current == ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'at', ARGV[3])
redis.call('LPUSH', KEYS[2], ARGV[1] .. '|' .. ARGV[3])
redis.call('LTRIM', KEYS[2], 0, num(ARGV[4]) - 1)
return 1
