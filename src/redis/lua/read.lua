-- read.lua: every limit of the key as of now, window-aware (src/limiter/read.ts). Nothing is
-- written. ARGV: now override, the policy. Returns {at, inFlight, remaining1, reset1, ...}.
local now = clock(ARGV[1])
local policy = read_policy(2)
local st = load(policy, now, KEYS[1])
local held = redis.call('ZCOUNT', KEYS[2], '(' .. fmt(st.at), '+inf')
local out = { st.at, held }
for k = 1, policy.n do
  local remaining, reset = read_one(policy.limits[k], st.limits[k], st.at)
  out[#out + 1] = remaining
  out[#out + 1] = reset
end
return out
