-- Store a negative entry for an id the database does not know (docs/explanation/redis-layout.md).
-- KEYS[1] status key, KEYS[2] negative-entry key
-- ARGV[1] TTL in seconds.
-- A real snapshot stored meanwhile (the job was just created) wins: returns 0, no entry.
-- Garbage at the status key (wrong type, unparseable, neither format of snapshot_format.lua)
-- is removed, so it is not read again. Returns 1 when the entry is stored.
-- include: snapshot_format
local status_type = redis.call('TYPE', KEYS[1]).ok
if status_type == 'string' then
  if stored_snapshot(redis.call('GET', KEYS[1])) then
    return 0
  end
end
if status_type ~= 'none' then
  redis.call('DEL', KEYS[1])
end
redis.call('SET', KEYS[2], '1', 'EX', tonumber(ARGV[1]))
return 1
