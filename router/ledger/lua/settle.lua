-- settle / release a reservation, idempotently.
-- KEYS[1] reservation record; then per budget: spend key, hold zset, hold sum.
-- ARGV: now_ms, rid, mode ('S' settle, 'R' release), actual_nano, idempotency_ttl_ms,
--       fallback hold amount ('' if unknown), n, then per budget: bid, kind, first, write_index, key_ttl_ms.
-- A release that creates the record stores its budgets ('b') for a later settle.
-- Returns {1} done now, {0} nothing to do (already settled / not held), {-1} unknown reservation,
-- {-2, bids} the caller must pass the budgets named by the record (joined by newlines).
local mode = ARGV[3]
local n = tonumber(ARGV[7])
local rec = redis.call('HMGET', KEYS[1], 'st', 'amt', 'b')
local st = rec[1]

if st == 'settled' then
  return {0}
end
if mode == 'R' and st == 'released' then
  return {0}
end
if n == 0 then
  if st and rec[3] and rec[3] ~= '' then
    return {-2, rec[3]}
  end
  if not st then
    if mode == 'R' then
      return {0}
    end
    return {-1}
  end
end

local amt = rec[2] or ARGV[6]
local member = nil
if amt and amt ~= '' then
  member = ARGV[2] .. '|' .. amt
end
for i = 0, n - 1 do
  local a = 8 + 5 * i
  local k = 2 + 3 * i
  if member and redis.call('ZREM', KEYS[k + 1], member) == 1 then
    local left = redis.call('DECRBY', KEYS[k + 2], amt)
    if left <= 0 or redis.call('EXISTS', KEYS[k + 1]) == 0 then redis.call('DEL', KEYS[k + 2]) end
  end
  if mode == 'S' then
    local key_ttl = tonumber(ARGV[a + 4])
    if ARGV[a + 1] == 'R' then
      rolling_add(KEYS[k], tonumber(ARGV[a + 3]), tonumber(ARGV[a + 2]), ARGV[4], key_ttl)
    elseif key_ttl > 0 then
      redis.call('INCRBY', KEYS[k], ARGV[4])
      redis.call('PEXPIRE', KEYS[k], key_ttl)
    end
  end
end

if mode == 'S' then
  redis.call('HSET', KEYS[1], 'st', 'settled', 'act', ARGV[4])
else
  redis.call('HSET', KEYS[1], 'st', 'released')
  if n > 0 and not (rec[3] and rec[3] ~= '') then
    -- a record this release creates (a reservation granted while Redis was down, released live or by a
    -- journal replay) keeps the budgets, so a late settle of the id books its bill instead of nothing
    local bids = {}
    for i = 0, n - 1 do bids[#bids + 1] = ARGV[8 + 5 * i] end
    redis.call('HSET', KEYS[1], 'b', table.concat(bids, '\n'))
  end
end
-- GT: never shorten a long hold's record (a late settle must still find it).
if redis.call('PEXPIRE', KEYS[1], ARGV[5], 'GT') == 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[5], 'NX')  -- a record created by this settle (replayed) has no TTL yet
end
return {1}
