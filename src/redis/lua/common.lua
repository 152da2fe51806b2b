-- common.lua: the arithmetic of src/limiter, in Lua, for the Redis store. It is prepended to every
-- other script of this folder (see src/redis/scripts.ts), so each script is one atomic unit.
--
-- The numbers and the rules are the same as in src/limiter (tokenBucket.ts, slidingWindow.ts,
-- fixedWindow.ts, advance.ts, decide.ts, settle.ts): every amount is an integer-valued double, so
-- both sides compute bit-for-bit the same results. Values are written with '%.0f', which is exact
-- for integers up to 2^53 (the core keeps every amount below 2^51).
--
-- Layout of one key (its Redis keys share one hash tag, so one script touches one slot). The
-- functions below take the key names as arguments (ks, kc, kp), so that decide.lua can handle
-- several keys of one slot in one run; the other scripts pass KEYS[1], KEYS[2], KEYS[3]:
--   ks (KEYS[1])  hash:  'at' -> the latest instant the key was advanced to (time never goes back)
--                   'x' -> the instant the hash expires (renewed, with slack, only when too soon)
--                   'l:' .. name -> one limit's state, 'alg intervalMs limit data...':
--                      t I L used refunded emptiedAt    token bucket (used in scaled units; an
--                                                       empty bucket is 't I L 0', and a bucket
--                                                       without a cutoff leaves emptiedAt out)
--                      f I L start used                 fixed window
--                      s I L used at1 c1 at2 c2 ...     sliding window log
--   kc (KEYS[2])  zset:  concurrency slots held: member = grant id, score = instant the lease ends
--                   (LEASE_NONE for a slot without a lease TTL)
--   kp (KEYS[3])  string: the instant a pause ends (see pause.lua), expiring with it
--
-- Every script reads the policy from ARGV in the same layout (see read_policy), so a limit change
-- is just a call with another policy: the state is rebased the way src/limiter/advance.ts rebases.

local LEASE_NONE = 9007199254740991
-- MAX_SCALED of src/limiter/validate.ts: a token bucket's refund counter starts over above it.
local MAX_SCALED = 2251799813685247

local function fmt(x)
  return string.format('%.0f', x)
end

-- now: Redis' own clock in ms, unless the caller passes an instant (tests at fixed instants).
local function clock(override)
  if override ~= '' then
    return tonumber(override)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- read_policy reads n, then per limit (name, alg, limit, intervalMs, capacity), then concurrency
-- (-1 for none), from ARGV starting at i. It returns the policy and the next index.
local function read_policy(i)
  local n = tonumber(ARGV[i])
  i = i + 1
  local limits = {}
  for k = 1, n do
    limits[k] = {
      name = ARGV[i],
      alg = ARGV[i + 1],
      limit = tonumber(ARGV[i + 2]),
      interval = tonumber(ARGV[i + 3]),
      capacity = tonumber(ARGV[i + 4]),
    }
    i = i + 5
  end
  local conc = tonumber(ARGV[i])
  return { limits = limits, n = n, concurrency = conc }, i + 1
end

-- init: the state of a limit that has booked nothing, as of now.
local function init(l, now)
  if l.alg == 'f' then
    return { start = now - (now % l.interval), used = 0 }
  elseif l.alg == 's' then
    return { used = 0, log = {} }
  end
  return { used = 0, refunded = 0 }
end

local function parse(v)
  -- The token bucket and the fixed window have a fixed layout: one match, no table of words.
  local alg, interval, limit, a, b, c = string.match(v, '^(%a) (%d+) (%d+) (%d+) ?(%d*) ?(%d*)$')
  if alg == 't' then
    return {
      alg = alg,
      interval = tonumber(interval),
      limit = tonumber(limit),
      used = tonumber(a),
      refunded = tonumber(b) or 0,
      emptied = tonumber(c),
    }
  elseif alg == 'f' then
    return { alg = alg, interval = tonumber(interval), limit = tonumber(limit), start = tonumber(a), used = tonumber(b) }
  end
  local parts = {}
  for word in string.gmatch(v, '%S+') do
    parts[#parts + 1] = word
  end
  local s = { alg = parts[1], interval = tonumber(parts[2]), limit = tonumber(parts[3]) }
  if s.alg == 't' then
    s.used = tonumber(parts[4])
    s.refunded = tonumber(parts[5]) or 0
    s.emptied = tonumber(parts[6])
  elseif s.alg == 'f' then
    s.start = tonumber(parts[4])
    s.used = tonumber(parts[5])
  else
    s.used = tonumber(parts[4])
    local log = {}
    for k = 5, #parts do
      log[#log + 1] = tonumber(parts[k])
    end
    s.log = log
  end
  return s
end

local function serialize(l, s)
  local head = l.alg .. ' ' .. fmt(l.interval) .. ' ' .. fmt(l.limit) .. ' '
  if l.alg == 't' then
    if s.used == 0 then
      return head .. '0'
    elseif s.emptied == nil then
      return head .. fmt(s.used) .. ' ' .. fmt(s.refunded)
    end
    return head .. fmt(s.used) .. ' ' .. fmt(s.refunded) .. ' ' .. fmt(s.emptied)
  elseif l.alg == 'f' then
    return head .. fmt(s.start) .. ' ' .. fmt(s.used)
  end
  local out = { head .. fmt(s.used) }
  for k = 1, #s.log do
    out[#out + 1] = fmt(s.log[k])
  end
  return table.concat(out, ' ')
end

-- advance_one: refill and expiry of one limit from `from` to `now` (tokenBucket.advance, ...).
-- `l` carries alg, interval and limit (a policy limit or a stored state's own parameters).
local function advance_one(l, s, from, now)
  if l.alg == 't' then
    if s.used == 0 or now <= from then
      return s
    end
    local drained = l.limit * (now - from)
    if drained >= s.used then
      return { used = 0, refunded = 0 }
    end
    return { used = s.used - drained, refunded = s.refunded, emptied = s.emptied }
  elseif l.alg == 'f' then
    local elapsed = now - s.start
    if elapsed < l.interval then
      return s
    end
    local windows = math.floor(elapsed / l.interval)
    return { start = s.start + windows * l.interval, used = math.max(0, s.used - windows * l.limit) }
  end
  local log = s.log
  local i = 1
  local freed = 0
  while i <= #log and log[i] + l.interval <= now do
    freed = freed + log[i + 1]
    i = i + 2
  end
  if i == 1 then
    return s
  end
  local rest = {}
  for k = i, #log do
    rest[#rest + 1] = log[k]
  end
  return { used = s.used - freed, log = rest }
end

local function wait_one(l, s, units, now)
  if l.alg == 't' then
    local over = s.used + units * l.interval - l.capacity * l.interval
    if over <= 0 then
      return 0
    end
    return math.ceil(over / l.limit)
  elseif l.alg == 'f' then
    local over = s.used + units - l.limit
    if over <= 0 then
      return 0
    end
    return s.start + math.ceil(over / l.limit) * l.interval - now
  end
  local over = s.used + units - l.limit
  if over <= 0 then
    return 0
  end
  local log = s.log
  for k = 1, #log, 2 do
    over = over - log[k + 1]
    if over <= 0 then
      return log[k] + l.interval - now
    end
  end
  return l.interval
end

-- book_one mutates `s` (a state this script owns): it books `units` at `now`.
local function book_one(l, s, units, now)
  if units == 0 then
    return
  end
  if l.alg == 't' then
    if s.used == 0 then
      -- Booking into an empty bucket: every grant before holds nothing; the counter starts over.
      s.refunded = 0
      s.emptied = now
    end
    s.used = s.used + units * l.interval
  elseif l.alg == 'f' then
    s.used = s.used + units
  else
    local log = s.log
    local n = #log
    if n > 0 and log[n - 1] == now then
      log[n] = log[n] + units
    else
      log[n + 1] = now
      log[n + 2] = units
    end
    s.used = s.used + units
  end
end

-- mark_one: the mark a grant keeps of its booking, from the state right after it (tokenBucket.mark;
-- 0 for windows).
local function mark_one(l, s)
  if l.alg == 't' then
    return s.used + s.refunded
  end
  return 0
end

-- refund_one mutates `s`: gives back at most `units` booked at `grant_at` that the grant still
-- holds (what expired or refilled is gone). `mark` is the grant's mark, `whole` whether `units`
-- are all it holds in this limit (tokenBucket.refund).
local function refund_one(l, s, units, grant_at, now, mark, whole)
  if units == 0 then
    return
  end
  if l.alg == 't' then
    if s.used == 0 or (s.emptied ~= nil and grant_at < s.emptied) or grant_at > now then
      return
    end
    local ahead = mark - s.refunded
    local drained = l.limit * (now - grant_at)
    if drained >= ahead then
      return
    end
    local ends = ahead - drained
    local back = math.min(units * l.interval, s.used, ends)
    if back == s.used then
      s.used = 0
      s.refunded = 0
      s.emptied = nil
    elseif whole and ends >= s.used and back == units * l.interval then
      s.used = s.used - back
    elseif s.refunded + back > MAX_SCALED then
      s.used = s.used - back
      s.refunded = 0
      s.emptied = now + 1
    else
      s.used = s.used - back
      s.refunded = s.refunded + back
    end
  elseif l.alg == 'f' then
    if grant_at < s.start then
      return
    end
    s.used = s.used - math.min(units, s.used)
  else
    local log = s.log
    for k = #log - 1, 1, -2 do
      local at = log[k]
      if at < grant_at then
        return
      end
      if at == grant_at then
        local cost = log[k + 1]
        local back = math.min(units, cost)
        if back == cost then
          table.remove(log, k + 1)
          table.remove(log, k)
        else
          log[k + 1] = cost - back
        end
        s.used = s.used - back
        return
      end
    end
  end
end

-- read_one: units that fit now and ms until full capacity (the algorithms' read).
local function read_one(l, s, now)
  if l.alg == 't' then
    local free = l.capacity * l.interval - s.used
    local remaining = 0
    if free > 0 then
      remaining = math.floor(free / l.interval)
    end
    return remaining, math.ceil(s.used / l.limit)
  elseif l.alg == 'f' then
    local reset = 0
    if s.used ~= 0 then
      reset = s.start + math.ceil(s.used / l.limit) * l.interval - now
    end
    return math.max(0, l.limit - s.used), reset
  end
  local n = #s.log
  local reset = 0
  if n > 0 then
    reset = s.log[n - 1] + l.interval - now
  end
  return math.max(0, l.limit - s.used), reset
end

-- load: the key's state under `policy`, advanced to `now` (at least the stored instant), with
-- limits rebased by name as src/limiter/advance.ts rebase does. Returns the state and the fields
-- of limits the policy no longer has (to delete on save).
local function load(policy, now, ks)
  local raw = redis.call('HGETALL', ks)
  local fields = {}
  for k = 1, #raw, 2 do
    fields[raw[k]] = raw[k + 1]
  end
  local from = tonumber(fields['at'])
  local t = now
  if from == nil then
    from = now
  elseif from > now then
    t = from
  end
  local st = { at = t, limits = {} }
  local seen = { at = true, x = true }
  st.expires = tonumber(fields['x'])
  for k = 1, policy.n do
    local l = policy.limits[k]
    local field = 'l:' .. l.name
    local v = fields[field]
    seen[field] = true
    local s
    if v ~= nil then
      local old = parse(v)
      if old.alg == l.alg then
        s = advance_one(old, old, from, t)
        if l.alg == 't' then
          -- A new interval (marks in the old scale) or a lower rate (drain overestimated): grants
          -- booked up to now give back nothing here (advance.ts rebase).
          local same = old.interval == l.interval
          if not (same and l.limit >= old.limit) then
            local used = s.used
            if not same then
              used = math.ceil((s.used * l.interval) / old.interval)
            end
            if used == 0 then
              s = nil
            else
              s = { used = used, refunded = 0, emptied = t + 1 }
            end
          end
        elseif old.interval ~= l.interval then
          s = nil
        end
      end
    end
    st.limits[k] = s or init(l, t)
  end
  local stale = {}
  for f, _ in pairs(fields) do
    if not seen[f] then
      stale[#stale + 1] = f
    end
  end
  st.stale = stale
  return st
end

-- slots: concurrency slots held after dropping expired leases.
local function slots(now, kc)
  redis.call('ZREMRANGEBYSCORE', kc, '-inf', fmt(now))
  return redis.call('ZCARD', kc)
end

-- save writes the state back, or deletes it once every limit is back at full capacity. The hash
-- expires when it would be full anyway, and the slot set (when this run added slots to it) when
-- its last lease ends.
local function save(policy, st, now, ks, kc, slots_added)
  if #st.stale > 0 then
    redis.call('HDEL', ks, unpack(st.stale))
  end
  local ttl = 0
  local args = { 'at', fmt(st.at) }
  for k = 1, policy.n do
    local l = policy.limits[k]
    local s = st.limits[k]
    args[#args + 1] = 'l:' .. l.name
    args[#args + 1] = serialize(l, s)
    local _, reset = read_one(l, s, st.at)
    if reset > ttl then
      ttl = reset
    end
  end
  if ttl <= 0 then
    redis.call('DEL', ks)
  else
    -- The hash must live at least until `need`. Its expiry is set with as much slack again, and
    -- kept in field 'x', so most writes need no PEXPIRE: the key outlives its use by at most that.
    local need = st.at + ttl + 1
    if st.expires ~= nil and st.expires >= need then
      redis.call('HSET', ks, unpack(args))
    else
      local span = need - now
      args[#args + 1] = 'x'
      args[#args + 1] = fmt(now + 2 * span)
      redis.call('HSET', ks, unpack(args))
      redis.call('PEXPIRE', ks, fmt(2 * span))
    end
  end
  if not slots_added then
    return
  end
  local last = redis.call('ZRANGE', kc, -1, -1, 'WITHSCORES')
  if #last > 0 then
    local until_ms = tonumber(last[2])
    if until_ms >= LEASE_NONE then
      redis.call('PERSIST', kc)
    else
      redis.call('PEXPIRE', kc, fmt(math.max(1, until_ms - now + 1)))
    end
  end
end

-- paused_for: ms the key stays paused after now; 0 when it is not paused.
local function paused_for(now, kp)
  local until_ms = tonumber(redis.call('GET', kp))
  if until_ms == nil or until_ms <= now then
    return 0
  end
  return until_ms - now
end

local function read_units(i, n)
  local u = {}
  for k = 1, n do
    u[k] = tonumber(ARGV[i + k - 1])
  end
  return u, i + n
end
