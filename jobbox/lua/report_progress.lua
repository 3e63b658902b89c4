-- Record a running job's progress in its hash and keep its snapshot alive (docs/explanation/invariants.md, invariant 9),
-- and say whether this report is due as an event (at most once per throttle interval per job;
-- a change of step always is). Touches the job's keys only (one cluster slot); the event is
-- recorded next in the owner's slot (record_owner_change.lua, jobbox.write).
-- KEYS[1] status key, KEYS[2] progress key, KEYS[3] cancel flag (jobbox.control)
-- ARGV[1] TTL in seconds for a running job, ARGV[2] overall percent,
-- ARGV[3] the least milliseconds between two published progress events of this job,
-- ARGV[4] the least milliseconds between two samples of the progress rate (the time left),
-- ARGV[5] the weight of the newest sample in the smoothed rate (0 to 1),
-- ARGV[6..] field/value pairs (step index, total, name, percent, updated at in ms).
-- The hash's field names are jobbox.model's PROGRESS_* (short: every running job repeats
-- them); a hash of the previous layout (full-word names) is rewritten in the short ones.
-- Returns {-1} when someone asked the job to stop (nothing recorded: the worker stops),
-- {0} when the job's snapshot is terminal (a late report after completion changes
-- nothing), {1} when recorded and not due as an event, {1, snapshot} when due (the snapshot
-- names the owner). The overall percent never goes backwards within one run; a re-queue
-- clears the hash, so a new run starts from zero.
-- The time left ('e', seconds) is the remaining percent over the smoothed rate ('r', an
-- exponential moving average of the rate between samples taken at 'tm' ms with percent
-- 'tp'); unset until two samples differ.
-- include: snapshot_format
if redis.call('EXISTS', KEYS[3]) == 1 then
  return {-1}
end
local ttl = tonumber(ARGV[1])
if redis.call('TYPE', KEYS[1]).ok ~= 'string' then redis.call('DEL', KEYS[1]) end
if redis.call('TYPE', KEYS[2]).ok ~= 'hash' then redis.call('DEL', KEYS[2]) end
local current = redis.call('GET', KEYS[1])
local doc = current and stored_snapshot(current)
if doc and doc.terminal == true then
  return {0}
end
local percent = tonumber(ARGV[2])
local stored = tonumber(redis.call('HGET', KEYS[2], 'p') or redis.call('HGET', KEYS[2], 'percent'))
if stored and stored > percent then
  percent = stored
end
local step = ''
for i = 6, #ARGV - 1, 2 do
  if ARGV[i] == 'si' then step = ARGV[i + 1] end
end
local previous_step = redis.call('HGET', KEYS[2], 'ps') or redis.call('HGET', KEYS[2], 'published_step') or ''
local published_ms = tonumber(redis.call('HGET', KEYS[2], 'pm')
  or redis.call('HGET', KEYS[2], 'published_ms')) or 0
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
-- The previous layout's names go: one set of fields per hash, the smaller one.
redis.call('HDEL', KEYS[2], 'percent', 'step_index', 'step_total', 'step_name', 'step_percent',
  'updated_at', 'published_ms', 'published_step', 'sample_ms', 'sample_percent', 'rate',
  'eta_seconds')
redis.call('HSET', KEYS[2], 'p', percent, unpack(ARGV, 6))
local sample_ms = tonumber(redis.call('HGET', KEYS[2], 'tm'))
local sample_percent = tonumber(redis.call('HGET', KEYS[2], 'tp'))
if not sample_ms then
  redis.call('HSET', KEYS[2], 'tm', now_ms, 'tp', percent)
elseif now_ms > sample_ms and now_ms - sample_ms >= tonumber(ARGV[4]) then
  local rate = (percent - sample_percent) * 1000 / (now_ms - sample_ms)
  local smoothed = tonumber(redis.call('HGET', KEYS[2], 'r'))
  if smoothed then
    local weight = tonumber(ARGV[5])
    rate = weight * rate + (1 - weight) * smoothed
  end
  redis.call('HSET', KEYS[2], 'tm', now_ms, 'tp', percent, 'r', tostring(rate))
  if percent >= 100 then
    redis.call('HSET', KEYS[2], 'e', 0)
  elseif rate > 0 then
    redis.call('HSET', KEYS[2], 'e', math.ceil((100 - percent) / rate))
  else
    redis.call('HDEL', KEYS[2], 'e')
  end
end
redis.call('EXPIRE', KEYS[2], ttl)
if current then
  redis.call('EXPIRE', KEYS[1], ttl)
end
-- Only a job someone can see in a box is published: it has a snapshot naming its owner.
if not (doc and type(doc.owner) == 'string') then
  return {1}
end
if step == previous_step and now_ms - published_ms < tonumber(ARGV[3]) then
  return {1}
end
redis.call('HSET', KEYS[2], 'pm', now_ms, 'ps', step)
return {1, current}
