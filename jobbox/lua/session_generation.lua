-- A user's session generation at login, or a new one at logout (docs/explanation/invariants.md, invariant 11).
-- KEYS[1] the user's session generation, KEYS[2] the user's cached principal (one hash slot).
-- ARGV[1] "login" or "logout", ARGV[2] a fresh generation, ARGV[3] the generation's TTL in
-- seconds (a session cookie's age), ARGV[4] a revocation mark, ARGV[5] its TTL in seconds.
-- Login keeps the standing generation (other sessions of the user go on) or sets the fresh
-- one; logout sets the fresh one, so every session saved before no longer matches, and marks
-- the cached principal revoked (it carries the old generation; a racing fill cannot restore
-- it). Returns the generation now standing.
local current = false
if redis.call('TYPE', KEYS[1]).ok == 'string' then current = redis.call('GET', KEYS[1]) end
if ARGV[1] == 'login' and current then
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
  return current
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
if ARGV[1] == 'logout' then
  redis.call('SET', KEYS[2], ARGV[4], 'EX', tonumber(ARGV[5]))
end
return ARGV[2]
