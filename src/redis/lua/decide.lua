-- decide.lua: decide the queued requests of one or more keys (all in one cluster slot), each
-- request all-or-nothing over every limit of its key and a concurrency slot
-- (src/limiter/decide.ts). Deciding many keys per run is what lets the store send one call for
-- the requests of many keys instead of one per key.
--
-- KEYS: per key, in the order of the groups, its state and (only when its requests carry slot
-- fields, see the mode) its slot set; see common.lua.
-- ARGV: the group count; the time ('' = Redis TIME for every group, 'each' = every group starts
-- with its own instant: tests at fixed instants); then per group (one key): [its instant,] the
-- mode ('q' stops at the first refusal, 'e' goes on; in capitals, the requests carry slot fields:
-- the runtime sends them when the policy has a concurrency limit or a request holds a slot), the
-- policy ('=' for the previous group's), the request count, then per request one amount per limit
-- and, with slot fields, its id, slot (1/0) and lease ms (-1 = none). Every argument is a string
-- Redis parses and Lua reads: the fewer per request, the cheaper a call is on both sides.
-- Returns one flat list (nested tables cost Redis a lookup of 'ok' and 'err' each): per group,
-- the number of requests decided, then per request either 1, at, mark1, ..., markN (granted at
-- `at`, with the grant's mark per limit: see mark_one) or 0, retryAfterMs, limit.
local groups = tonumber(ARGV[1])
local own_time = ARGV[2] == 'each'
local now = nil
if not own_time then
  now = clock('')
end
local i = 3
local kidx = 1
local policy = nil
local out = {}
local o = 0
local units = {}
for g = 1, groups do
  if own_time then
    now = tonumber(ARGV[i])
    i = i + 1
  end
  local mode = ARGV[i]
  local queue = mode == 'q' or mode == 'Q'
  local slotted = mode == 'Q' or mode == 'E'
  if ARGV[i + 1] == '=' then
    i = i + 2
  else
    policy, i = read_policy(i + 1)
  end
  local n = policy.n
  local limits = policy.limits
  local conc = policy.concurrency
  local per = n -- arguments per request
  local ks, kc = KEYS[kidx], nil
  kidx = kidx + 1
  if slotted then
    kc = KEYS[kidx]
    kidx = kidx + 1
    per = n + 3
  end
  local count = tonumber(ARGV[i])
  i = i + 1
  local answered = o + 1 -- where this group's count goes
  local decided = 0
  o = o + 1
  local st = load(policy, now, ks)
  local paused = paused_for(now, st)
  if paused > 0 then
    -- Paused: every request is refused for the time left ('queue' mode answers for the first only).
    for k = 1, count do
      if k == 1 or not queue then
        out[o + 1], out[o + 2], out[o + 3] = 0, paused, 'paused'
        o = o + 3
        decided = decided + 1
      end
    end
    i = i + count * per
  else
    local t = st.at
    local state = st.limits
    local inflight = 0
    if conc >= 0 then
      inflight = slots(t, kc)
    end
    local booked, slots_added = false, false
    local stopped = false
    for _ = 1, count do
      if stopped then
        i = i + per
      else
        for k = 1, n do
          units[k] = tonumber(ARGV[i + k - 1])
        end
        local id, slot, lease = nil, false, -1
        if slotted then
          id = ARGV[i + n]
          slot = ARGV[i + n + 1] == '1'
          lease = tonumber(ARGV[i + n + 2])
        end
        i = i + per
        local retry, by = 0, 0
        for k = 1, n do
          local w = wait_one(limits[k], state[k], units[k], t)
          if w > retry then
            retry, by = w, k
          end
        end
        decided = decided + 1
        local refused = true
        if slot and conc >= 0 and inflight >= conc then
          out[o + 1], out[o + 2], out[o + 3] = 0, retry, 'concurrency'
          o = o + 3
        elseif by > 0 then
          out[o + 1], out[o + 2], out[o + 3] = 0, retry, limits[by].name
          o = o + 3
        else
          refused = false
          out[o + 1], out[o + 2] = 1, t
          o = o + 2
          for k = 1, n do
            book_one(limits[k], state[k], units[k], t)
            o = o + 1
            out[o] = mark_one(limits[k], state[k])
          end
          if slot then
            local until_ms = LEASE_NONE
            if lease >= 0 then
              until_ms = t + lease
            end
            redis.call('ZADD', kc, until_ms, id)
            inflight = inflight + 1
            slots_added = true
          end
          booked = true
        end
        stopped = refused and queue
      end
    end
    if booked then
      save(policy, st, now, ks, kc, slots_added)
    end
  end
  out[answered] = decided
end
return out
