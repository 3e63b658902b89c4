-- Record a running job's progress in its hash and keep its snapshot alive (DESIGN.md, invariant 9).
-- KEYS[1] status key, KEYS[2] progress key
-- ARGV[1] TTL in seconds for a running job, ARGV[2] overall percent,
-- ARGV[3..] field/value pairs (step index, total, name, percent, updated_at).
-- Returns 0 when the job's snapshot is terminal (a late report after completion changes
-- nothing), 1 otherwise. The overall percent never goes backwards within one run; a re-queue
-- clears the hash, so a new run starts again from zero.
local ttl = tonumber(ARGV[1])
if redis.call('TYPE', KEYS[1]).ok ~= 'string' then redis.call('DEL', KEYS[1]) end
if redis.call('TYPE', KEYS[2]).ok ~= 'hash' then redis.call('DEL', KEYS[2]) end
local current = redis.call('GET', KEYS[1])
if current then
  local ok, doc = pcall(cjson.decode, current)
  if ok and type(doc) == 'table' and doc['terminal'] == true then
    return 0
  end
end
local percent = tonumber(ARGV[2])
local stored = tonumber(redis.call('HGET', KEYS[2], 'percent'))
if stored and stored > percent then
  percent = stored
end
redis.call('HSET', KEYS[2], 'percent', percent, unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[2], ttl)
if current then
  redis.call('EXPIRE', KEYS[1], ttl)
end
return 1
