-- reserve_batch: group commit. Many reservations decided in ONE call, in arrival order, each granted or
-- denied exactly as reserve.lua would decide it alone; plus this process's budget leases (slices): first
-- the slices it gives back, then the requests, then the slices it asks for. A lease is a hold
-- ("L:OWNER|nano" in the budget's hold zset), so settled + holds + leases <= limit always holds.
-- KEYS: meta hash, then per budget slot: spend key, hold zset, hold sum, lease hash, drain key;
--       then per request: its record key.
-- ARGV: now_ms, owner, record_grace_ms, drain_ms, lease_share, n_slots, n_requests,
--       per slot (9): bid, kind, first, limit, meta ('' = unchanged), give back (nano), want (nano),
--                     smallest useful slice (nano), lease expiry if granted (ms);
--       per request: rid, amount, ttl_ms, m, then m slot numbers (1-based).
-- Returns a flat array: per request {code, denied bid or '', held}: code 1 granted, 0 denied,
-- 2 denied but other processes' leases hold enough to fit it (it was asked to drain: retry shortly);
-- then per slot {lease size, lease expiry, draining (1/0)}.
local now = tonumber(ARGV[1])
local owner = ARGV[2]
local grace = tonumber(ARGV[3])
local drain_ms = ARGV[4]
local share = tonumber(ARGV[5])
local ns = tonumber(ARGV[6])
local nr = tonumber(ARGV[7])
local S = 9

local function sk(s) return 2 + 5 * (s - 1) end  -- first key of slot s
local function sa(s) return 8 + S * (s - 1) end  -- first arg of slot s

local meta = false
for s = 1, ns do
  local a = sa(s)
  if ARGV[a + 4] ~= '' then
    redis.call('HSET', KEYS[1], ARGV[a], ARGV[a + 4])
    meta = true
  end
end
if meta then
  redis.call('PEXPIRE', KEYS[1], '3024000000')  -- 35 days after the last update
end

-- 1. slices given back
for s = 1, ns do
  local a, k = sa(s), sk(s)
  local give = tonumber(ARGV[a + 5])
  if give > 0 then
    local size = lease_get(KEYS[k + 1], KEYS[k + 3], owner, now)
    if size > 0 then
      local left = size - give
      if left < 0 then left = 0 end
      lease_set(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], owner, now, left, 0)
    end
  end
end

-- live leases of other owners on a slot (for the drain decision)
local function foreign(k)
  local all = redis.call('HGETALL', KEYS[k + 3])
  local total = 0
  for i = 1, #all, 2 do
    if all[i] ~= owner then
      local size = lease_get(KEYS[k + 1], KEYS[k + 3], all[i], now)
      total = total + size
    end
  end
  return total
end

-- 2. requests, in arrival order
local out = {}
local a = 8 + S * ns
local rk = 2 + 5 * ns
for r = 1, nr do
  local rid, amount_s, ttl = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  local amount = tonumber(amount_s)
  local m = tonumber(ARGV[a + 3])
  local slots = {}
  for j = 1, m do slots[j] = tonumber(ARGV[a + 3 + j]) end
  a = a + 4 + m
  local rkey = KEYS[rk + r - 1]
  local existing = redis.call('HGET', rkey, 'amt')
  if existing then
    out[#out + 1] = 1; out[#out + 1] = ''; out[#out + 1] = existing
  else
    local code, denied = 1, ''
    for j = 1, m do
      local s = slots[j]
      local sa_, k = sa(s), sk(s)
      local spent = settled(ARGV[sa_ + 1], KEYS[k], tonumber(ARGV[sa_ + 2]), true)
      local holding = held(KEYS[k + 1], KEYS[k + 2], now, true)
      local limit = tonumber(ARGV[sa_ + 3])
      if spent + holding + amount > limit then
        denied = ARGV[sa_]
        local others = foreign(k)
        if others > 0 and spent + holding - others + amount <= limit then
          code = 2
          redis.call('SET', KEYS[k + 4], '1', 'PX', drain_ms)
        else
          code = 0
        end
        break
      end
    end
    if code == 1 then
      local member = rid .. '|' .. amount_s
      local bids = {}
      for j = 1, m do
        local s = slots[j]
        local k = sk(s)
        redis.call('ZADD', KEYS[k + 1], fmt(now + ttl), member)
        redis.call('INCRBY', KEYS[k + 2], amount_s)
        keep_holds(KEYS[k + 1], KEYS[k + 2], now, now + ttl)
        bids[#bids + 1] = ARGV[sa(s)]
      end
      redis.call('HSET', rkey, 'st', 'held', 'amt', amount_s, 'b', table.concat(bids, '\n'))
      redis.call('PEXPIRE', rkey, fmt(ttl + grace))
      out[#out + 1] = 1; out[#out + 1] = ''; out[#out + 1] = amount_s
    else
      out[#out + 1] = code; out[#out + 1] = denied; out[#out + 1] = '0'
    end
  end
end

-- 3. slices asked for: at most 1/share of what is free, never below the smallest useful slice (so none
-- near the limit), none while the budget is draining
for s = 1, ns do
  local a_, k = sa(s), sk(s)
  local want = tonumber(ARGV[a_ + 6])
  local draining = redis.call('EXISTS', KEYS[k + 4])
  if want > 0 and draining == 0 then
    local spent = settled(ARGV[a_ + 1], KEYS[k], tonumber(ARGV[a_ + 2]), true)
    local holding = held(KEYS[k + 1], KEYS[k + 2], now, true)
    local free = tonumber(ARGV[a_ + 3]) - spent - holding
    local grant = math.floor(free / share)
    if grant > want then grant = want end
    if grant >= tonumber(ARGV[a_ + 7]) then
      local size, expiry = lease_get(KEYS[k + 1], KEYS[k + 3], owner, now)
      local until_ = tonumber(ARGV[a_ + 8])
      if expiry > until_ then until_ = expiry end
      lease_set(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], owner, now, size + grant, until_)
    end
  end
  local size, expiry = lease_get(KEYS[k + 1], KEYS[k + 3], owner, now)
  out[#out + 1] = size; out[#out + 1] = expiry; out[#out + 1] = draining
end
return out
