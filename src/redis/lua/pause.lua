-- pause.lua: refuse every request of the key for ARGV[2] ms from now (a provider said 429). The
-- instant the pause ends is kept in the state's header (see keyState.lua), and the state lives at
-- least until then; a shorter pause never cuts a longer one short. ARGV: now override, ms. KEYS:
-- the state, the slot set, the store's marker (a state string it creates is listed there: see
-- marker in keyState.lua).
-- Returns the instant the pause ends.
local now = clock(ARGV[1])
local until_ms = now + tonumber(ARGV[2])
marker(KEYS[3])
local v = redis.call('GET', KEYS[1])
-- A key without state gets instant 0 (never advanced): a pause does not move a key's time. It
-- is a new incarnation of the key: a new epoch (see clock.lua).
local at, expires, current, epoch, rest = 0, nil, 0, nil, ''
if v then
  local pos
  at, expires, current, epoch, pos = struct.unpack('<dddd', v)
  rest = string.sub(v, pos)
else
  epoch = new_epoch()
end
if current >= until_ms then
  return current
end
local need = until_ms + 1
if expires == nil or expires < need then
  redis.call('SET', KEYS[1], struct.pack('<dddd', at, need, until_ms, epoch) .. rest, 'PX', ttl_ms(need - now))
  redis.call('ZADD', KEYS[3], need, KEYS[1])
else
  redis.call('SET', KEYS[1], struct.pack('<dddd', at, expires, until_ms, epoch) .. rest, 'KEEPTTL')
end
return until_ms
