-- clock.lua: whose time a script decides at (clock), the expiries it gives Redis (ttl_ms), and
-- the epochs of the states it creates (new_epoch, epoch_of). Prepended after arithmetic.lua and
-- before keyState.lua (see src/redis/scripts.ts); it uses nothing from the others.
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
