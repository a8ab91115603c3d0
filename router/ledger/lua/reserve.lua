-- reserve: hold an amount in every budget, atomically, or deny naming the first that would overflow.
-- KEYS[1] reservation record, KEYS[2] meta hash; then per budget: spend key, hold zset, hold sum.
-- ARGV: now_ms, rid, amount_nano, ttl_ms, record_grace_ms, n, then per budget: bid, kind, first, limit_nano,
--       meta (the "limit|seen_ms" to store in the meta hash, or '' when the caller stored it recently).
-- Returns {granted (1/0), denied bid or '', amount held}.
local now = tonumber(ARGV[1])
local amount = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local n = tonumber(ARGV[6])

local existing = redis.call('HGET', KEYS[1], 'amt')
if existing then
  return {1, '', existing}
end

local meta = false
for i = 0, n - 1 do
  local a = 7 + 5 * i
  if ARGV[a + 4] ~= '' then
    redis.call('HSET', KEYS[2], ARGV[a], ARGV[a + 4])
    meta = true
  end
end
if meta then
  redis.call('PEXPIRE', KEYS[2], '3024000000')  -- 35 days after the last update
end

for i = 0, n - 1 do
  local a = 7 + 5 * i
  local k = 3 + 3 * i
  local spent = settled(ARGV[a + 1], KEYS[k], tonumber(ARGV[a + 2]), true)
  local holding = held(KEYS[k + 1], KEYS[k + 2], now, true)
  if spent + holding + amount > tonumber(ARGV[a + 3]) then
    return {0, ARGV[a], '0'}
  end
end

local member = ARGV[2] .. '|' .. ARGV[3]
local keep = ttl + 60000
local bids = {}
for i = 0, n - 1 do
  local k = 3 + 3 * i
  -- The hold sum must never expire before the hold set: both get the same TTL (never shortened),
  -- and a sum created afresh inherits the set's TTL.
  local fresh = redis.call('PTTL', KEYS[k + 1]) < keep
  redis.call('ZADD', KEYS[k + 1], fmt(now + ttl), member)
  local sum = redis.call('INCRBY', KEYS[k + 2], ARGV[3])
  if fresh then
    redis.call('PEXPIRE', KEYS[k + 1], keep)
    redis.call('PEXPIRE', KEYS[k + 2], keep)
  elseif sum == amount then
    redis.call('PEXPIRE', KEYS[k + 2], redis.call('PTTL', KEYS[k + 1]))
  end
  bids[#bids + 1] = ARGV[7 + 5 * i]
end
redis.call('HSET', KEYS[1], 'st', 'held', 'amt', ARGV[3], 'b', table.concat(bids, '\n'))
redis.call('PEXPIRE', KEYS[1], fmt(ttl + tonumber(ARGV[5])))
return {1, '', ARGV[3]}
