-- Store a job's status snapshot only if it is newer than the one stored (DESIGN.md, invariant 3),
-- and, in the same atomic step, keep the owner's job box and the event stream up to date.
-- KEYS[1] status key, KEYS[2] progress key,
-- KEYS[3] the owner's job-box index, KEYS[4] the event stream (both absent for an ownerless job)
-- ARGV[1] the snapshot's row version, ARGV[2] the snapshot JSON, ARGV[3] TTL in seconds,
-- ARGV[4] "clear" to drop the progress hash (a job back in the queue), "keep" otherwise,
-- ARGV[5] the snapshot format: a stored value of another format counts as garbage.
-- With KEYS[3]: ARGV[6] the index member, ARGV[7] its score (ms of the last change; negative:
-- too old to belong in a box), ARGV[8] index TTL in seconds, ARGV[9] most entries an index
-- keeps, ARGV[10] the stream's approximate length cap, ARGV[11] tenant, ARGV[12] owner,
-- ARGV[13] kind, ARGV[14] job id.
-- Returns 1 when stored, 0 when the stored snapshot is as new or newer.
local version = tonumber(ARGV[1])
-- A value of another Redis type at our key is garbage too: remove it rather than fail on it.
if redis.call('TYPE', KEYS[1]).ok ~= 'string' then redis.call('DEL', KEYS[1]) end
if redis.call('TYPE', KEYS[2]).ok ~= 'hash' then redis.call('DEL', KEYS[2]) end
local stored = 1
local current = redis.call('GET', KEYS[1])
if current then
  local ok, doc = pcall(cjson.decode, current)
  -- Garbage (not JSON, not our shape) counts as older than anything: it is replaced.
  if ok and type(doc) == 'table' and doc['f'] == tonumber(ARGV[5])
      and tonumber(doc['version']) and tonumber(doc['version']) >= version then
    stored = 0
  end
end
if stored == 1 then
  local ttl = tonumber(ARGV[3])
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ttl)
  if ARGV[4] == 'clear' then
    redis.call('DEL', KEYS[2])
  elseif redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('EXPIRE', KEYS[2], ttl)
  end
end
if #KEYS < 4 then
  return stored
end
-- The job box: a reference is added (or moved up) even when this write was stale, since the
-- newer snapshot that beat it belongs in the box too; GT keeps the latest change's score.
-- An index without the rebuild marker is read as a miss and completed from the database,
-- so a write that lands while a rebuild runs is kept, not lost.
local score = tonumber(ARGV[7])
if score >= 0 then
  if redis.call('TYPE', KEYS[3]).ok ~= 'zset' then redis.call('DEL', KEYS[3]) end
  redis.call('ZADD', KEYS[3], 'GT', score, ARGV[6])
  -- The newest entries stay (the rebuild marker scores +inf); the rest fall out of the box.
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[9]) + 2))
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[8]))
end
if stored == 1 then
  if redis.call('TYPE', KEYS[4]).ok ~= 'stream' and redis.call('EXISTS', KEYS[4]) == 1 then
    redis.call('DEL', KEYS[4])
  end
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', tonumber(ARGV[10]), '*',
    'e', 'changed', 't', ARGV[11], 'o', ARGV[12], 'k', ARGV[13], 'i', ARGV[14],
    's', ARGV[2], 'p', cjson.encode(redis.call('HGETALL', KEYS[2])))
end
return stored
