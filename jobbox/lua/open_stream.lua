-- Open one of a person's event streams if they hold fewer than the cap, across every process
-- (one person's streams are bounded). Touches the owner's slot only.
-- KEYS[1] the owner's open streams (sorted set: stream id scored by its lease's expiry, ms),
-- KEYS[2] the owner's event history
-- ARGV[1] the stream id, ARGV[2] the lease in ms, ARGV[3] the cap, ARGV[4] the history's TTL
-- in seconds, ARGV[5..] the field/value pairs of the entry that starts a history
-- (jobbox.events.encode_history_start).
-- A person without a history gets one, starting with that entry (no event: readers skip
-- it), before the stream reads its box: the box's last event id is then the entry's, and a
-- resume from it replays every event since (record_owner_change.lua keeps the history).
-- A stream whose process died is counted until its lease runs out (the live ones renew).
-- Returns 1 when opened, 0 when the person already holds the cap.
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if redis.call('TYPE', KEYS[1]).ok ~= 'zset' then redis.call('DEL', KEYS[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now_ms + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease)
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('XADD', KEYS[2], '*', unpack(ARGV, 5))
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
end
return 1
