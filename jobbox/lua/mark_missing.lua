-- Store a negative entry for an id the database does not know (docs/explanation/redis-layout.md).
-- KEYS[1] status key, KEYS[2] negative-entry key
-- ARGV[1] the snapshot format, ARGV[2] TTL in seconds.
-- A real snapshot stored meanwhile (the job was just created) wins: returns 0, no entry.
-- Garbage at the status key (wrong type, unparseable, another format) is removed, so it is
-- not read again. Returns 1 when the entry is stored.
local status_type = redis.call('TYPE', KEYS[1]).ok
if status_type == 'string' then
  local ok, doc = pcall(cjson.decode, redis.call('GET', KEYS[1]))
  if ok and type(doc) == 'table' and doc['f'] == tonumber(ARGV[1]) and tonumber(doc['version']) then
    return 0
  end
end
if status_type ~= 'none' then
  redis.call('DEL', KEYS[1])
end
redis.call('SET', KEYS[2], '1', 'EX', tonumber(ARGV[2]))
return 1
