-- reset.lua: forget the key (full capacity, no slots, no pause) and announce it on channel ARGV[1]
-- with the key's name ARGV[2]. KEYS: the state, the slot set, the store's marker (the state's
-- member goes too: see marker in keyState.lua). Returns the number of Redis keys deleted.
local n = redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return n
