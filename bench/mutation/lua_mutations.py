"""Textual mutations of the ledger's Lua scripts (router/ledger/lua/*.lua), each run against the real-redis
ledger tests. Run: ``python -m bench.mutation.textual lua`` (about 20-40 minutes on a loaded 2-core box).

Each mutation is one plausible slip (a boundary, a dropped update, a skipped guard). Mutations known to be
equivalent are not listed; docs/mutation-report.md says which were considered and why they are equivalent.
"""

from __future__ import annotations

from bench.mutation.textual import Mutation

REAL_REDIS = ("tests/ledger", "-m", "redis_server and not slow")
LIB, RESERVE, SETTLE = "router/ledger/lua/_lib.lua", "router/ledger/lua/reserve.lua", "router/ledger/lua/settle.lua"
CONSUME, RAMP, SNAPSHOT = "router/ledger/lua/consume.lua", "router/ledger/lua/ramp.lua", "router/ledger/lua/snapshot.lua"
SCOPES, POLICY, BATCH = "router/ledger/lua/scopes.lua", "router/ledger/lua/policy.lua", "router/ledger/lua/settle_batch.lua"


def m(name: str, file: str, old: str, new: str) -> Mutation:
    return Mutation(name, file, old, new, REAL_REDIS)


MUTATIONS: list[Mutation] = [
    # ------------------------------------------------------------------ _lib.lua: rolling counters
    m("lib: a missing number reads as 1", LIB, "return tonumber(v) or 0", "return tonumber(v) or 1"),
    m("lib: long-idle eviction drops the oldest in-window bucket", LIB, "if idx and idx < first then", "if idx and idx <= first then"),
    m("lib: eviction drops the oldest in-window bucket", LIB, "for idx = lo, first - 1 do", "for idx = lo, first do"),
    m("lib: evicted buckets stay in the total", LIB, "  total = total - dropped\n", "  total = total\n"),
    m("lib: eviction does not move the low mark", LIB, "redis.call('HSET', key, 't', fmt(total), 'lo', fmt(first))", "redis.call('HSET', key, 't', fmt(total))"),
    m("lib: rolling add drops the oldest in-window bucket", LIB, "  if idx < first then\n    return false", "  if idx <= first then\n    return false"),
    m("lib: rolling add counts a bucket out of the window", LIB, "  if idx < first then\n    return false", "  if idx < first - 1 then\n    return false"),
    m("lib: rolling add does not update the total", LIB, "  redis.call('HINCRBY', key, 't', amount)\n", ""),
    m("lib: rolling add does not lower the low mark", LIB, "  if lo == nil or idx < lo then", "  if lo == nil then"),
    m("lib: rolling counter never expires", LIB, "  redis.call('PEXPIRE', key, ttl)\n  return true", "  return true"),
    # ------------------------------------------------------------------ _lib.lua: holds
    m("lib: a hold expiring exactly now still counted", LIB, "local expired = redis.call('ZRANGEBYSCORE', hz, '-inf', fmt(now))",
      "local expired = redis.call('ZRANGEBYSCORE', hz, '-inf', '(' .. fmt(now))"),
    m("lib: expired holds not subtracted", LIB, "      gone = gone + num(string.match(expired[i], '|(%d+)$'))", "      gone = gone"),
    m("lib: expired holds not removed", LIB, "      redis.call('ZREMRANGEBYSCORE', hz, '-inf', fmt(now))\n", ""),
    m("lib: hold sum not decremented on expiry", LIB, "        redis.call('DECRBY', ha, fmt(gone))", "        redis.call('DECRBY', ha, '0')"),
    m("lib: a negative hold sum is returned", LIB, "  if total < 0 then\n    return 0", "  if total < 0 then\n    return total"),
    m("lib: rolling and calendar spend swapped", LIB, "  if kind == 'R' then\n    return rolling_total", "  if kind == 'C' then\n    return rolling_total"),
    # ------------------------------------------------------------------ reserve.lua
    m("reserve: a repeated reserve holds twice", RESERVE, "if existing then\n  return {1, '', existing}", "if false then\n  return {1, '', existing}"),
    m("reserve: the cap is exclusive", RESERVE, "if spent + holding + amount > tonumber(ARGV[a + 3]) then", "if spent + holding + amount >= tonumber(ARGV[a + 3]) then"),
    m("reserve: holds ignored by the cap", RESERVE, "if spent + holding + amount > tonumber(ARGV[a + 3]) then", "if spent + amount > tonumber(ARGV[a + 3]) then"),
    m("reserve: settled spend ignored by the cap", RESERVE, "if spent + holding + amount > tonumber(ARGV[a + 3]) then", "if holding + amount > tonumber(ARGV[a + 3]) then"),
    m("reserve: a hold lives a minute longer", RESERVE, "redis.call('ZADD', KEYS[k + 1], fmt(now + ttl), member)", "redis.call('ZADD', KEYS[k + 1], fmt(now + ttl + 60000), member)"),
    m("reserve: the hold sum is not incremented", RESERVE, "local sum = redis.call('INCRBY', KEYS[k + 2], ARGV[3])", "local sum = amount"),
    m("reserve: the record expires with the hold", RESERVE, "redis.call('PEXPIRE', KEYS[1], fmt(ttl + tonumber(ARGV[5])))", "redis.call('PEXPIRE', KEYS[1], fmt(ttl))"),
    m("reserve: the budget registry is not updated", RESERVE, "    redis.call('HSET', KEYS[2], ARGV[a], ARGV[a + 4])\n", ""),
    m("reserve: the hold set never expires", RESERVE, "    redis.call('PEXPIRE', KEYS[k + 1], keep)\n", ""),
    # ------------------------------------------------------------------ settle.lua
    m("settle: a repeated settle books twice", SETTLE, "if st == 'settled' then\n  return {0}", "if false then\n  return {0}"),
    m("settle: a repeated release is redone", SETTLE, "if mode == 'R' and st == 'released' then", "if false then"),
    m("settle: an unknown reservation is not an error", SETTLE, "    return {-1}", "    return {0}"),
    m("settle: the hold is not removed", SETTLE, "  if member and redis.call('ZREM', KEYS[k + 1], member) == 1 then", "  if false then"),
    m("settle: the hold sum is not decremented", SETTLE, "    local left = redis.call('DECRBY', KEYS[k + 2], amt)", "    local left = 1"),
    m("settle: calendar spend not booked", SETTLE, "      redis.call('INCRBY', KEYS[k], ARGV[4])", "      redis.call('INCRBY', KEYS[k], '0')"),
    m("settle: calendar counter never expires", SETTLE, "      redis.call('PEXPIRE', KEYS[k], key_ttl)\n", ""),
    m("settle: rolling spend booked in the oldest bucket", SETTLE, "rolling_add(KEYS[k], tonumber(ARGV[a + 3]), tonumber(ARGV[a + 2]), ARGV[4], key_ttl)",
      "rolling_add(KEYS[k], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 2]), ARGV[4], key_ttl)"),
    m("settle: a settle is recorded as a release", SETTLE, "redis.call('HSET', KEYS[1], 'st', 'settled', 'act', ARGV[4])", "redis.call('HSET', KEYS[1], 'st', 'released', 'act', ARGV[4])"),
    m("settle: a release books spend", SETTLE, "  if mode == 'S' then\n    local key_ttl", "  if true then\n    local key_ttl"),
    # ------------------------------------------------------------------ consume.lua
    m("consume: a repeated request counts twice", CONSUME, "if done then", "if false then"),
    m("consume: free units from the total, not what was used before", CONSUME, "local free = tonumber(ARGV[2]) - (used - units)", "local free = tonumber(ARGV[2]) - used"),
    m("consume: free units not capped at the request", CONSUME, "if free > units then free = units end\n", ""),
    m("consume: negative free units", CONSUME, "if free < 0 then free = 0 end\n", ""),
    m("consume: the period counter never expires", CONSUME, "  redis.call('PEXPIRE', KEYS[1], ARGV[3])\n", ""),
    m("consume: an ended period is counted", CONSUME, "if key_ttl > 0 then", "if true then"),
    # ------------------------------------------------------------------ ramp.lua
    m("ramp: the streak survives a gap minute", RAMP, "minute > lm + 1", "minute > lm + 2"),
    m("ramp: the last minute is not advanced", RAMP, "if lm == nil or minute > lm then", "if lm == nil then"),
    m("ramp: replayed events are not de-duplicated", RAMP, "if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[6]) then", "if false then"),
    # ------------------------------------------------------------------ snapshot.lua
    m("snapshot: holds not reported", SNAPSHOT, "  out[#out + 1] = held(KEYS[k + 1], KEYS[k + 2], now, false)", "  out[#out + 1] = 0"),
    m("snapshot: pool usage not reported", SNAPSHOT, "  out[#out + 1] = num(redis.call('GET', KEYS[1 + 3 * nb + j]))", "  out[#out + 1] = 0"),
    # ------------------------------------------------------------------ scopes.lua, policy.lua
    m("scopes: nothing is ever pruned", SCOPES, "  if last < cutoff then", "  if false then"),
    m("policy: re-publishing the current version is new", POLICY, "if current == ARGV[1] then\n  return 0", "if false then\n  return 0"),
    m("policy: history not trimmed", POLICY, "redis.call('LTRIM', KEYS[2], 0, num(ARGV[4]) - 1)\n", ""),
    # ------------------------------------------------------------------ settle_batch.lua (deferred settlement)
    m("batch: a repeated release is redone", BATCH, "if st == 'settled' or (mode == 'R' and st == 'released') then", "if st == 'settled' then"),
    m("batch: a repeated settle books twice", BATCH, "if st == 'settled' or (mode == 'R' and st == 'released') then", "if (mode == 'R' and st == 'released') then"),
    m("batch: the lease is not shrunk by the bill", BATCH, "local left = size - ldec", "local left = size"),
    m("batch: rolling spend not booked", BATCH, "rolling_add(KEYS[k], tonumber(F[b0 + 3 * j + 1]), first, nano, key_ttl)", "rolling_add(KEYS[k], tonumber(F[b0 + 3 * j + 1]), first, '0', key_ttl)"),
    m("batch: calendar spend not booked", BATCH, "          redis.call('INCRBY', KEYS[k], nano)", "          redis.call('INCRBY', KEYS[k], '0')"),
    m("batch: the hold is not removed", BATCH, "if member and redis.call('ZREM', KEYS[k + 1], member) == 1 then", "if false then"),
]
