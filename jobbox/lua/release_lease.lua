-- Release a fill lease only if the caller still holds it (docs/explanation/invariants.md, invariant 6): a lease
-- that expired and went to another reader is not ours to delete.
-- KEYS[1] lease key, ARGV[1] the holder's token. Returns 1 if released, 0 otherwise.
if redis.call('TYPE', KEYS[1]).ok == 'string' and redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
