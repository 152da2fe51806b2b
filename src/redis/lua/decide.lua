-- decide.lua: decide the queued requests of one or more keys (all in one cluster slot), each
-- request all-or-nothing over every limit of its key and a concurrency slot
-- (src/limiter/decide.ts). Deciding many keys per run is what lets the store send one call for
-- the requests of many keys instead of one per key.
--
-- KEYS: per key, in the order of the groups, its state and its slot set (see keyState.lua; the
-- slot set also when the requests carry no slot fields: save() looks at it before it forgets a
-- key); last, the store's marker for the slot (see marker in keyState.lua).
-- ARGV: the time ('' = Redis TIME for every group, 'each' = every group starts with its own
-- instant: tests at fixed instants); the number of policies, then each policy (see
-- read_policy); the grant id of every request with slot fields, in order; last, the groups, as
-- one string of integers and letters separated by ',' (one argument instead of a few per
-- request: each argument costs the client and Redis a little). Per group (one key): [its
-- instant,] the mode ('q' stops at the first refusal, 'e' goes on; in capitals, the requests
-- carry slot fields: the runtime sends them when the policy has a concurrency limit or a
-- request holds a slot), the policy's number, the request count, then per request one amount
-- per limit and, with slot fields, slot (1/0) and lease ms (-1 = none).
-- Returns one flat list (nested tables cost Redis a lookup of 'ok' and 'err' each): the marker's
-- generation, then per group: 1 when the key's state was lost (see load) else 0, the number of
-- requests decided, then per request either 1, at, epoch, mark1, ..., markN
-- (granted at `at` in the state of epoch `epoch`, with the grant's mark per limit: see mark_one
-- in arithmetic.lua, and epochs in clock.lua) or 0, retryAfterMs, limit.
local own_time = ARGV[1] == 'each'
virtual_time = own_time
local now = nil
if not own_time then
  now = clock('')
end
local policies = {}
local i = 3
for p = 1, tonumber(ARGV[2]) do
  policies[p], i = read_policy(i)
end
local ids = i -- the next grant id
local km = KEYS[#KEYS]
local tok = string.gmatch(ARGV[#ARGV], '[^,]+')
local kidx = 1
local out = { marker(km) }
local o = 1
local units = {}

-- next_request reads one request of a group with `n` limits into `units`, and returns its grant
-- id, whether it takes a slot and its lease ms (nil, false, -1 without slot fields). Every request
-- is read, decided or not, so the next group starts where it should.
local function next_request(n, slotted)
  for k = 1, n do
    units[k] = tonumber(tok())
  end
  if not slotted then
    return nil, false, -1
  end
  local id = ARGV[ids]
  ids = ids + 1
  return id, tok() == '1', tonumber(tok())
end

local mode = tok()
while mode ~= nil do
  if own_time then
    now = tonumber(mode)
    mode = tok()
  end
  local queue = mode == 'q' or mode == 'Q'
  local slotted = mode == 'Q' or mode == 'E'
  local policy = policies[tonumber(tok())]
  local n = policy.n
  local limits = policy.limits
  local conc = policy.concurrency
  local ks, kc = KEYS[kidx], KEYS[kidx + 1]
  kidx = kidx + 2
  local count = tonumber(tok())
  local answered = o + 2 -- where this group's count goes, after its loss
  local decided = 0
  o = o + 2
  local st = load(policy, now, ks, km)
  out[answered - 1] = st.lost and 1 or 0
  local paused = paused_for(now, st)
  if paused > 0 then
    -- Paused: every request is refused for the time left ('queue' mode answers for the first only).
    for k = 1, count do
      if k == 1 or not queue then
        out[o + 1], out[o + 2], out[o + 3] = 0, paused, 'paused'
        o = o + 3
        decided = decided + 1
      end
      next_request(n, slotted)
    end
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
      local id, slot, lease = next_request(n, slotted)
      if not stopped then
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
          out[o + 1], out[o + 2], out[o + 3] = 1, t, epoch_of(st)
          o = o + 3
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
    -- A refusal writes nothing, unless the state was saved under another policy: then this
    -- decision takes the key under the new one, as the memory store does.
    if booked or st.changed then
      save(policy, st, now, ks, kc, slots_added, km)
    end
  end
  out[answered] = decided
  mode = tok()
end
return out
