-- decide.lua: decide a batch of one key's requests, each all-or-nothing over every limit and a
-- concurrency slot (src/limiter/decide.ts). ARGV: now override ('' = Redis TIME), mode ('queue'
-- stops at the first refusal, 'each' goes on), the policy, the request count, then per request:
-- id, slot (1/0), lease ms (-1 = none), one amount per limit.
-- Returns one reply per request decided: {1, at, mark1, ..., markN} granted at `at` with the
-- grant's mark per limit (see mark_one), or {0, retryAfterMs, limit}.
local now = clock(ARGV[1])
local mode = ARGV[2]
local policy, i = read_policy(3)
local paused = paused_for(now)
if paused > 0 then
  -- Paused: every request is refused for the time left ('queue' mode answers for the first only).
  local count = tonumber(ARGV[i])
  if mode == 'queue' then
    count = 1
  end
  local out = {}
  for k = 1, count do
    out[k] = { 0, paused, 'paused' }
  end
  return out
end
local st = load(policy, now)
local t = st.at
local inflight = slots(t)
local count = tonumber(ARGV[i])
i = i + 1
local out = {}
local booked = false
for _ = 1, count do
  local id = ARGV[i]
  local slot = ARGV[i + 1] == '1'
  local lease = tonumber(ARGV[i + 2])
  local units
  units, i = read_units(i + 3, policy.n)
  local retry, by = 0, 0
  for k = 1, policy.n do
    local w = wait_one(policy.limits[k], st.limits[k], units[k], t)
    if w > retry then
      retry, by = w, k
    end
  end
  if slot and policy.concurrency >= 0 and inflight >= policy.concurrency then
    out[#out + 1] = { 0, retry, 'concurrency' }
  elseif by > 0 then
    out[#out + 1] = { 0, retry, policy.limits[by].name }
  else
    local reply = { 1, t }
    for k = 1, policy.n do
      book_one(policy.limits[k], st.limits[k], units[k], t)
      reply[k + 2] = mark_one(policy.limits[k], st.limits[k])
    end
    if slot then
      local until_ms = LEASE_NONE
      if lease >= 0 then
        until_ms = t + lease
      end
      redis.call('ZADD', KEYS[2], fmt(until_ms), id)
      inflight = inflight + 1
    end
    booked = true
    out[#out + 1] = reply
  end
  if out[#out][1] == 0 and mode == 'queue' then
    break
  end
end
if booked then
  save(policy, st, now)
end
return out
