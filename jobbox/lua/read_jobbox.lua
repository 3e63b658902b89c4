-- Read one person's job box in one round trip (docs/explanation/job-box.md): the index, then each
-- job's snapshot and progress, pruning references whose snapshot has expired.
-- KEYS[1] the owner's job-box index, KEYS[2] the owner's event history
-- ARGV[1] the rebuild marker member, ARGV[2] most entries returned, ARGV[3] the score (ms)
-- before which a finished job has left the box (its snapshot may have been filled again by a
-- single-job read since), ARGV[4..] for each job kind, five values: the kind, then what comes
-- before and after a job's id in its status key and in its progress key (jobbox.keys).
-- Returns {0} when the index is missing (the caller rebuilds it from the database), else
-- {1, last event id, member1, snapshot1, progress1 (JSON), member2, ...}, newest first.
-- A member is "kind<TAB>id"; the job's key names are built from ARGV's parts (named by
-- jobbox.keys, never here). A member of the previous layout carries its two key names after
-- the id: read as it is, and dropped when its job also has a member of this layout (a
-- rolling deploy may write both). This script touches keys it was not passed: fine on one
-- Redis or behind Sentinel; on a Redis Cluster jobbox.box reads the index with
-- read_box_index.lua and the jobs with a pipeline.
-- include: snapshot_format
if redis.call('TYPE', KEYS[1]).ok ~= 'zset' or not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return {0}
end
local last_id = '0-0'
if redis.call('TYPE', KEYS[2]).ok == 'stream' then
  local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  if last[1] then last_id = last[1][1] end
end
local reply = {1, last_id}
local finished_before = tonumber(ARGV[3])
local parts = {}
for at = 4, #ARGV - 4, 5 do
  parts[ARGV[at]] = {ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4]}
end
local function job_keys(member)
  local kind, id = string.match(member, '^([^\t]+)\t([^\t]+)$')
  local found = kind and parts[kind]
  if found then
    return found[1] .. id .. found[2], found[3] .. id .. found[4]
  end
  local short, status_key, progress_key = string.match(member,
    '^([^\t]*\t[^\t]*)\t([^\t]+)\t([^\t]+)$')
  if short and redis.call('ZSCORE', KEYS[1], short) then return nil end
  return status_key, progress_key
end
local members = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[2]), 'WITHSCORES')
for at = 1, #members, 2 do
  local member, score = members[at], tonumber(members[at + 1])
  if member ~= ARGV[1] then
    local status_key, progress_key = job_keys(member)
    local snapshot = status_key and redis.pcall('GET', status_key)
    if snapshot and type(snapshot) == 'string' and score < finished_before then
      local doc = stored_snapshot(snapshot)
      if not doc or doc.terminal ~= false then snapshot = nil end
    end
    if snapshot and type(snapshot) == 'string' then
      local progress = '[]'
      if redis.call('TYPE', progress_key).ok == 'hash' then
        progress = cjson.encode(redis.call('HGETALL', progress_key))
      end
      table.insert(reply, member)
      table.insert(reply, snapshot)
      table.insert(reply, progress)
    else
      -- The snapshot expired, or finished long ago, or the member is garbage: it has left.
      redis.call('ZREM', KEYS[1], member)
    end
  end
end
return reply
