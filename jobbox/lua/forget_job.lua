-- A job whose row was deleted leaves Redis at once (docs/explanation/invariants.md, invariant 11): its snapshot and
-- progress go, and a negative entry answers polls of its id without the database meanwhile.
-- KEYS[1] status key, KEYS[2] progress key, KEYS[3] negative-entry key (one hash tag: `{id}`)
-- ARGV[1] the negative entry's TTL in seconds.
-- Returns the number of keys removed.
local removed = redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SET', KEYS[3], '1', 'EX', tonumber(ARGV[1]))
return removed
