-- release.lua: free the concurrency slots held under the grant ids ARGV[3], ARGV[4], ...
-- (idempotent: an id that holds none is skipped) and, when one was held, announce it on channel
-- ARGV[1] with the key's name ARGV[2], so waiters in other processes ask again. The store sends
-- one id for a release, and every slotted id of a decide call that failed (see redisStore.ts).
-- Returns the number of slots freed.
local freed = redis.call('ZREM', KEYS[2], unpack(ARGV, 3))
if freed > 0 then
  redis.call('PUBLISH', ARGV[1], ARGV[2])
end
return freed
