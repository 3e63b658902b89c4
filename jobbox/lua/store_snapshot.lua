-- Store a job's status snapshot only if it is newer than the one stored (docs/explanation/invariants.md, invariant 3).
-- Touches the job's keys only (one hash tag, one cluster slot); the owner's job box and event
-- history are updated next, in the owner's slot, by record_owner_change.lua (jobbox.write).
-- KEYS[1] status key, KEYS[2] progress key, KEYS[3] the job's deleted marker (forget_job.lua)
-- ARGV[1] the snapshot's row version, ARGV[2] the snapshot JSON, ARGV[3] TTL in seconds,
-- ARGV[4] "clear" to drop the progress hash (a job back in the queue), "keep" otherwise.
-- A stored value of neither snapshot format (snapshot_format.lua) counts as garbage.
-- Returns {1, changed} when stored, {0, ''} when the stored snapshot is as new or newer;
-- changed names the snapshot fields that differ from the replaced snapshot's,
-- comma-separated ('*' when there was none: every field is new), for the event; {-1, ''}
-- when the job was deleted: nothing is stored (a fill that read the row before the delete).
-- include: snapshot_format
if redis.call('EXISTS', KEYS[3]) == 1 then
  return {-1, ''}
end
local version = tonumber(ARGV[1])
-- A value of another Redis type at our key is garbage too: remove it rather than fail on it.
if redis.call('TYPE', KEYS[1]).ok ~= 'string' then redis.call('DEL', KEYS[1]) end
if redis.call('TYPE', KEYS[2]).ok ~= 'hash' then redis.call('DEL', KEYS[2]) end
local previous = nil
local current = redis.call('GET', KEYS[1])
if current then
  local doc = stored_snapshot(current)
  -- Garbage (not JSON, not our shape) counts as older than anything: it is replaced.
  if doc then
    if tonumber(doc.version) >= version then
      return {0, ''}
    end
    if type(doc.fields) == 'table' then previous = doc.fields end
  end
end
local ttl = tonumber(ARGV[3])
redis.call('SET', KEYS[1], ARGV[2], 'EX', ttl)
if ARGV[4] == 'clear' then
  redis.call('DEL', KEYS[2])
elseif redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('EXPIRE', KEYS[2], ttl)
end
if not previous then
  return {1, '*'}
end
-- A field counts as changed when its JSON differs (a nested value compared whole).
local changed = {}
local fields = stored_snapshot(ARGV[2]).fields
for name, value in pairs(fields) do
  if previous[name] == nil or cjson.encode(previous[name]) ~= cjson.encode(value) then
    table.insert(changed, name)
  end
end
for name, _ in pairs(previous) do
  if fields[name] == nil then table.insert(changed, name) end
end
table.sort(changed)
return {1, table.concat(changed, ',')}
