"""Lua scripts: each one changes a realm atomically, inside the realm's hash slot.

Scripts return JSON strings so that RESP2 and RESP3 replies look the same.
Record keys are built from a prefix carrying the realm's hash tag, so they lie
in the slot of the declared KEYS.
"""

from __future__ import annotations

from typing import Final

# Prepended to the scripts that change a realm, which call it last with the
# realm's event stream, its cap and the events (a JSON list of JSON strings, so
# that cjson never re-encodes a number): each is appended by the same script as
# the change, so the stream holds an event exactly when the change was made.
# MAXLEN without "~": the cap holds exactly (events are rare; trimming one entry
# per append costs little).
_EMIT: Final = """
local function emit(stream, cap, events)
  if not events or events == '' then return end
  for _, event in ipairs(cjson.decode(events)) do
    redis.call('XADD', stream, 'MAXLEN', cap, '*', 'event', event)
  end
end
"""

# KEYS: meta, version, index.  ARGV: record prefix.
# Returns {"meta", "version", "records"}; drops index members whose record the
# TTL has pruned, so the index never outlives the keys.
LOAD_RING: Final = """
local meta = redis.call('GET', KEYS[1])
if not meta then return cjson.encode({}) end
local members = redis.call('ZRANGE', KEYS[3], 0, -1)
local records = {}
for _, member in ipairs(members) do
  local id = string.match(member, ':(.*)$')
  local record = redis.call('GET', ARGV[1] .. id)
  if record then
    table.insert(records, record)
  else
    redis.call('ZREM', KEYS[3], member)
  end
end
local version = redis.call('GET', KEYS[2]) or ''
return cjson.encode({meta = meta, version = version, records = records})
"""

# KEYS: meta, version, index, events.
# ARGV: expected version ('' to create), new version, record prefix, meta to
# create ('' otherwise), channel, realm, ops as JSON [[op, member, id, value, px]],
# event cap, events (see _EMIT).
# Returns "ok", "conflict" (version moved or realm exists) or "gone" (no realm).
SAVE_RING: Final = (
    _EMIT
    + """
local exists = redis.call('EXISTS', KEYS[1]) == 1
if ARGV[4] == '' and not exists then return 'gone' end
if ARGV[4] ~= '' and exists then return 'conflict' end
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return 'conflict' end
if ARGV[4] ~= '' then redis.call('SET', KEYS[1], ARGV[4]) end
for _, op in ipairs(cjson.decode(ARGV[7])) do
  local kind, member, id = op[1], op[2], op[3]
  if kind == 'put' then
    if op[5] > 0 then
      redis.call('SET', ARGV[3] .. id, op[4], 'PX', op[5])
    else
      redis.call('SET', ARGV[3] .. id, op[4])
    end
    redis.call('ZADD', KEYS[3], 0, member)
  else
    redis.call('DEL', ARGV[3] .. id)
    redis.call('ZREM', KEYS[3], member)
  end
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[5], ARGV[6])
emit(KEYS[4], ARGV[8], ARGV[9])
return 'ok'
"""
)

# KEYS: meta, index.  ARGV: record prefix, cursor member ('' from the newest), limit.
# Walks the index newest first from the cursor, skipping (and dropping) members
# whose record is gone, until ``limit`` records are found: O(limit) per page.
PAGE_KEYS: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return cjson.encode({found = false}) end
local limit = tonumber(ARGV[3])
local max = ARGV[2] == '' and '+' or ('(' .. ARGV[2])
local records, last = {}, ''
while #records < limit do
  local batch = redis.call('ZREVRANGEBYLEX', KEYS[2], max, '-', 'LIMIT', 0, limit - #records)
  if #batch == 0 then break end
  for _, member in ipairs(batch) do
    local record = redis.call('GET', ARGV[1] .. string.match(member, ':(.*)$'))
    if record then
      table.insert(records, record)
      last = member
    else
      redis.call('ZREM', KEYS[2], member)
    end
    max = '(' .. member
  end
end
local more = #redis.call('ZREVRANGEBYLEX', KEYS[2], max, '-', 'LIMIT', 0, 1) > 0
return cjson.encode({found = true, records = records, last = last, more = more})
"""

# KEYS: meta, version, key index, client index, client version, admin key index, events,
# key owners.
# ARGV: key record prefix, channel, realm, client record prefix, client channel.
# Returns {"deleted", "admin_keys"}: the digests of the admin keys scoped to the
# realm, whose records (outside the realm's slot) the caller deletes next. They
# are dead already: the incarnation they name goes with the meta, here.
DELETE_REALM: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return cjson.encode({deleted = false}) end
for _, member in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  redis.call('DEL', ARGV[1] .. string.match(member, ':(.*)$'))
end
for _, member in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  redis.call('DEL', ARGV[4] .. string.match(member, ':(.*)$'))
end
local admin_keys = redis.call('SMEMBERS', KEYS[6])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
for i = 7, #KEYS do redis.call('DEL', KEYS[i]) end
redis.call('PUBLISH', ARGV[2], ARGV[3])
redis.call('PUBLISH', ARGV[5], ARGV[3])
return cjson.encode({deleted = true, admin_keys = admin_keys})
"""

# KEYS: meta, admin key index, events.
# ARGV: digest, incarnation ('' for a realm without one), event cap, events.
# Indexes a realm-scoped admin key only while the realm it was made for exists.
# Returns 1, or 0 if that incarnation of the realm is gone.
ADD_ADMIN_KEY: Final = (
    _EMIT
    + """
local meta = redis.call('GET', KEYS[1])
if not meta then return 0 end
local incarnation = cjson.decode(meta).incarnation
if type(incarnation) ~= 'string' then incarnation = '' end
if incarnation ~= ARGV[2] then return 0 end
redis.call('SADD', KEYS[2], ARGV[1])
emit(KEYS[3], ARGV[3], ARGV[4])
return 1
"""
)

# KEYS: meta, index, client version, events.
# ARGV: record prefix, member, id, value, new version, channel, message, event cap, events.
# Writes a client record and its index entry only while the realm exists; a new
# client version and a message "<message> <new version> <previous version>", so
# every replica's client cache lets the client go, and sees if it missed a message.
# Returns the previous version ('' if none), or false if there is no realm.
PUT_CLIENT: Final = (
    _EMIT
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local previous = redis.call('GET', KEYS[3]) or ''
redis.call('SET', ARGV[1] .. ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
redis.call('SET', KEYS[3], ARGV[5])
redis.call('PUBLISH', ARGV[6], ARGV[7] .. ' ' .. ARGV[5] .. ' ' .. previous)
emit(KEYS[4], ARGV[8], ARGV[9])
return previous
"""
)

# KEYS: index, client version, events.
# ARGV: record prefix, member, id, new version, channel, message, event cap, events.
# Like PUT_CLIENT's message when a record was deleted. Returns the previous version,
# or false if there was no such client.
DELETE_CLIENT: Final = (
    _EMIT
    + """
redis.call('ZREM', KEYS[1], ARGV[2])
if redis.call('DEL', ARGV[1] .. ARGV[3]) == 0 then return false end
local previous = redis.call('GET', KEYS[2]) or ''
redis.call('SET', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[6] .. ' ' .. ARGV[4] .. ' ' .. previous)
emit(KEYS[3], ARGV[7], ARGV[8])
return previous
"""
)

# KEYS: client version, client record.
# Returns {"version", "record"}: the record together with the version it belongs to.
GET_CLIENT: Final = """
local record = redis.call('GET', KEYS[2])
return cjson.encode({version = redis.call('GET', KEYS[1]) or '', record = record or ''})
"""

# KEYS: meta, version, events.  ARGV: meta, new version, channel, realm, event cap, events.
# Replaces the realm's own record; a new version so every replica reloads it.
UPDATE_REALM: Final = (
    _EMIT
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
emit(KEYS[3], ARGV[5], ARGV[6])
return 'ok'
"""
)

# KEYS: the realm's key owners (thumbprint -> client_id).
# ARGV: client record prefix, client_id, thumbprint, thumbprint, ...
# A public key belongs to one client of a realm at most: claims every thumbprint
# for the client, or none of them if one belongs to another client that still
# exists. Returns that client's id, or false.
CLAIM_CLIENT_KEYS: Final = """
for i = 3, #ARGV do
  local owner = redis.call('HGET', KEYS[1], ARGV[i])
  if owner and owner ~= ARGV[2] and redis.call('EXISTS', ARGV[1] .. owner) == 1 then
    return owner
  end
end
for i = 3, #ARGV do redis.call('HSET', KEYS[1], ARGV[i], ARGV[2]) end
return false
"""

# KEYS: the realm's key owners.  ARGV: client_id, thumbprint, thumbprint, ...
# Lets go of the thumbprints the client still owns (not those another client took).
RELEASE_CLIENT_KEYS: Final = """
for i = 2, #ARGV do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[1] then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return 0
"""

# KEYS: events, then the realm's meta (none for the global stream).
# ARGV: cursor (an entry id, '' from the newest), limit.
# Returns {"found", "ids", "events"}: up to limit + 1 entries newest first (one
# more than asked, to tell whether there is another page).
PAGE_EVENTS: Final = """
if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 0 then return cjson.encode({found = false}) end
local max = ARGV[1] == '' and '+' or ('(' .. ARGV[1])
local ids, events = {}, {}
local entries = redis.call('XREVRANGE', KEYS[1], max, '-', 'COUNT', tonumber(ARGV[2]) + 1)
for _, entry in ipairs(entries) do
  table.insert(ids, entry[1])
  table.insert(events, entry[2][2])
end
return cjson.encode({found = true, ids = ids, events = events})
"""

# KEYS: quota counters (on a Cluster, all in one slot).  ARGV[1]: "op ms limit
# amount" for each key, space-separated (one argument and one reply string, not dozens:
# packing and parsing them cost the client more than the script costs the server).
# ops as in base.Quota: 'hit' and 'fail' INCRBY amount (the first starts the window; a
# 'fail' reaching the limit starts it again, for the lockout), 'check' GETs,
# 'reset' DELs; and 'once' records a jti (SET NX PX: count 1 the first time, 0 on
# a replay). Returns "count left count left ...", left being the ms left in the
# window (0: none).
COUNT: Final = """
local spec, out = {}, {}
for word in string.gmatch(ARGV[1], '%S+') do table.insert(spec, word) end
for i, key in ipairs(KEYS) do
  local op, ms, limit = spec[4 * i - 3], tonumber(spec[4 * i - 2]), tonumber(spec[4 * i - 1])
  local amount = tonumber(spec[4 * i])
  local count, left = 0, 0
  if op == 'once' then
    if redis.call('SET', key, '', 'NX', 'PX', ms) then count = 1 end
  elseif op == 'reset' then
    redis.call('DEL', key)
  elseif op == 'check' then
    count = tonumber(redis.call('GET', key) or '0')
  else
    count = redis.call('INCRBY', key, amount)
    if count == amount or (op == 'fail' and count == limit) then
      redis.call('PEXPIRE', key, ms)
    end
  end
  if count > 0 and op ~= 'once' then
    left = redis.call('PTTL', key)
    -- A counter without a TTL would count forever: give it its window.
    if left < 0 and op ~= 'check' then
      redis.call('PEXPIRE', key, ms)
      left = ms
    end
  end
  table.insert(out, count)
  table.insert(out, math.max(left, 0))
end
return table.concat(out, ' ')
"""
