-- Read one person's job-box index and the newest event id (the cluster path of the box: the
-- jobs' keys live in other slots, so their snapshots are read next with one pipeline).
-- KEYS[1] the owner's job-box index, KEYS[2] the owner's event history
-- ARGV[1] the rebuild marker member, ARGV[2] most entries returned
-- Returns {0} when the index is missing (the caller rebuilds it from the database), else
-- {1, last event id, member1, score1, member2, score2, ...}, newest first. A member of the
-- previous layout (kind, id, then the job's key names) whose job also has a member of this
-- layout ("kind<TAB>id": a rolling deploy may write both) is left out.
if redis.call('TYPE', KEYS[1]).ok ~= 'zset' or not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return {0}
end
local last_id = '0-0'
if redis.call('TYPE', KEYS[2]).ok == 'stream' then
  local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  if last[1] then last_id = last[1][1] end
end
local reply = {1, last_id}
local members = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[2]), 'WITHSCORES')
for at = 1, #members, 2 do
  local short = string.match(members[at], '^([^\t]*\t[^\t]*)\t[^\t]+\t[^\t]+$')
  if members[at] ~= ARGV[1] and not (short and redis.call('ZSCORE', KEYS[1], short)) then
    table.insert(reply, members[at])
    table.insert(reply, members[at + 1])
  end
end
return reply
