"""
The Lua scripts of L{jobmon.server.cluster.redisstore.RedisStore}: each is
one call, atomic in Redis, and keeps a record and its indexes consistent.
Reads of many values answer one JSON string (C{cjson}), cheaper to read
than a reply of many values.
"""

_RECORD = """
local function record(prefix, id)
  local h = redis.call('HGETALL', prefix .. 'job:' .. id)
  if #h == 0 then return nil end
  local r = {job_id = id}
  for i = 1, #h, 2 do r[h[i]] = h[i + 1] end
  return r
end
"""

# KEYS: job, reserved, jobs, owner set.  ARGV: id, owner, server, replace,
# prefix, field, value...
CLAIM = """
local id, owner, server, replace, prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local old = redis.call('HMGET', KEYS[1], 'owner', 'server')
if old[1] then
  if old[1] ~= owner then return 'owner\\n' .. old[1] end
else
  local reserved = redis.call('GET', KEYS[2])
  if reserved and reserved ~= owner then return 'owner\\n' .. reserved end
end
local holder = old[2]
if holder and holder ~= server and holder ~= replace
    and redis.call('EXISTS', prefix .. 'alive:' .. holder) == 1 then
  return 'held\\n' .. holder
end
if holder and holder ~= server then
  redis.call('SREM', prefix .. 'held:' .. holder, id)
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'owner', owner, 'server', server, unpack(ARGV, 6))
redis.call('SADD', KEYS[3], id)
redis.call('SADD', KEYS[4], id)
redis.call('SADD', prefix .. 'held:' .. server, id)
return 'ok'
"""

# KEYS: job.  ARGV: server, prefix, id, field, value...
UPDATE = """
local server, prefix, id = ARGV[1], ARGV[2], ARGV[3]
local old = redis.call('HMGET', KEYS[1], 'owner', 'server')
if old[2] ~= server then return 0 end
if #ARGV > 3 then
  for i = 4, #ARGV, 2 do
    local value = ARGV[i + 1]
    if ARGV[i] == 'server' and value ~= server then
      redis.call('SREM', prefix .. 'held:' .. server, id)
      redis.call('SADD', prefix .. 'held:' .. value, id)
    elseif ARGV[i] == 'owner' and value ~= old[1] then
      redis.call('SREM', prefix .. 'owner:' .. redis.sha1hex(old[1]), id)
      redis.call('SADD', prefix .. 'owner:' .. redis.sha1hex(value), id)
    end
  end
  redis.call('HSET', KEYS[1], unpack(ARGV, 4))
end
return 1
"""

# KEYS: job, reserved, jobs.  ARGV: server, milliseconds, prefix, id.
REMOVE = """
local server, ms, prefix, id = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local old = redis.call('HMGET', KEYS[1], 'owner', 'server')
if old[2] ~= server then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[3], id)
redis.call('SREM', prefix .. 'owner:' .. redis.sha1hex(old[1]), id)
redis.call('SREM', prefix .. 'held:' .. server, id)
if ms > 0 then redis.call('SET', KEYS[2], old[1], 'PX', ms) end
return 1
"""

# KEYS: job.  ARGV: prefix, id.
GET = _RECORD + """
local r = record(ARGV[1], ARGV[2])
if r == nil then return false end
return cjson.encode(r)
"""

# KEYS: a set of job ids.  ARGV: prefix, cursor, count.
SCAN_JOBS = _RECORD + """
local page = redis.call('SSCAN', KEYS[1], ARGV[2], 'COUNT', ARGV[3])
local out = {}
for _, id in ipairs(page[2]) do
  local r = record(ARGV[1], id)
  if r ~= nil then out[#out + 1] = r end
end
return cjson.encode({page[1], out})
"""

# KEYS: a set.  ARGV: cursor, count.
SCAN_IDS = """
local page = redis.call('SSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
return cjson.encode(page)
"""

# KEYS: alive, servers.  ARGV: server, info, milliseconds.
HEARTBEAT = """
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""

# KEYS: servers.  ARGV: prefix.
SERVERS = """
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local info = redis.call('GET', ARGV[1] .. 'alive:' .. id)
  if info then out[id] = info else redis.call('SREM', KEYS[1], id) end
end
return cjson.encode(out)
"""

# KEYS: alive, servers, leader.  ARGV: server.
LEAVE = """
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
return 1
"""

# KEYS: leader.  ARGV: server, milliseconds.
LEAD = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if current then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS: value.  A value read and removed at once (GETDEL is Redis >= 6.2).
TAKE = """
local value = redis.call('GET', KEYS[1])
if value then redis.call('DEL', KEYS[1]) end
return value
"""
