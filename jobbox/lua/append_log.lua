-- Append lines to a job's own log and keep it within its bounds, newest lines kept: at most
-- ARGV[1] lines and ARGV[2] bytes. Atomic, so two writers (a worker and a cancel) never leave
-- the byte count and the list apart. Touches the job's keys only (one hash tag, one slot).
-- KEYS[1] the log (a list, oldest first), KEYS[2] its size in bytes (a counter)
-- ARGV[1] the most lines, ARGV[2] the most bytes, ARGV[3] TTL in seconds, ARGV[4..] lines.
-- Returns the number of lines the log holds.
if redis.call('TYPE', KEYS[1]).ok ~= 'list' then redis.call('DEL', KEYS[1], KEYS[2]) end
local max_lines = tonumber(ARGV[1])
local max_bytes = tonumber(ARGV[2])
local size = tonumber(redis.call('GET', KEYS[2])) or 0
for i = 4, #ARGV do
  redis.call('RPUSH', KEYS[1], ARGV[i])
  size = size + #ARGV[i]
end
local length = redis.call('LLEN', KEYS[1])
while length > 0 and (length > max_lines or size > max_bytes) do
  local dropped = redis.call('LPOP', KEYS[1])
  size = size - #dropped
  length = length - 1
end
if size < 0 then size = 0 end
redis.call('SET', KEYS[2], size, 'EX', tonumber(ARGV[3]))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return length
