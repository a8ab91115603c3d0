-- settle_batch: apply many deferred settles / releases in ONE call, each exactly as settle.lua would
-- (idempotent per reservation id: an entry applied twice counts once). A settle of a reservation that was
-- granted from this process's lease (slice) books the bill and shrinks the lease by the same amount, so
-- settled + holds + leases never grows.
-- KEYS: the record key of each entry, then per budget slot: spend key, hold zset, hold sum, lease hash,
--       drain flag (set by another process that needs this budget's slices back).
-- ARGV: now_ms, idempotency_ttl_ms, n_entries, n_slots, then two packed arguments (fields separated by one
--       space, so the client encodes 6 arguments however large the batch is):
--   ARGV[5] per slot: kind first
--   ARGV[6] per entry: rid mode ('S'/'R') nano held ('-' unknown) owner ('-' for a Redis hold)
--           lease-decrement (nano) m, then per budget: slot (1-based) write-index key-ttl
-- Returns one code per entry as one string of digits (one bulk reply, not an array the client parses
-- element by element): 1 done now, 0 nothing to do (already settled / released); then ':' and one digit
-- per slot: 1 if its budget's drain flag is set (so a process that settles often needs no separate poll).
local now = tonumber(ARGV[1])
local idem = ARGV[2]
local ne = tonumber(ARGV[3])
local ns = tonumber(ARGV[4])
local function fields(packed)
  local t = {}
  for v in string.gmatch(packed, '%S+') do t[#t + 1] = v end
  return t
end
local S = fields(ARGV[5])
local F = fields(ARGV[6])
-- check the shape before writing anything (an error after a write would leave the batch half applied)
local a, seen = 1, 0
while a <= #F do
  local m = tonumber(F[a + 6])
  if not m then break end
  a, seen = a + 7 + 3 * m, seen + 1
end
if #S ~= 2 * ns or seen ~= ne or a ~= #F + 1 or #KEYS ~= ne + 5 * ns then
  return redis.error_reply('settle_batch: malformed batch (' .. ne .. ' entries, ' .. #F .. ' fields, ' .. ns .. ' slots)')
end
local out = {}
a = 1
for e = 1, ne do
  local rkey = KEYS[e]
  local rid, mode, nano, held_amt, owner = F[a], F[a + 1], F[a + 2], F[a + 3], F[a + 4]
  if held_amt == '-' then held_amt = '' end
  if owner == '-' then owner = '' end
  local ldec = tonumber(F[a + 5])
  local m = tonumber(F[a + 6])
  local b0 = a + 7
  a = b0 + 3 * m
  local rec = redis.call('HMGET', rkey, 'st', 'amt')
  local st = rec[1]
  if st == 'settled' or (mode == 'R' and st == 'released') then
    out[#out + 1] = '0'
  else
    local amt = rec[2] or held_amt
    local member = nil
    if amt and amt ~= '' then
      member = rid .. '|' .. amt
    end
    for j = 0, m - 1 do
      local slot = tonumber(F[b0 + 3 * j])
      local k = ne + 1 + 5 * (slot - 1)
      local kind, first = S[2 * slot - 1], tonumber(S[2 * slot])
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
        local key_ttl = tonumber(F[b0 + 3 * j + 2])
        if kind == 'R' then
          rolling_add(KEYS[k], tonumber(F[b0 + 3 * j + 1]), first, nano, key_ttl)
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
    out[#out + 1] = '1'
  end
end
out[#out + 1] = ':'
for slot = 1, ns do
  out[#out + 1] = tostring(redis.call('EXISTS', KEYS[ne + 5 * slot]))
end
return table.concat(out)
