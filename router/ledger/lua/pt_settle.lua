-- pt_settle: the end of a request that could use Provisioned Throughput, in one script:
-- (1) reconcile the capacity counter: add delta (negative: give back) to the claim's bucket if it is
--     still in the window (never taking a bucket below zero);
-- (2) count the request in its (model, region)'s month: served by PT or spilled, adjusted tokens served,
--     amortised subscription cost and PayGo-equivalent (served) or PayGo cost (spilled), nano-USD;
-- (3) remember the key in the index of PT keys (for `router spend` / monitor).
-- KEYS[1] rolling hash, KEYS[2] month totals hash, KEYS[3] index hash.
-- ARGV: delta, bucket, first second of the window, key_ttl_ms, served (1|0), tokens, amortised_nano,
--       paygo_nano, month_ttl_ms, now_ms, index field (KEY|YYYY-MM).
local delta = tonumber(ARGV[1])
local bucket = tonumber(ARGV[2])
local first = tonumber(ARGV[3])
if delta ~= 0 and bucket >= first then
  if delta < 0 then
    local have = num(redis.call('HGET', KEYS[1], fmt(bucket)))
    if have + delta < 0 then delta = -have end
  end
  if delta ~= 0 then
    rolling_add(KEYS[1], bucket, first, fmt(delta), ARGV[4])
  end
end
local m = KEYS[2]
if ARGV[5] == '1' then
  redis.call('HINCRBY', m, 'served', 1)
  redis.call('HINCRBY', m, 'tokens', ARGV[6])
  redis.call('HINCRBY', m, 'amortised', ARGV[7])
  redis.call('HINCRBY', m, 'paygo_avoided', ARGV[8])
else
  redis.call('HINCRBY', m, 'spilled', 1)
  redis.call('HINCRBY', m, 'spill_paygo', ARGV[8])
end
redis.call('PEXPIRE', m, ARGV[9])
redis.call('HSET', KEYS[3], ARGV[11], ARGV[10])
redis.call('PEXPIRE', KEYS[3], ARGV[9])
return 1
