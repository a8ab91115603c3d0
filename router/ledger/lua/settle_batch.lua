-- settle_batch: apply many deferred settles / releases in ONE call, each exactly as settle.lua would
-- (idempotent per reservation id: an entry applied twice counts once). A settle of a reservation that was
-- granted from this process's lease (slice) books the bill and shrinks the lease by the same amount, so
-- settled + holds + leases never grows.
-- KEYS: the record key of each entry, then per budget slot: spend key, hold zset, hold sum, lease hash.
-- ARGV: now_ms, idempotency_ttl_ms, n_entries, n_slots, then per slot: kind, first;
--       then per entry: rid, mode ('S'/'R'), nano, held ('' unknown), lease owner ('' for a Redis hold),
--       lease decrement (nano), m, then per budget: slot (1-based), write index, key ttl.
-- Returns one code per entry: 1 done now, 0 nothing to do (already settled / released).
local now = tonumber(ARGV[1])
local idem = ARGV[2]
local ne = tonumber(ARGV[3])
local ns = tonumber(ARGV[4])
local out = {}
local a = 5 + 2 * ns
for e = 1, ne do
  local rkey = KEYS[e]
  local rid, mode, nano, held_amt, owner = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local ldec = tonumber(ARGV[a + 5])
  local m = tonumber(ARGV[a + 6])
  local b0 = a + 7
  a = b0 + 3 * m
  local rec = redis.call('HMGET', rkey, 'st', 'amt')
  local st = rec[1]
  if st == 'settled' or (mode == 'R' and st == 'released') then
    out[#out + 1] = 0
  else
    local amt = rec[2] or held_amt
    local member = nil
    if amt and amt ~= '' then
      member = rid .. '|' .. amt
    end
    for j = 0, m - 1 do
      local slot = tonumber(ARGV[b0 + 3 * j])
      local k = ne + 1 + 4 * (slot - 1)
      local kind, first = ARGV[5 + 2 * (slot - 1)], tonumber(ARGV[6 + 2 * (slot - 1)])
      if member and redis.call('ZREM', KEYS[k + 1], member) == 1 then
        local left = redis.call('DECRBY', KEYS[k + 2], amt)
        if left <= 0 or redis.call('EXISTS', KEYS[k + 1]) == 0 then redis.call('DEL', KEYS[k + 2]) end
      end
      if mode == 'S' then
        if owner ~= '' then
          local size = lease_get(KEYS[k + 1], KEYS[k + 3], owner, now)
          if size > 0 then
            local left = size - ldec
            if left < 0 then left = 0 end
            lease_set(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], owner, now, left, 0)
          end
        end
        local key_ttl = tonumber(ARGV[b0 + 3 * j + 2])
        if kind == 'R' then
          rolling_add(KEYS[k], tonumber(ARGV[b0 + 3 * j + 1]), first, nano, key_ttl)
        elseif key_ttl > 0 then
          redis.call('INCRBY', KEYS[k], nano)
          redis.call('PEXPIRE', KEYS[k], key_ttl)
        end
      end
    end
    if mode == 'S' then
      redis.call('HSET', rkey, 'st', 'settled', 'act', nano)
      -- a reservation granted from a slice had no record: reserving its id again must return it, not hold anew
      redis.call('HSETNX', rkey, 'amt', (amt and amt ~= '') and amt or nano)
    else
      redis.call('HSET', rkey, 'st', 'released')
    end
    if redis.call('PEXPIRE', rkey, idem, 'GT') == 0 then
      redis.call('PEXPIRE', rkey, idem, 'NX')
    end
    out[#out + 1] = 1
  end
end
return out
