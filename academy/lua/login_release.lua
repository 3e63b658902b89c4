-- Give back a reserved sign-in attempt that did not fail (it signed in, or never reached the
-- password): academy.login_throttle. KEYS: the counters reserved.
-- A counter that expired meanwhile is left absent, never set to -1 without a TTL.
for _, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0') or 0
  if count > 0 then redis.call('DECR', key) end
end
return 0
