-- release.lua: free the concurrency slot of grant ARGV[1] (idempotent) and, when one was held,
-- announce it on channel ARGV[2] with the key's name ARGV[3], so waiters in other processes ask
-- again. Returns 1 when a slot was freed.
local freed = redis.call('ZREM', KEYS[2], ARGV[1])
if freed == 1 then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return freed
