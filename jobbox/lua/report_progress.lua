-- Record a running job's progress in its hash and keep its snapshot alive (DESIGN.md, invariant 9),
-- and publish it to the job-box event stream, at most once per throttle interval per job.
-- KEYS[1] status key, KEYS[2] progress key, KEYS[3] the event stream (optional)
-- ARGV[1] TTL in seconds for a running job, ARGV[2] overall percent,
-- ARGV[3] the least milliseconds between two published progress events of this job (a change
-- of step is always published), ARGV[4] the stream's approximate length cap,
-- ARGV[5..] field/value pairs (step index, total, name, percent, updated_at).
-- Returns 0 when the job's snapshot is terminal (a late report after completion changes
-- nothing), 1 otherwise. The overall percent never goes backwards within one run; a re-queue
-- clears the hash, so a new run starts again from zero.
local ttl = tonumber(ARGV[1])
if redis.call('TYPE', KEYS[1]).ok ~= 'string' then redis.call('DEL', KEYS[1]) end
if redis.call('TYPE', KEYS[2]).ok ~= 'hash' then redis.call('DEL', KEYS[2]) end
local current = redis.call('GET', KEYS[1])
local doc = nil
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and type(decoded) == 'table' then
    doc = decoded
    if doc['terminal'] == true then
      return 0
    end
  end
end
local percent = tonumber(ARGV[2])
local stored = tonumber(redis.call('HGET', KEYS[2], 'percent'))
if stored and stored > percent then
  percent = stored
end
local step = ''
for i = 5, #ARGV - 1, 2 do
  if ARGV[i] == 'step_index' then step = ARGV[i + 1] end
end
local previous_step = redis.call('HGET', KEYS[2], 'published_step') or ''
local published_ms = tonumber(redis.call('HGET', KEYS[2], 'published_ms')) or 0
redis.call('HSET', KEYS[2], 'percent', percent, unpack(ARGV, 5))
redis.call('EXPIRE', KEYS[2], ttl)
if current then
  redis.call('EXPIRE', KEYS[1], ttl)
end
-- Only a job someone can see in a box is published: it has a snapshot naming its owner.
if #KEYS >= 3 and doc and type(doc['owner']) == 'string' then
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  if step ~= previous_step or now_ms - published_ms >= tonumber(ARGV[3]) then
    redis.call('HSET', KEYS[2], 'published_ms', now_ms, 'published_step', step)
    if redis.call('TYPE', KEYS[3]).ok ~= 'stream' and redis.call('EXISTS', KEYS[3]) == 1 then
      redis.call('DEL', KEYS[3])
    end
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', tonumber(ARGV[4]), '*',
      'e', 'progressed', 't', tostring(doc['tenant']), 'o', doc['owner'],
      'k', tostring(doc['kind']), 'i', tostring(doc['id']),
      's', current, 'p', cjson.encode(redis.call('HGETALL', KEYS[2])))
  end
end
return 1
