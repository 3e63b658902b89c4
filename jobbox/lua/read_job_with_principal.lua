-- A hot poll's one command on a single Redis (jobbox.read.read_with_principal): the caller's
-- principal and the job's status, progress and negative entry. One EVALSHA costs the client
-- a quarter of what a pipeline of the four commands does (redis-py packs and checks each).
-- KEYS[1] the principal, KEYS[2] the status, KEYS[3] the progress hash, KEYS[4] the negative
-- entry. Returns the four replies in that order (the progress flat, as HGETALL gives it); a
-- key holding another type gives its error in its place (pcall), as a pipeline would, so
-- the caller replaces that garbage the same way. The principal's key is of another slot:
-- on a Redis Cluster the caller sends the four commands in a pipeline instead.
return {
  redis.pcall('GET', KEYS[1]),
  redis.pcall('GET', KEYS[2]),
  redis.pcall('HGETALL', KEYS[3]),
  redis.pcall('GET', KEYS[4]),
}
