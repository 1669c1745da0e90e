"""The two Lua scripts behind RedisCounters (proxy_app.ledger.counters): reserve and settle.

Each runs atomically in Redis; MemoryCounters mirrors them step for step.
"""

# KEYS: one per slot. ARGV: now, member, lease_until, want, need, then per slot: mode, limit,
# amount, ttl, seed, rate. Integer maths on Lua doubles: exact below 2^53, and the divisions are
# corrected to exact floor/ceil, so the script and Slot.at/grant agree to the unit.
RESERVE_LUA = """
local S = 1000000
local function floor_div(x, d)
  local q = math.floor(x / d)
  while q * d > x do q = q - 1 end
  while (q + 1) * d <= x do q = q + 1 end
  return q
end
local function amount_at(a, output)
  local rate = tonumber(ARGV[a + 6])
  if rate == 0 then return tonumber(ARGV[a + 3]) end
  return tonumber(ARGV[a + 3]) - floor_div(-output * rate, S)
end
local missing = {}
for i = 1, #KEYS do
  local a = 5 + (i - 1) * 6
  if ARGV[a + 1] == 'seeded' then
    if tonumber(ARGV[a + 5]) >= 0 then
      redis.call('SET', KEYS[i], ARGV[a + 5], 'EX', ARGV[a + 4], 'NX')
    elseif redis.call('EXISTS', KEYS[i]) == 0 then
      missing[#missing + 1] = i - 1
    end
  end
end
if #missing > 0 then
  return {'missing', missing}
end
local used = {}
for i = 1, #KEYS do
  local a = 5 + (i - 1) * 6
  if ARGV[a + 1] == 'lease' then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ARGV[1])
    used[i] = redis.call('ZCARD', KEYS[i])
  else
    used[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
  end
end
local output, tight = tonumber(ARGV[4]), nil
for i = 1, #KEYS do
  local a = 5 + (i - 1) * 6
  local rate = tonumber(ARGV[a + 6])
  if rate > 0 then
    local room = tonumber(ARGV[a + 2]) - used[i] - tonumber(ARGV[a + 3])
    if room < 0 then
      return {'refused', i - 1, used[i]}
    end
    if amount_at(a, output) - tonumber(ARGV[a + 3]) > room then
      output, tight = floor_div(room * S, rate), i
    end
  end
end
if output < tonumber(ARGV[5]) then
  return {'refused', tight - 1, used[tight]}
end
for i = 1, #KEYS do
  local a = 5 + (i - 1) * 6
  if used[i] + amount_at(a, output) > tonumber(ARGV[a + 2]) then
    return {'refused', i - 1, used[i]}
  end
end
for i = 1, #KEYS do
  local a = 5 + (i - 1) * 6
  if ARGV[a + 1] == 'lease' then
    redis.call('ZADD', KEYS[i], ARGV[3], ARGV[2])
    redis.call('EXPIRE', KEYS[i], ARGV[a + 4])
  else
    if ARGV[a + 1] == 'count' then
      redis.call('SET', KEYS[i], 0, 'EX', ARGV[a + 4], 'NX')
    end
    redis.call('INCRBY', KEYS[i], string.format('%d', amount_at(a, output)))
  end
end
return {'ok', used, output}
"""

# KEYS: one per operation. ARGV: per operation: mode (adjust|create|release), delta or member, ttl.
SETTLE_LUA = """
for i = 1, #KEYS do
  local a = (i - 1) * 3
  local mode = ARGV[a + 1]
  if mode == 'release' then
    redis.call('ZREM', KEYS[i], ARGV[a + 2])
  else
    if mode == 'create' then
      redis.call('SET', KEYS[i], 0, 'EX', ARGV[a + 3], 'NX')
    end
    if redis.call('EXISTS', KEYS[i]) == 1 and redis.call('INCRBY', KEYS[i], ARGV[a + 2]) < 0 then
      redis.call('SET', KEYS[i], 0, 'KEEPTTL')
    end
  end
end
return #KEYS
"""
