-- The ledger's identity: a random id stored under the prefix on first contact (SET NX), so a fail_open
-- journal can tell whether it is replaying into the ledger its events were journaled for.
-- KEYS[1] = the id key; ARGV[1] = the id to store if the ledger has none yet (the caller's last known id,
-- so a Redis that came back empty keeps its identity). Returns the ledger's id.
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
