-- Open one of a person's event streams if they hold fewer than the cap, across every process
-- (one person's streams are bounded). Touches the owner's slot only.
-- KEYS[1] the owner's open streams (sorted set: stream id scored by its lease's expiry, ms)
-- ARGV[1] the stream id, ARGV[2] the lease in ms, ARGV[3] the cap.
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
return 1
