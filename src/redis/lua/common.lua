-- common.lua: the arithmetic of src/limiter, in Lua, for the Redis store. It is prepended to every
-- other script of this folder (see src/redis/scripts.ts), so each script is one atomic unit.
--
-- The numbers and the rules are the same as in src/limiter (tokenBucket.ts, slidingWindow.ts,
-- fixedWindow.ts, advance.ts, decide.ts, settle.ts): every amount is an integer-valued double, so
-- both sides compute bit-for-bit the same results (the core keeps every amount below 2^51).
--
-- Layout of one key (its Redis keys share one hash tag, so one script touches one slot). The
-- functions below take the key names as arguments (ks, kc), so that decide.lua can handle several
-- keys of one slot in one run; the other scripts pass KEYS[1], KEYS[2]:
--   ks (KEYS[1])  string: the state, packed with Redis' `struct` library (little-endian):
--                   a header of four doubles: the latest instant the key was advanced to (time
--                   never goes back), the instant the string expires (renewed, with slack, only
--                   when too soon), the instant a pause ends (0: none), the state's epoch (see
--                   below); then one record per limit: its algorithm, its name and its state (see
--                   pack_record). The name ':v3' marks this layout (':v2' had no epoch): a build
--                   with another layout reads none of it.
--   kc (KEYS[2])  zset:  concurrency slots held: member = grant id, score = instant the lease ends
--                   (LEASE_NONE for a slot without a lease TTL)
-- One string read and written whole is the cheapest layout measured here: a hash costs more per
-- call (HGETALL builds a table), and decimal text costs string.format and string.match per number.
-- Loading a key fills tables made once per policy and call (read_policy) rather than new ones.
-- Doubles are exact for every integer below 2^53. Numbers handed to redis.call are exact as they
-- are (Redis formats them with 17 significant digits).
--
-- Every script reads the policy from ARGV in the same layout (see read_policy), so a limit change
-- is just a call with another policy: the state is rebased the way src/limiter/advance.ts rebases.
--
-- Epochs (issue #10). A state string is one incarnation of the key: it is created by the first
-- booking (or pause) after the key had none, and it goes at a reset, or once it is back at full
-- capacity and unpaused (deleted or expired). Its epoch is the instant it was created, in
-- microseconds of Redis `TIME` (always the real TIME, even when the caller passes the instant to
-- decide at, so that tests at fixed instants cannot make two incarnations alike). Every grant
-- carries the epoch it was booked in; a settle or cancel of a grant of another epoch gives back
-- no units (what it booked went with its incarnation: a refund would give back a later grant's
-- booking), while its extra charge still books. Slots are not part of it: they are held by grant
-- id in the slot set, which a reset deletes, so freeing one by id is exact already.
-- Why two incarnations of one key cannot share an epoch in practice: Redis runs one script at a
-- time, and between two creations of a key's state there is at least one other script run (the
-- reset, or the bookings and refunds that brought it back to full capacity), each taking more than
-- the microsecond that TIME resolves. Only a wall clock stepped back on the Redis host, landing on
-- the exact microsecond an earlier incarnation of that key was created while one of its grants is
-- still unsettled, could repeat one; the cost would be that grant's refund, as before epochs.
-- Epochs are below 2^53 (microseconds until the year 2255), exact as doubles.

local LEASE_NONE = 9007199254740991
-- MAX_SCALED of src/limiter/validate.ts: a token bucket's refund counter starts over above it.
local MAX_SCALED = 2251799813685247
-- The least slack a key's expiry gets past the instant it must live to (see save): a busy key
-- renews its expiry at most about once per this many ms instead of at every write.
local EXPIRY_SLACK_MS = 100

local function fmt(x)
  return string.format('%.0f', x)
end

-- Redis TIME in microseconds as first read by this script run (nil until then): the epoch of the
-- states this run creates (see above).
local time_us = nil

local function read_time()
  local t = redis.call('TIME')
  time_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  return t
end

-- now: Redis' own clock in ms, unless the caller passes an instant (tests at fixed instants).
-- Under the test-only time override (`time: 'runtime'`), instants are the runtime's virtual ms,
-- which Redis' expiries would count as real ms: a test whose virtual time barely moves would see
-- its keys vanish while it runs. Expiries then get VIRTUAL_TTL_MS more (see ttl_ms); tests use a
-- prefix of their own and a server they stop.
local VIRTUAL_TTL_MS = 3600000
local virtual_time = false

-- ttl_ms: the expiry to give Redis for `ms` of the decision clock.
local function ttl_ms(ms)
  if virtual_time then
    return ms + VIRTUAL_TTL_MS
  end
  return ms
end

local function clock(override)
  if override ~= '' then
    virtual_time = true
    return tonumber(override)
  end
  local t = read_time()
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- new_epoch: the epoch of a state this run creates: real TIME in microseconds, read at most once
-- per run (a run never creates the same key's state twice).
local function new_epoch()
  if time_us == nil then
    read_time()
  end
  return time_us
end

-- epoch_of: the epoch of the loaded state `st`, given to it on first use when it is new.
local function epoch_of(st)
  if st.epoch == nil then
    st.epoch = new_epoch()
  end
  return st.epoch
end

-- read_policy reads n, then per limit (name, alg, limit, intervalMs, capacity), then concurrency
-- (-1 for none), from ARGV starting at i. It returns the policy and the next index. `index` maps a
-- limit's name to its position. Each limit also gets `s`, the table its state is loaded into
-- (see load), and the policy `st`, the table load returns: a script handles one key at a time,
-- so the tables are filled again for every key instead of built anew.
local function read_policy(i)
  local n = tonumber(ARGV[i])
  i = i + 1
  local limits = {}
  local index = {}
  local states = {}
  for k = 1, n do
    local s = {}
    limits[k] = {
      name = ARGV[i],
      alg = ARGV[i + 1],
      limit = tonumber(ARGV[i + 2]),
      interval = tonumber(ARGV[i + 3]),
      capacity = tonumber(ARGV[i + 4]),
      s = s,
    }
    states[k] = s
    index[ARGV[i]] = k
    i = i + 5
  end
  local conc = tonumber(ARGV[i])
  local st = { at = 0, limits = states, expires = nil, pause = 0, epoch = nil }
  -- found[k] == gen: the current load read limit k's record (see load).
  local policy = { limits = limits, index = index, n = n, concurrency = conc, st = st }
  policy.found, policy.gen = {}, 0
  return policy, i + 1
end

-- init fills `s` with the state of a limit that has booked nothing, as of now.
local function init(l, s, now)
  s.alg, s.interval, s.limit, s.used = l.alg, l.interval, l.limit, 0
  if l.alg == 't' then
    s.refunded, s.emptied = 0, nil
  elseif l.alg == 'f' then
    s.start = now - (now % l.interval)
  else
    s.log = {}
  end
end

-- One limit's record in the state string: its algorithm (1 byte) and its name behind its length
-- (4 bytes), then the parameters it was booked under (a limit change rebases from them) and its
-- state, as doubles:
--   t: interval, limit, used (scaled units), refunded, emptiedAt (-inf: none)   (token bucket)
--   f: interval, limit, window start, used                                      (fixed window)
--   s: interval, limit, used, then the entry count (4 bytes) and at1, c1, at2, c2, ...
-- Reading a record is one struct call for its head and one for its numbers, writing it one struct
-- call (a sliding window's entries aside).
local NONE = -math.huge

-- pack_record: the record of limit `l` (the policy's) with state `s`.
local function pack_record(l, s)
  local alg, name = l.alg, l.name
  if alg == 't' then
    return struct.pack('<c1I4c0ddddd', 't', #name, name, l.interval, l.limit, s.used, s.refunded,
      s.emptied or NONE)
  elseif alg == 'f' then
    return struct.pack('<c1I4c0dddd', 'f', #name, name, l.interval, l.limit, s.start, s.used)
  end
  local log = s.log
  local parts = { struct.pack('<c1I4c0dddI4', 's', #name, name, l.interval, l.limit, s.used, #log / 2) }
  for k = 1, #log, 2 do
    parts[#parts + 1] = struct.pack('<dd', log[k], log[k + 1])
  end
  return table.concat(parts)
end

-- read_numbers reads the numbers of a record of algorithm `alg` at `pos` of `v` (after its name)
-- into `s`, with `alg`, `interval` and `limit` as stored; without `s`, it only skips them. It
-- returns the position after the record.
local function read_numbers(alg, v, pos, s)
  if alg == 't' then
    if s == nil then
      return pos + 40
    end
    local interval, limit, used, refunded, emptied, nxt = struct.unpack('<ddddd', v, pos)
    if emptied == NONE then
      emptied = nil
    end
    s.alg, s.interval, s.limit, s.used, s.refunded, s.emptied =
      't', interval, limit, used, refunded, emptied
    return nxt
  elseif alg == 'f' then
    if s == nil then
      return pos + 32
    end
    local interval, limit, start, used, nxt = struct.unpack('<dddd', v, pos)
    s.alg, s.interval, s.limit, s.start, s.used = 'f', interval, limit, start, used
    return nxt
  end
  local interval, limit, used, count, nxt = struct.unpack('<dddI4', v, pos)
  if s == nil then
    return nxt + 16 * count
  end
  local log = {}
  for k = 1, 2 * count, 2 do
    log[k], log[k + 1], nxt = struct.unpack('<dd', v, nxt)
  end
  s.alg, s.interval, s.limit, s.used, s.log = 's', interval, limit, used, log
  return nxt
end

-- advance_one mutates `s`: refill and expiry of one limit from `from` to `now` (tokenBucket.advance,
-- ...). `l` carries alg, interval and limit (a policy limit or a stored state's own parameters).
local function advance_one(l, s, from, now)
  if l.alg == 't' then
    if s.used == 0 or now <= from then
      return
    end
    local drained = l.limit * (now - from)
    if drained >= s.used then
      s.used, s.refunded, s.emptied = 0, 0, nil
    else
      s.used = s.used - drained
    end
  elseif l.alg == 'f' then
    local elapsed = now - s.start
    if elapsed >= l.interval then
      local windows = math.floor(elapsed / l.interval)
      s.start = s.start + windows * l.interval
      s.used = math.max(0, s.used - windows * l.limit)
    end
  else
    local log = s.log
    local n = #log
    local i = 1
    local freed = 0
    while i <= n and log[i] + l.interval <= now do
      freed = freed + log[i + 1]
      i = i + 2
    end
    if i > 1 then
      local rest = {}
      for k = i, n do
        rest[#rest + 1] = log[k]
      end
      s.log = rest
      s.used = s.used - freed
    end
  end
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
-- limits rebased by name as src/limiter/advance.ts rebase does (a limit the policy no longer has
-- is dropped on save). The state carries the string's expiry, the pause and the epoch (nil for a
-- key without a state string: see epoch_of). It is the policy's `st`, filled again: it is good
-- until the next load under the same policy.
local function load(policy, now, ks)
  local v = redis.call('GET', ks)
  local st = policy.st
  local limits = policy.limits
  local n = policy.n
  local from, expires, pause, epoch = nil, nil, 0, nil
  -- found[k] == gen: the stored record of limit k was read into its state by this load.
  local gen = policy.gen + 1
  policy.gen = gen
  local found = policy.found
  -- changed: the stored state was saved under another policy (a record dropped, added, or with
  -- other parameters), so even a refusal writes the rebased state back (see decide.lua).
  local changed = false
  if v then
    local pos
    from, expires, pause, epoch, pos = struct.unpack('<dddd', v)
    local index = policy.index
    local size = #v
    while pos <= size do
      local alg, name
      alg, name, pos = struct.unpack('<c1I4c0', v, pos)
      local j = index[name]
      if j ~= nil and limits[j].alg == alg then
        pos = read_numbers(alg, v, pos, limits[j].s)
        found[j] = gen
      else
        pos = read_numbers(alg, v, pos, nil)
        changed = true
      end
    end
  end
  local t = now
  if from == nil then
    from = now
  elseif from > now then
    t = from
  end
  for k = 1, n do
    local l = limits[k]
    local s = l.s
    local fresh = found[k] ~= gen
    if fresh then
      changed = changed or v ~= nil
    else
      -- s holds the stored state with the parameters it was booked under.
      local interval, limit = s.interval, s.limit
      if interval ~= l.interval or limit ~= l.limit then
        changed = true
      end
      advance_one(s, s, from, t)
      if l.alg == 't' then
        -- A new interval (marks in the old scale) or a lower rate (drain overestimated): grants
        -- booked up to now give back nothing here (advance.ts rebase).
        local same = interval == l.interval
        if not (same and l.limit >= limit) then
          local used = s.used
          if not same then
            used = math.ceil((s.used * l.interval) / interval)
          end
          if used == 0 then
            fresh = true
          else
            s.used, s.refunded, s.emptied = used, 0, t + 1
          end
        end
      elseif interval ~= l.interval then
        fresh = true
      end
      s.interval, s.limit = l.interval, l.limit
    end
    if fresh then
      init(l, s, t)
    end
  end
  st.at, st.expires, st.pause, st.changed, st.epoch = t, expires, pause, changed, epoch
  return st
end

-- slots: concurrency slots held after dropping expired leases.
local function slots(now, kc)
  redis.call('ZREMRANGEBYSCORE', kc, '-inf', now)
  return redis.call('ZCARD', kc)
end

-- save writes the state back, or deletes it once every limit is back at full capacity and no
-- pause is on. The string expires when it would be full (and unpaused) anyway, and the slot set
-- (when this run added slots to it) when its last lease ends.
local function save(policy, st, now, ks, kc, slots_added)
  local ttl = 0
  local n = policy.n
  local limits = policy.limits
  for k = 1, n do
    local _, reset = read_one(limits[k], st.limits[k], st.at)
    if reset > ttl then
      ttl = reset
    end
  end
  local pause = st.pause
  if pause <= now then
    pause = 0
  end
  if ttl <= 0 and pause == 0 then
    redis.call('DEL', ks)
  else
    local body
    if n == 1 then
      body = pack_record(limits[1], st.limits[1])
    else
      local parts = {}
      for k = 1, n do
        parts[k] = pack_record(limits[k], st.limits[k])
      end
      body = table.concat(parts)
    end
    -- The string must live at least until `need`. Its expiry is set with as much slack again (at
    -- least EXPIRY_SLACK_MS), and kept in the header, so most writes keep the expiry they have:
    -- the key outlives its use by at most that.
    local need = math.max(st.at + ttl + 1, pause + 1)
    local expires = st.expires
    if expires == nil or expires < need then
      local span = need - now
      expires = now + span + math.max(span, EXPIRY_SLACK_MS)
      local head = struct.pack('<dddd', st.at, expires, pause, epoch_of(st))
      redis.call('SET', ks, head .. body, 'PX', ttl_ms(expires - now))
    else
      redis.call('SET', ks, struct.pack('<dddd', st.at, expires, pause, epoch_of(st)) .. body, 'KEEPTTL')
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
      redis.call('PEXPIRE', kc, ttl_ms(math.max(1, until_ms - now + 1)))
    end
  end
end

-- paused_for: ms the key (its loaded state `st`) stays paused after now; 0 when it is not paused.
local function paused_for(now, st)
  if st.pause <= now then
    return 0
  end
  return st.pause - now
end

local function read_units(i, n)
  local u = {}
  for k = 1, n do
    u[k] = tonumber(ARGV[i + k - 1])
  end
  return u, i + n
end
