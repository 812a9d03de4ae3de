//! The Lua scripts a node runs in Redis. Each is atomic there, which is what makes a
//! room's order, its counter, its member list and its stream agree.
//!
//! Scripts that walk the rooms (`REAP`, `ROOM_LIST`) build key names from the prefix
//! instead of declaring them in `KEYS`: fine on one Redis (or a replicated one), not
//! on a sharded Redis Cluster, which this mode does not support.

use redis::Script;

/// Publishes one room event, once: skipped (`"dup"`) if this incarnation of the node
/// already published an id as large (a batch replayed after a lost answer). A message
/// gets the room's next `seq`; a join adds the member and keeps the room; a leave
/// removes it (`"gone"` if it was not there: a lost node's users are removed by
/// `REAP`) and lets an empty room's stream expire; a rename swaps the member's nick.
/// Returns the entry's stream id.
///
/// KEYS: published, stream, seq, members, rooms.
/// ARGV: pub id, type letter, maxlen, room, nick, node, old nick, empty-room TTL (ms),
/// lobby name, then the entry's field/value pairs.
const PUBLISH: &str = r"
local pub = tonumber(ARGV[1])
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if pub <= last then return 'dup' end
redis.call('SET', KEYS[1], ARGV[1], 'EX', 86400)
local t, room, nick, node = ARGV[2], ARGV[4], ARGV[5], ARGV[6]
local fields = {}
for i = 10, #ARGV do fields[#fields + 1] = ARGV[i] end
if t == 'm' then
  local seq = redis.call('INCR', KEYS[3])
  fields[#fields + 1] = 's'
  fields[#fields + 1] = tostring(seq)
elseif t == 'j' then
  redis.call('HSET', KEYS[4], nick, node)
  redis.call('SADD', KEYS[5], room)
  redis.call('PERSIST', KEYS[2])
  redis.call('PERSIST', KEYS[3])
elseif t == 'l' then
  if redis.call('HDEL', KEYS[4], nick) == 0 then return 'gone' end
  if redis.call('HLEN', KEYS[4]) == 0 and room ~= ARGV[9] then
    redis.call('SREM', KEYS[5], room)
    redis.call('PEXPIRE', KEYS[2], ARGV[8])
    redis.call('PEXPIRE', KEYS[3], ARGV[8])
  end
elseif t == 'n' then
  redis.call('HDEL', KEYS[4], ARGV[7])
  redis.call('HSET', KEYS[4], nick, node)
end
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
";

/// Claims a nick for a node: 1 if it is now the node's (free, or already its own),
/// 0 if another node holds it.
///
/// KEYS: nick. ARGV: node, TTL (ms).
const CLAIM: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// Frees a nick if the node holds it.
///
/// KEYS: nick. ARGV: node.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
";

/// Refreshes the TTL of a node's nicks (taking back any that expired and are still
/// free); returns how many another node holds now.
///
/// KEYS: nicks. ARGV: node, TTL (ms).
const REFRESH: &str = r"
local lost = 0
for _, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder and holder ~= ARGV[1] then
    lost = lost + 1
  else
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  end
end
return lost
";

/// Every room with its member count: name, count, name, count... (the lobby always).
///
/// KEYS: rooms. ARGV: prefix, lobby name.
const ROOM_LIST: &str = r"
local out = {}
local seen_lobby = false
for _, room in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if room == ARGV[2] then seen_lobby = true end
  out[#out + 1] = room
  out[#out + 1] = redis.call('HLEN', ARGV[1] .. 'room:' .. room .. ':members')
end
if not seen_lobby then
  out[#out + 1] = ARGV[2]
  out[#out + 1] = redis.call('HLEN', ARGV[1] .. 'room:' .. ARGV[2] .. ':members')
end
return out
";

/// Removes nodes from the cluster and their users from every room, with a leave
/// entry in each room's stream, exactly once (whichever nodes run it). Mode `reap`:
/// every other node whose liveness key expired, reason `node-lost`; mode `depart`:
/// the calling node itself (a clean shutdown), reason `quit`; mode `restart`: what a
/// previous run of the calling node left (it was killed and started again before
/// anyone reaped it), reason `node-lost`. Returns the nodes removed.
///
/// KEYS: nodes. ARGV: node, prefix, maxlen, empty-room TTL (ms), lobby name, mode.
const REAP: &str = r"
local me, prefix, maxlen, ttl, lobby, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local function drop(n, reason)
  for _, room in ipairs(redis.call('SMEMBERS', prefix .. 'rooms')) do
    local base = prefix .. 'room:' .. room
    local members = redis.call('HGETALL', base .. ':members')
    for i = 1, #members, 2 do
      if members[i + 1] == n then
        redis.call('HDEL', base .. ':members', members[i])
        redis.call('XADD', base .. ':stream', 'MAXLEN', '~', maxlen, '*',
          't', 'l', 'node', n, 'uid', '0', 'nick', members[i], 'r', reason)
      end
    end
    if redis.call('HLEN', base .. ':members') == 0 and room ~= lobby then
      redis.call('SREM', prefix .. 'rooms', room)
      redis.call('PEXPIRE', base .. ':stream', ttl)
      redis.call('PEXPIRE', base .. ':seq', ttl)
    end
  end
  redis.call('SREM', KEYS[1], n)
end
local dropped = {}
if mode == 'depart' or mode == 'restart' then
  drop(me, mode == 'depart' and 'quit' or 'node-lost')
  redis.call('DEL', prefix .. 'node:' .. me .. ':alive')
  dropped[1] = me
  return dropped
end
for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if n ~= me and redis.call('EXISTS', prefix .. 'node:' .. n .. ':alive') == 0 then
    drop(n, 'node-lost')
    dropped[#dropped + 1] = n
  end
end
return dropped
";

/// The scripts, hashed once.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) publish: Script,
    pub(crate) claim: Script,
    pub(crate) release: Script,
    pub(crate) refresh: Script,
    pub(crate) room_list: Script,
    pub(crate) reap: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            publish: Script::new(PUBLISH),
            claim: Script::new(CLAIM),
            release: Script::new(RELEASE),
            refresh: Script::new(REFRESH),
            room_list: Script::new(ROOM_LIST),
            reap: Script::new(REAP),
        }
    }

    /// Every script, for `SCRIPT LOAD` after each (re)connect, so pipelines can use
    /// `EVALSHA`.
    pub(crate) fn sources() -> [&'static str; 6] {
        [PUBLISH, CLAIM, RELEASE, REFRESH, ROOM_LIST, REAP]
    }
}
