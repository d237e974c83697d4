"""The Lua scripts the Redis log runs in Redis, one atomic step each (edge, floor 4).

Redis runs a script alone, so every publisher sees one order of appends and one epoch. Keys:
``KEYS[1]`` the stream, ``KEYS[2]`` a hash beside it with ``epoch`` (the log's epoch),
``last`` (the last stream id given, ``0-0`` before the first) and ``bytes`` (the encoded
bytes kept). Each stream entry holds ``s`` (its encoded size without the ``id:`` line,
first: ``trim`` reads it there), ``e`` (the event type), ``d`` (the data) and ``epoch``
(the log's epoch when it was appended, so that the rows a tail's ``XREAD`` returns can be
checked without a second call; entries written before sse_core had it lack it, and a tail
reads those through ``READ``). The ids and the verdicts are read in Python
(``sse_core/_stream_log.py``); the scripts only number, store, trim and read.

An idempotent append takes a third key, ``KEYS[3]`` (``<stream>#once:<key>``, the
publisher's key): a string ``<epoch> <stream id> <digest>`` written with the append and
expiring after the window, so that a retry under the key finds the first answer.

A log is intact when both keys exist. Otherwise (a wiped Redis, a restart without
persistence, a deleted key) the next script starts a new epoch (``ARGV[1]``, drawn by the
caller) over an empty stream, so that no old id matches a new event.
"""

from __future__ import annotations

__all__ = ["APPEND", "POSITION", "READ"]

# ensure(): the epoch of an intact log, or a new one over an empty stream.
# trim(): evict oldest first while a bound is passed: count (max_events), bytes (max_bytes,
# 0 = none) or age (an entry whose ms is at or before TIME - max_age_ms; 0 = none). Sizes
# count the whole encoded event: s + len("id: " + epoch + "-" + stream id + "\n").
_COMMON = """
local stream, meta = KEYS[1], KEYS[2]

local function ensure(new_epoch)
  local epoch = redis.call('HGET', meta, 'epoch')
  if epoch and redis.call('EXISTS', stream) == 1 then
    return epoch
  end
  redis.call('DEL', stream, meta)
  redis.call('XGROUP', 'CREATE', stream, 'sse-core', '$', 'MKSTREAM')
  redis.call('XGROUP', 'DESTROY', stream, 'sse-core')
  redis.call('HSET', meta, 'epoch', new_epoch, 'last', '0-0', 'bytes', '0')
  return new_epoch
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function trim(epoch, max_events, max_bytes, max_age_ms)
  local length = redis.call('XLEN', stream)
  local bytes = tonumber(redis.call('HGET', meta, 'bytes'))
  local cutoff = -1
  if max_age_ms > 0 then
    cutoff = now_ms() - max_age_ms
  end
  -- The first read takes what the count bound evicts for sure and one more (usually 2
  -- rows: an append at the bound evicts one), later reads twice as many, up to 1024.
  local start, evicted, done = '-', nil, false
  local size = math.max(length - max_events, 0) + 1
  while not done and length > 0 do
    local batch = redis.call('XRANGE', stream, start, '+', 'COUNT', size)
    size = math.min(size * 2, 1024)
    if #batch == 0 then
      break
    end
    for _, entry in ipairs(batch) do
      local id = entry[1]
      local ms = tonumber(string.match(id, '^(%d+)-'))
      if length > max_events or (max_bytes > 0 and bytes > max_bytes) or ms <= cutoff then
        length = length - 1
        bytes = bytes - (tonumber(entry[2][2]) + 6 + #epoch + #id)
        evicted = id
      else
        done = true
        break
      end
    end
    if evicted then
      start = '(' .. evicted
    end
  end
  if evicted then
    local ms, n = string.match(evicted, '^(%d+)-(%d+)$')
    redis.call('XTRIM', stream, 'MINID', ms .. '-' .. string.format('%d', tonumber(n) + 1))
    redis.call('HSET', meta, 'bytes', string.format('%d', bytes))
  end
end
"""

#: ARGV: new epoch, size, type, data, max_events, max_bytes, max_age_ms -> {epoch, id}.
#: Idempotent (a third key, ``KEYS[3]``: the idempotency key's record, ``<epoch> <stream id>
#: <digest>``; ``ARGV[8]`` its window in ms, ``ARGV[9]`` the event's digest): when the record
#: is of this epoch, nothing is stored and the answer is ``{epoch, its id, 'same'}`` (same
#: digest) or ``{epoch, its id, 'other'}``; else the event is stored and the record written
#: (it expires after the window; a record of another epoch names an event the log lost).
APPEND = _COMMON + """
local epoch = ensure(ARGV[1])
local once = KEYS[3]
if once then
  local record = redis.call('GET', once)
  if record then
    local was_epoch, was_id, digest = string.match(record, '^(%S+) (%S+) (%S+)$')
    if was_epoch == epoch then
      if digest == ARGV[9] then
        return {epoch, was_id, 'same'}
      end
      return {epoch, was_id, 'other'}
    end
  end
end
local last_ms, last_n = string.match(redis.call('HGET', meta, 'last'), '^(%d+)-(%d+)$')
local ms = math.max(now_ms(), tonumber(last_ms))
local id = string.format('%d-%d', ms, tonumber(last_n) + 1)
if once then  -- first: a SET that fails leaves nothing stored
  redis.call('SET', once, epoch .. ' ' .. id .. ' ' .. ARGV[9], 'PX', ARGV[8])
end
redis.call('XADD', stream, id, 's', ARGV[2], 'e', ARGV[3], 'd', ARGV[4], 'epoch', epoch)
redis.call('HSET', meta, 'last', id)
redis.call('HINCRBY', meta, 'bytes', tonumber(ARGV[2]) + 6 + #epoch + #id)
trim(epoch, tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]))
return {epoch, id}
"""

#: ARGV: start ('-' or '(<id>'), count, max_events, max_bytes, max_age_ms
#: -> {} when the log does not exist, else {epoch, last id, rows}.
READ = _COMMON + """
local epoch = redis.call('HGET', meta, 'epoch')
if not epoch or redis.call('EXISTS', stream) == 0 then
  return {}
end
trim(epoch, tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
local rows = redis.call('XRANGE', stream, ARGV[1], '+', 'COUNT', ARGV[2])
return {epoch, redis.call('HGET', meta, 'last'), rows}
"""

#: ARGV: new epoch -> {epoch, last id} (creating the log when it does not exist).
POSITION = _COMMON + """
local epoch = ensure(ARGV[1])
return {epoch, redis.call('HGET', meta, 'last')}
"""
