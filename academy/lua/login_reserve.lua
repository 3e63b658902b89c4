-- Reserve one sign-in attempt against every counter, or refuse it (academy.login_throttle).
-- KEYS: the counters (one hash slot); ARGV[1] the window in seconds, ARGV[1 + i] the limit
-- of KEYS[i].
-- Check and increment are one step: a burst of concurrent attempts cannot all read a count
-- under the limit before any of them adds to it, so at most the limit reach the password.
-- Returns 0 when reserved (every counter incremented; a new counter's window starts now), or
-- the index of the first counter at its limit (nothing incremented).
for i, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0') or 0
  if count >= tonumber(ARGV[i + 1]) then return i end
end
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('EXPIRE', key, tonumber(ARGV[1])) end
end
return 0
