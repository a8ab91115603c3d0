-- consume: count units in a quota pool's period and split them into free and billable, idempotently.
-- KEYS[1] the period counter, KEYS[2] the request's idempotency key.
-- ARGV: units, free_units, key_ttl_ms (<= 0: the period is over, count nothing), idempotency_ttl_ms.
-- Returns {free, billable}.
local done = redis.call('GET', KEYS[2])
if done then
  local f, b = string.match(done, '^(%d+)|(%d+)$')
  return {tonumber(f), tonumber(b)}
end
local units = tonumber(ARGV[1])
local key_ttl = tonumber(ARGV[3])
local used = units
if key_ttl > 0 then
  used = redis.call('INCRBY', KEYS[1], ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
local free = tonumber(ARGV[2]) - (used - units)
if free > units then free = units end
if free < 0 then free = 0 end
redis.call('SET', KEYS[2], fmt(free) .. '|' .. fmt(units - free), 'PX', ARGV[4])
return {free, units - free}
