-- Claim the fill of a job's snapshot, memcache-lease style (docs/explanation/invariants.md, invariant 6).
-- KEYS[1] status key, KEYS[2] negative-entry key, KEYS[3] fill lease key
-- ARGV[1] lease token, ARGV[2] lease TTL in milliseconds.
-- Returns {"hit", snapshot} when a snapshot of a format read (snapshot_format.lua) is stored
-- (someone filled it),
-- {"missing", ""} when a negative entry stands and no snapshot does, {"lease", ""} when this
-- caller now holds the lease, {"wait", ""} when another reader holds it.
-- include: snapshot_format
if redis.call('TYPE', KEYS[1]).ok == 'string' then
  local raw = redis.call('GET', KEYS[1])
  if stored_snapshot(raw) then
    return {'hit', raw}
  end
elseif redis.call('TYPE', KEYS[2]).ok == 'string' and redis.call('GET', KEYS[2]) == '1' then
  return {'missing', ''}
end
-- A lease of another type, or one without an expiry, is garbage: it would block fills forever.
local lease_type = redis.call('TYPE', KEYS[3]).ok
if lease_type ~= 'none' and (lease_type ~= 'string' or redis.call('PTTL', KEYS[3]) < 0) then
  redis.call('DEL', KEYS[3])
end
if redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', tonumber(ARGV[2])) then
  return {'lease', ''}
end
return {'wait', ''}
