-- keyState.lua: how one key's state is kept in Redis, and the helpers the scripts share to read
-- and write it: the policy read from ARGV (read_policy), the records of the state string
-- (pack_record, read_numbers), load and save, the slot set (slots), pauses (paused_for) and units
-- read from ARGV (read_units). Prepended last, after arithmetic.lua and clock.lua, whose functions
-- it uses (see src/redis/scripts.ts).
--
-- Layout of one key (its Redis keys share one hash tag, so one script touches one slot). The
-- functions below take the key names as arguments (ks, kc), so that decide.lua can handle several
-- keys of one slot in one run; the other scripts pass KEYS[1], KEYS[2]:
--   ks (KEYS[1])  string: the state, packed with Redis' `struct` library (little-endian):
--                   a header of four doubles: the latest instant the key was advanced to (time
--                   never goes back), the instant the string expires (renewed, with slack, only
--                   when too soon), the instant a pause ends (0: none), the state's epoch (see
--                   clock.lua); then one record per limit: its algorithm, its name and its
--                   state (see pack_record). The name ':v3' marks this layout (':v2' had no
--                   epoch): a build with another layout reads none of it.
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

local LEASE_NONE = 9007199254740991
-- The least slack a key's expiry gets past the instant it must live to (see save): a busy key
-- renews its expiry at most about once per this many ms instead of at every write.
local EXPIRY_SLACK_MS = 100

local function fmt(x)
  return string.format('%.0f', x)
end

-- The store's marker (#12): a sorted set with no expiry, one per cluster slot (one in all on a
-- single Redis; see markerName in src/redis/keys.ts), that tells a script whether Redis lost the
-- store's data.
--   - Its first member, scored -inf, is the generation: '#' and the Redis TIME in microseconds
--     at which the marker was made. A FLUSHALL or FLUSHDB, a restart without persistence, a
--     failover to an empty replica (or an eviction of the marker itself) takes it away: the next
--     decide or settle makes a new one and answers it, and a store that had seen another one
--     tells its system that the slot's data was lost (see src/redis/redisStore.ts).
--   - Every other member is the name of a state string that holds something, scored with the
--     instant its expiry ends (the header's `expires`, on the decision clock; see save). A
--     state string that is missing while its member says it still lives was deleted by someone
--     other than these scripts: evicted under maxmemory with an allkeys-* policy, or a DEL. load
--     reports it (st.lost). Members are written only when the expiry is renewed, and removed when
--     the state is deleted, found lost, or (a few at a time) expired: a call costs one ZRANGE more,
--     and a ZSCORE for a key without a state string.
-- Compromise: a loss in the last LOSS_MARGIN_MS before the string's expiry is taken for the
-- expiry itself (Redis expires a key on its own clock, which may run a little ahead of TIME as
-- the script read it). The state then needed at most that margin more of its life.
local LOSS_MARGIN_MS = 10

-- marker: the generation of the marker `km`, made now when it is missing.
local function marker(km)
  local first = redis.call('ZRANGE', km, 0, 0, 'WITHSCORES')
  if first[1] ~= nil and first[2] == '-inf' then
    return first[1]
  end
  local gen = '#' .. fmt(new_epoch())
  redis.call('ZADD', km, '-inf', gen)
  return gen
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
  local st = { at = 0, limits = states, expires = nil, pause = 0, epoch = nil, lost = false }
  -- found[k] == gen: the current load read limit k's record (see load).
  local policy = { limits = limits, index = index, n = n, concurrency = conc, st = st }
  policy.found, policy.gen = {}, 0
  return policy, i + 1
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

-- load: the key's state under `policy`, advanced to `now` (at least the stored instant), with
-- limits rebased by name as src/limiter/advance.ts rebase does (a limit the policy no longer has
-- is dropped on save). The state carries the string's expiry, the pause and the epoch (nil for a
-- key without a state string: see epoch_of). It is the policy's `st`, filled again: it is good
-- until the next load under the same policy. Given the marker `km`, load also tells whether the
-- string was lost (st.lost: see marker).
local function load(policy, now, ks, km)
  local v = redis.call('GET', ks)
  local st = policy.st
  -- lost: the marker `km` says the string should be there (see marker); the member goes, so the
  -- loss is told once.
  local lost = false
  if not v and km ~= nil then
    local until_ms = redis.call('ZSCORE', km, ks)
    if until_ms then
      lost = now < tonumber(until_ms) - LOSS_MARGIN_MS
      redis.call('ZREM', km, ks)
    end
  end
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
  -- restarted: a stored limit's state is dropped, or a window's is started anew (another
  -- interval): grants booked before hold units in a state that is gone, so the key takes a new
  -- epoch (advance.ts restarts; the memory store does the same).
  local restarted = false
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
        restarted = true
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
        restarted = true
      end
      s.interval, s.limit = l.interval, l.limit
    end
    if fresh then
      init(l, s, t)
    end
  end
  if restarted then
    epoch = nil -- a new one at the next save (epoch_of)
  end
  st.at, st.expires, st.pause, st.changed, st.epoch = t, expires, pause, changed, epoch
  st.lost = lost
  return st
end

-- slots: concurrency slots held after dropping expired leases.
local function slots(now, kc)
  redis.call('ZREMRANGEBYSCORE', kc, '-inf', now)
  return redis.call('ZCARD', kc)
end

-- save writes the state back, or deletes it once every limit is back at full capacity and no
-- pause is on. The string expires when it would be full (and unpaused) anyway, and the slot set
-- (when this run added slots to it) when its last lease ends. Given the marker `km`, the string's
-- member there follows (see marker).
local function save(policy, st, now, ks, kc, slots_added, km)
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
  -- A key back at full capacity, unpaused and holding no slot is forgotten (its latest instant
  -- with it), as the memory store drops such an entry; one holding a slot keeps its state until
  -- it expires, as the memory store keeps its entry (the stores then agree even when the clock
  -- steps back: both book at the same instant).
  if ttl <= 0 and pause == 0 and (kc == nil or redis.call('ZCOUNT', kc, '(' .. now, '+inf') == 0) then
    redis.call('DEL', ks)
    if km ~= nil and st.expires ~= nil then
      redis.call('ZREM', km, ks)
    end
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
      -- A new member takes up to 8 members of strings that expired with it: expired members go
      -- at least as fast as new ones come (while any are left), and no call removes many.
      if km ~= nil and redis.call('ZADD', km, expires, ks) == 1 then
        local stale = redis.call('ZRANGEBYSCORE', km, '(-inf', now - LOSS_MARGIN_MS, 'LIMIT', 0, 8)
        if #stale > 0 then
          redis.call('ZREM', km, unpack(stale))
        end
      end
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
