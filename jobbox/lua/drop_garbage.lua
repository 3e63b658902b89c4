-- Delete a status value the reader could not use (docs/explanation/invariants.md, invariant 6: garbage is replaced,
-- never served), but only if it is still the very value read: a snapshot stored since stays.
-- KEYS[1] status key, ARGV[1] the value read. Returns 1 if deleted.
if redis.call('TYPE', KEYS[1]).ok == 'string' and redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
