-- A job changed: keep its owner's job box and event history up to date, and tell the
-- processes streaming to that owner (docs/explanation/architecture.md and invariant 12). Touches the
-- owner's keys only (hash tag {tenant:owner}, one cluster slot).
-- KEYS[1] the owner's job-box index, KEYS[2] the owner's event history (a stream),
-- KEYS[3] the owner's notification channel (declared so a cluster client routes this call
-- to the node that owns the slot; it is published to, never read as a key),
-- KEYS[4] the owner's open streams (jobbox.stream: a sorted set of leases)
-- ARGV[1] the index member ('' to leave the index alone: a progress event),
-- ARGV[2] its score (ms of the last change; negative: too old to belong in a box; 'remove':
-- take the member out, the job was deleted),
-- ARGV[3] index TTL in seconds, ARGV[4] most entries an index keeps,
-- ARGV[5] '1' to record an event, '0' for the index alone (a stale write),
-- ARGV[6] the history's length cap (exact), ARGV[7] the history's TTL in seconds (also the
-- oldest an entry may be),
-- ARGV[8] the publish command (PUBLISH on a single Redis, SPUBLISH on a cluster),
-- ARGV[9] the member as the previous layout wrote it (with the job's key names), removed
-- wherever the member is added or removed ('' with no member),
-- ARGV[10..] the event's field/value pairs (jobbox.events.encode_event).
-- Returns the new event's id, or '' when no event was recorded.
-- A history is kept only for a person who may resume from it: one with a stream open, or
-- whose history still stands (it is then kept whole until it expires). Anyone else holds no
-- event id to resume from but "0-0" or an expired history's, which a resume answers with a
-- resync either way; and a history costs a stream node Redis preallocates (4 KB) however few
-- its entries.
-- The job box: a reference is added (or moved up) even when the snapshot write was stale,
-- since the newer snapshot that beat it belongs in the box too; GT keeps the latest change's
-- score. An index without the rebuild marker is read as a miss and completed from the
-- database, so a write that lands while a rebuild runs is kept, not lost.
if ARGV[1] ~= '' and ARGV[2] == 'remove' then
  if redis.call('TYPE', KEYS[1]).ok == 'zset' then redis.call('ZREM', KEYS[1], ARGV[1], ARGV[9]) end
elseif ARGV[1] ~= '' then
  local score = tonumber(ARGV[2])
  if score >= 0 then
    if redis.call('TYPE', KEYS[1]).ok ~= 'zset' then redis.call('DEL', KEYS[1]) end
    -- The previous layout's reference keeps its score for the new one (GT compares to it).
    local previous_score = redis.call('ZSCORE', KEYS[1], ARGV[9])
    if previous_score then
      redis.call('ZREM', KEYS[1], ARGV[9])
      redis.call('ZADD', KEYS[1], 'GT', previous_score, ARGV[1])
    end
    redis.call('ZADD', KEYS[1], 'GT', score, ARGV[1])
    -- The newest entries stay (the rebuild marker scores +inf); the rest fall out of the box.
    redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[4]) + 2))
    redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
  end
end
if ARGV[5] ~= '1' then
  return ''
end
local history_type = redis.call('TYPE', KEYS[2]).ok
if history_type == 'none' and redis.call('EXISTS', KEYS[4]) == 0 then
  return ''
end
if history_type ~= 'stream' and history_type ~= 'none' then
  redis.call('DEL', KEYS[2])
end
-- MAXLEN without '~': capped exactly, so a history's memory is bounded by the cap. And by
-- age: entries older than the history's TTL go too (nobody resumes from an id that old), so
-- a person with steady events does not keep MAXLEN of them forever.
local id = redis.call('XADD', KEYS[2], 'MAXLEN', tonumber(ARGV[6]), '*', unpack(ARGV, 10))
local now = redis.call('TIME')
local oldest_ms = tonumber(now[1]) * 1000 - tonumber(ARGV[7]) * 1000
redis.call('XTRIM', KEYS[2], 'MINID', oldest_ms)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[7]))
redis.call(ARGV[8], KEYS[3], id)
return id
