-- decide.lua: decide the queued requests of one or more keys (all in one cluster slot), each
-- request all-or-nothing over every limit of its key and a concurrency slot
-- (src/limiter/decide.ts). Deciding many keys per run is what lets the store send one call per
-- tick instead of one per key.
--
-- KEYS: three per key (state, slots, pause; see common.lua), in the order of the groups.
-- ARGV: the group count, then per group (one key): now override ('' = Redis TIME), mode ('queue'
-- stops at the first refusal, 'each' goes on), the policy ('=' for the previous group's), the
-- request count, then per request: id, slot (1/0), lease ms (-1 = none), one amount per limit.
-- Returns one reply per group: a list with one entry per request decided, {1, at, mark1, ...,
-- markN} granted at `at` with the grant's mark per limit (see mark_one), or {0, retryAfterMs,
-- limit}.
local redis_now = nil
local groups = tonumber(ARGV[1])
local i = 2
local policy = nil
local replies = {}
for g = 1, groups do
  local ks, kc, kp = KEYS[3 * g - 2], KEYS[3 * g - 1], KEYS[3 * g]
  local now
  if ARGV[i] ~= '' then
    now = tonumber(ARGV[i])
  else
    redis_now = redis_now or clock('')
    now = redis_now
  end
  local mode = ARGV[i + 1]
  if ARGV[i + 2] == '=' then
    i = i + 3
  else
    policy, i = read_policy(i + 2)
  end
  local count = tonumber(ARGV[i])
  i = i + 1
  local out = {}
  local paused = paused_for(now, kp)
  if paused > 0 then
    -- Paused: every request is refused for the time left ('queue' mode answers for the first only).
    for k = 1, count do
      if k == 1 or mode ~= 'queue' then
        out[k] = { 0, paused, 'paused' }
      end
    end
    i = i + count * (3 + policy.n)
  else
    local st = load(policy, now, ks)
    local t = st.at
    local inflight = 0
    if policy.concurrency >= 0 then
      inflight = slots(t, kc)
    end
    local booked, slots_added = false, false
    local stopped = false
    for _ = 1, count do
      local id = ARGV[i]
      local slot = ARGV[i + 1] == '1'
      local lease = tonumber(ARGV[i + 2])
      local units
      units, i = read_units(i + 3, policy.n)
      if not stopped then
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
            redis.call('ZADD', kc, fmt(until_ms), id)
            inflight = inflight + 1
            slots_added = true
          end
          booked = true
          out[#out + 1] = reply
        end
        stopped = out[#out][1] == 0 and mode == 'queue'
      end
    end
    if booked then
      save(policy, st, now, ks, kc, slots_added)
    end
  end
  replies[g] = out
end
return replies
