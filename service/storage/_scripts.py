"""Lua scripts: each one changes a realm atomically, inside the realm's hash slot.

Scripts return JSON strings so that RESP2 and RESP3 replies look the same.
Record keys are built from a prefix carrying the realm's hash tag, so they lie
in the slot of the declared KEYS.
"""

from __future__ import annotations

from typing import Final

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

# KEYS: meta, version, index.
# ARGV: expected version ('' to create), new version, record prefix, meta to
# create ('' otherwise), channel, realm, ops as JSON [[op, member, id, value, px]].
# Returns "ok", "conflict" (version moved or realm exists) or "gone" (no realm).
SAVE_RING: Final = """
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
return 'ok'
"""

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

# KEYS: meta, version, key index, client index, client version.
# ARGV: key record prefix, channel, realm, client record prefix, client channel.
DELETE_REALM: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for _, member in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  redis.call('DEL', ARGV[1] .. string.match(member, ':(.*)$'))
end
for _, member in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  redis.call('DEL', ARGV[4] .. string.match(member, ':(.*)$'))
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('PUBLISH', ARGV[2], ARGV[3])
redis.call('PUBLISH', ARGV[5], ARGV[3])
return 1
"""

# KEYS: meta, index, client version.
# ARGV: record prefix, member, id, value, new version, channel, message.
# Writes a client record and its index entry only while the realm exists; a new
# client version and a message "<message> <new version> <previous version>", so
# every replica's client cache lets the client go, and sees if it missed a message.
# Returns the previous version ('' if none), or false if there is no realm.
PUT_CLIENT: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local previous = redis.call('GET', KEYS[3]) or ''
redis.call('SET', ARGV[1] .. ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
redis.call('SET', KEYS[3], ARGV[5])
redis.call('PUBLISH', ARGV[6], ARGV[7] .. ' ' .. ARGV[5] .. ' ' .. previous)
return previous
"""

# KEYS: index, client version.  ARGV: record prefix, member, id, new version, channel, message.
# Like PUT_CLIENT's message when a record was deleted. Returns the previous version,
# or false if there was no such client.
DELETE_CLIENT: Final = """
redis.call('ZREM', KEYS[1], ARGV[2])
if redis.call('DEL', ARGV[1] .. ARGV[3]) == 0 then return false end
local previous = redis.call('GET', KEYS[2]) or ''
redis.call('SET', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[6] .. ' ' .. ARGV[4] .. ' ' .. previous)
return previous
"""

# KEYS: client version, client record.
# Returns {"version", "record"}: the record together with the version it belongs to.
GET_CLIENT: Final = """
local record = redis.call('GET', KEYS[2])
return cjson.encode({version = redis.call('GET', KEYS[1]) or '', record = record or ''})
"""

# KEYS: meta, version.  ARGV: meta, new version, channel, realm.
# Replaces the realm's own record; a new version so every replica reloads it.
UPDATE_REALM: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 'ok'
"""
