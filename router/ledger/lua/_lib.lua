-- Shared helpers, prepended to every ledger script when it is loaded (so each script is still ONE
-- script: one EVALSHA, atomic). Redis 7 Lua 5.1: numbers are doubles (exact to 2^53), no `//`, no goto.
-- Integers always go back to Redis through fmt() (redis.call would print large numbers as %.14g).

local function num(v)
  return tonumber(v) or 0
end

local function fmt(n)
  return string.format('%d', n)
end

-- Rolling counter hash: numeric fields <bucket index> -> amount, 't' -> total, 'lo' -> lowest index
-- that may still exist. Returns the total of the buckets with index >= first (and the lowest index
-- left); when mutate, drops the older buckets from the hash (amortised O(1); O(buckets) after a long
-- idle period).
local function rolling_total(key, first, mutate)
  local v = redis.call('HMGET', key, 't', 'lo')
  local total = num(v[1])
  local lo = tonumber(v[2])
  if lo == nil or lo >= first then
    return total, lo
  end
  local dropped = 0
  if first - lo > 256 then
    local all = redis.call('HGETALL', key)
    for i = 1, #all, 2 do
      local idx = tonumber(all[i])
      if idx and idx < first then
        dropped = dropped + num(all[i + 1])
        if mutate then redis.call('HDEL', key, all[i]) end
      end
    end
  else
    for idx = lo, first - 1 do
      local field = fmt(idx)
      local amount = redis.call('HGET', key, field)
      if amount then
        dropped = dropped + num(amount)
        if mutate then redis.call('HDEL', key, field) end
      end
    end
  end
  total = total - dropped
  if mutate then
    redis.call('HSET', key, 't', fmt(total), 'lo', fmt(first))
  end
  return total, first
end

-- Add amount (a digit string) to bucket idx of a rolling hash whose window starts at bucket first;
-- a bucket already out of the window is not counted. Returns true when counted.
local function rolling_add(key, idx, first, amount, ttl)
  if idx < first then
    return false
  end
  local _, lo = rolling_total(key, first, true)
  local field = fmt(idx)
  redis.call('HINCRBY', key, field, amount)
  redis.call('HINCRBY', key, 't', amount)
  if lo == nil or idx < lo then
    redis.call('HSET', key, 'lo', field)
  end
  redis.call('PEXPIRE', key, ttl)
  return true
end

-- Active holds of one budget at now: the hold sum minus the holds whose expiry (score) is <= now.
-- Members are "RID|nano". When mutate, expired members are removed and the sum corrected.
local function held(hz, ha, now, mutate)
  if redis.call('EXISTS', hz) == 0 then
    if mutate then redis.call('DEL', ha) end
    return 0
  end
  local total = num(redis.call('GET', ha))
  local expired = redis.call('ZRANGEBYSCORE', hz, '-inf', fmt(now))
  if #expired > 0 then
    local gone = 0
    for i = 1, #expired do
      gone = gone + num(string.match(expired[i], '|(%d+)$'))
    end
    total = total - gone
    if mutate then
      redis.call('ZREMRANGEBYSCORE', hz, '-inf', fmt(now))
      if total <= 0 or redis.call('EXISTS', hz) == 0 then
        redis.call('DEL', ha)
      else
        redis.call('DECRBY', ha, fmt(gone))
      end
    end
  end
  if total < 0 then
    return 0
  end
  return total
end

-- Settled spend of one budget: rolling ('R', from bucket first) or calendar ('C', one counter).
local function settled(kind, key, first, mutate)
  if kind == 'R' then
    return rolling_total(key, first, mutate)
  end
  return num(redis.call('GET', key))
end

-- Keep a hold zset and its sum alive at least until expiry + 60 s (never shorten them; a sum created
-- afresh inherits the set's TTL), as reserve.lua does for a request's hold.
local function keep_holds(hz, ha, now, expiry)
  local keep = expiry - now + 60000
  if redis.call('PTTL', hz) < keep then
    redis.call('PEXPIRE', hz, fmt(keep))
  end
  if redis.call('PTTL', ha) < keep then
    redis.call('PEXPIRE', ha, redis.call('PTTL', hz))
  end
end

-- A process's budget lease (slice): a hold in the budget's hold zset with member "L:OWNER|nano", its
-- current size and expiry in the lease hash lh (OWNER -> "nano|expiry_ms"). Returns the live lease
-- (0, 0 when none or expired).
local function lease_get(hz, lh, owner, now)
  local cur = redis.call('HGET', lh, owner)
  if not cur then
    return 0, 0
  end
  local a, e = string.match(cur, '^(%d+)|(%d+)$')
  local score = redis.call('ZSCORE', hz, 'L:' .. owner .. '|' .. a)
  if not score or tonumber(score) <= now then
    return 0, 0
  end
  return tonumber(a), tonumber(e)
end

-- Set a process's lease to amount (0 drops it) expiring at expiry (0: keep the current expiry),
-- adjusting the hold sum; an expired lease counts as 0.
local function lease_set(hz, ha, lh, owner, now, amount, expiry)
  local cur = redis.call('HGET', lh, owner)
  if cur then
    local a = string.match(cur, '^(%d+)|')
    local member = 'L:' .. owner .. '|' .. a
    local score = redis.call('ZSCORE', hz, member)
    if score and expiry == 0 then
      expiry = tonumber(score)
    end
    if score and redis.call('ZREM', hz, member) == 1 then
      local left = redis.call('DECRBY', ha, a)
      if left <= 0 then redis.call('DEL', ha) end
    end
  end
  if amount <= 0 or expiry <= now then
    redis.call('HDEL', lh, owner)
    return 0
  end
  redis.call('ZADD', hz, fmt(expiry), 'L:' .. owner .. '|' .. fmt(amount))
  redis.call('INCRBY', ha, fmt(amount))
  redis.call('HSET', lh, owner, fmt(amount) .. '|' .. fmt(expiry))
  keep_holds(hz, ha, now, expiry)
  if redis.call('PTTL', lh) < expiry - now + 60000 then
    redis.call('PEXPIRE', lh, fmt(expiry - now + 60000))
  end
  return amount
end
