-- arithmetic.lua: the arithmetic of src/limiter, in Lua, for the Redis store: one limit's state
-- started (init), advanced for elapsed time (advance_one), asked how long a cost waits
-- (wait_one), booked (book_one, mark_one), refunded (refund_one) and read (read_one). It is the
-- first of the files prepended to the scripts that use them (see src/redis/scripts.ts:
-- arithmetic.lua, clock.lua, keyState.lua, in this order), and uses nothing from the others.
--
-- The numbers and the rules are the same as in src/limiter (tokenBucket.ts, slidingWindow.ts,
-- fixedWindow.ts, advance.ts, decide.ts, settle.ts): every amount is an integer-valued double, so
-- both sides compute bit-for-bit the same results (the core keeps every amount below 2^51).
--
-- A limit `l` carries alg ('t' token bucket, 'f' fixed window, 's' sliding window), interval,
-- limit and capacity (see read_policy in keyState.lua); a state `s` holds what one record of the
-- state string holds (see pack_record there).

-- MAX_SCALED of src/limiter/validate.ts: a token bucket's refund counter starts over above it.
local MAX_SCALED = 2251799813685247

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

-- wait_one: ms from `now` until `units` more fit in limit `l` (0: they fit now). `s` is not
-- changed.
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
