-- settle.lua: move a grant from the units it booked to the actual units (src/limiter/settle.ts):
-- each limit gets back the difference when actual is lower (to the entry or window the grant
-- booked, if still there) and is charged the difference now when higher. With `free` = 1 the
-- grant's slot is given back too (cancel: actual units all 0). A grant of another epoch than the
-- key's state (see clock.lua), or with none, gets no units back; its extra charge books, and its
-- slot is freed by id (exact: a reset deleted the slots of before). ARGV: now override, the
-- policy, grant id, grant instant, grant epoch ('' for none), free (1/0), the channel to announce
-- freed capacity on, booked units, actual units, the grant's marks (one per limit, 0 for none),
-- the key's name (the announcement). KEYS: the state, the slot set, the store's marker (see
-- keyState.lua). Returns {gave, generation, lost}: gave is 1 when something was given back (units
-- or the slot), else 0; the marker's generation; lost is 1 when the key's state was lost (see
-- marker in keyState.lua), else 0.
local now = clock(ARGV[1])
local policy, i = read_policy(2)
local id = ARGV[i]
local grant_at = tonumber(ARGV[i + 1])
local epoch = tonumber(ARGV[i + 2])
local free = ARGV[i + 3] == '1'
local channel = ARGV[i + 4]
local booked, actual
booked, i = read_units(i + 5, policy.n)
actual, i = read_units(i, policy.n)
local marks = read_units(i, policy.n)
local gen = marker(KEYS[3])
local st = load(policy, now, KEYS[1], KEYS[3])
-- A state without a string yet (epoch nil) is a new incarnation: no grant holds anything in it.
local holds = epoch ~= nil and st.epoch == epoch
local gave = 0
for k = 1, policy.n do
  local delta = actual[k] - booked[k]
  if delta < 0 and holds then
    gave = 1
    refund_one(policy.limits[k], st.limits[k], -delta, grant_at, st.at, marks[k], actual[k] == 0)
  elseif delta > 0 then
    book_one(policy.limits[k], st.limits[k], delta, st.at)
  end
end
if free and redis.call('ZREM', KEYS[2], id) == 1 then
  gave = 1
end
save(policy, st, now, KEYS[1], KEYS[2], false, KEYS[3])
if gave == 1 then
  redis.call('PUBLISH', channel, ARGV[#ARGV])
end
return { gave, gen, st.lost and 1 or 0 }
