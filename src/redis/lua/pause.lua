-- pause.lua: refuse every request of the key for ARGV[2] ms from now (a provider said 429).
-- KEYS[3] holds the instant the pause ends and expires with it; a shorter pause never cuts a
-- longer one short. ARGV: now override, ms. Returns the instant the pause ends.
local now = clock(ARGV[1])
local ms = tonumber(ARGV[2])
local until_ms = now + ms
local current = tonumber(redis.call('GET', KEYS[3]))
if current ~= nil and current >= until_ms then
  return current
end
redis.call('SET', KEYS[3], fmt(until_ms), 'PX', fmt(ms))
return until_ms
