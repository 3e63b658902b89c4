-- Store a principal read from the database only if nothing changed its key since the reader
-- looked (docs/explanation/invariants.md, invariant 11): an invalidation writes a fresh revocation mark over the
-- key, so a fill that read the database before it can never bring the revoked principal back.
-- KEYS[1] the principal key; KEYS[2] (user principals only) the user's session generation,
-- in the same hash slot (`auth:user:{42}`, `auth:user:{42}:sessions`).
-- ARGV[1] the principal JSON (without its session generation), ARGV[2] its TTL in seconds,
-- ARGV[3] what the reader saw at the key before reading the database: "none" (nothing),
-- "value" (the string in ARGV[4]: a revocation mark or garbage) or "other" (another type),
-- ARGV[4] that string, ARGV[5] a fresh generation for a user who has none, ARGV[6] the
-- generation's TTL in seconds (a session cookie's age).
-- Returns {1, generation} when stored, {0, generation} when the key changed meanwhile; the
-- generation is "" for a token's principal.
local seen, now_type = ARGV[3], redis.call('TYPE', KEYS[1]).ok
local unchanged
if seen == 'none' then
  unchanged = now_type == 'none'
elseif seen == 'value' then
  unchanged = now_type == 'string' and redis.call('GET', KEYS[1]) == ARGV[4]
else
  unchanged = now_type ~= 'none' and now_type ~= 'string'
end
local generation = ''
if #KEYS > 1 then
  if redis.call('TYPE', KEYS[2]).ok == 'string' then
    generation = redis.call('GET', KEYS[2])
    redis.call('EXPIRE', KEYS[2], tonumber(ARGV[6]))  -- lives while its user is active
  elseif unchanged then
    -- None (or garbage): a new one. Sessions saved under a lost generation end, never revive.
    redis.call('DEL', KEYS[2])
    generation = ARGV[5]
    redis.call('SET', KEYS[2], generation, 'EX', tonumber(ARGV[6]))
  end
end
if not unchanged then
  return {0, generation}
end
local value = ARGV[1]
if #KEYS > 1 then
  local doc = cjson.decode(value)
  doc['g'] = generation  -- jobbox.auth.principals' short field name
  value = cjson.encode(doc)
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[1], value, 'EX', tonumber(ARGV[2]))
return {1, generation}
