-- Record a running job's progress in its hash and keep its snapshot alive (docs/explanation/invariants.md, invariant 9),
-- and say whether this report is due as an event (at most once per throttle interval per job;
-- a change of step always is). Touches the job's keys only (one cluster slot); the event is
-- recorded next in the owner's slot (record_owner_change.lua, jobbox.write).
-- KEYS[1] status key, KEYS[2] progress key
-- ARGV[1] TTL in seconds for a running job, ARGV[2] overall percent,
-- ARGV[3] the least milliseconds between two published progress events of this job,
-- ARGV[4..] field/value pairs (step index, total, name, percent, updated at in ms).
-- The hash's field names are jobbox.model's PROGRESS_* (short: every running job repeats
-- them); a hash of the previous layout (full-word names) is rewritten in the short ones.
-- Returns {0} when the job's snapshot is terminal (a late report after completion changes
-- nothing), {1} when recorded and not due as an event, {1, snapshot} when due (the snapshot
-- names the owner). The overall percent never goes backwards within one run; a re-queue
-- clears the hash, so a new run starts from zero.
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
      return {0}
    end
  end
end
local percent = tonumber(ARGV[2])
local stored = tonumber(redis.call('HGET', KEYS[2], 'p') or redis.call('HGET', KEYS[2], 'percent'))
if stored and stored > percent then
  percent = stored
end
local step = ''
for i = 4, #ARGV - 1, 2 do
  if ARGV[i] == 'si' then step = ARGV[i + 1] end
end
local previous_step = redis.call('HGET', KEYS[2], 'ps') or redis.call('HGET', KEYS[2], 'published_step') or ''
local published_ms = tonumber(redis.call('HGET', KEYS[2], 'pm')
  or redis.call('HGET', KEYS[2], 'published_ms')) or 0
-- The previous layout's names go: one set of fields per hash, the smaller one.
redis.call('HDEL', KEYS[2], 'percent', 'step_index', 'step_total', 'step_name', 'step_percent',
  'updated_at', 'published_ms', 'published_step')
redis.call('HSET', KEYS[2], 'p', percent, unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[2], ttl)
if current then
  redis.call('EXPIRE', KEYS[1], ttl)
end
-- Only a job someone can see in a box is published: it has a snapshot naming its owner.
if not (doc and type(doc['owner']) == 'string') then
  return {1}
end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if step == previous_step and now_ms - published_ms < tonumber(ARGV[3]) then
  return {1}
end
redis.call('HSET', KEYS[2], 'pm', now_ms, 'ps', step)
return {1, current}
