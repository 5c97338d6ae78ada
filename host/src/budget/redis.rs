//! [`RedisLedger`]: the budget ledger in Redis, shared by every replica.
//!
//! Per budget key `B` (`<keyPrefix><plugin>:budget:<key>`): a hash `B` with
//! `s` (settled) and `r` (sum of open reservations), a sorted set `B:z` of
//! open reservation ids by deadline, and a hash `B:a` of their amounts.
//! Reserving and settling are one Lua script each over all the budgets of
//! the request, on Redis `TIME`: expired reservations are purged inside the
//! script before the check, so a dead replica's reservations stop counting
//! at their deadline, and two replicas can never both take the last room.
//! Keys expire a day after their period ends.

use std::sync::{Arc, LazyLock};

use redis::Script;

use super::memory::KEEP_AFTER_MS;
use super::{BudgetBackend, Line, Reserved, Settle, State};
use crate::policy::state::{RedisState, StateError, StateFuture};

/// KEYS: per budget `B`, `B:z`, `B:a`. ARGV: id, ttl ms, then per budget:
/// limit, amount, resets-at ms, keep ms. Returns {refused index (1-based,
/// 0: reserved), remaining per budget...}.
const RESERVE_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[1]
local ttl = tonumber(ARGV[2])
local n = #KEYS / 3
local used = {}
local refused = 0
for i = 1, n do
  local h, z, a = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  if #gone > 0 then
    local amounts = redis.call('HMGET', a, unpack(gone))
    local freed = 0
    for j = 1, #gone do freed = freed + (tonumber(amounts[j]) or 0) end
    redis.call('HDEL', a, unpack(gone))
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
    redis.call('HINCRBY', h, 'r', -freed)
  end
  local v = redis.call('HMGET', h, 's', 'r')
  used[i] = (tonumber(v[1]) or 0) + math.max(tonumber(v[2]) or 0, 0)
  local b = 3 + (i - 1) * 4
  if refused == 0 and used[i] + tonumber(ARGV[b + 1]) > tonumber(ARGV[b]) then refused = i end
end
local out = {refused}
for i = 1, n do
  local h, z, a = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local b = 3 + (i - 1) * 4
  local limit, amount = tonumber(ARGV[b]), tonumber(ARGV[b + 1])
  local keep = math.max(tonumber(ARGV[b + 2]) + tonumber(ARGV[b + 3]), now + ttl)
  if refused == 0 then
    redis.call('ZADD', z, now + ttl, id)
    redis.call('HSET', a, id, ARGV[b + 1])
    redis.call('HINCRBY', h, 'r', ARGV[b + 1])
    used[i] = used[i] + amount
    redis.call('PEXPIREAT', z, keep)
    redis.call('PEXPIREAT', a, keep)
  end
  redis.call('PEXPIREAT', h, keep)
  out[#out + 1] = math.max(limit - used[i], 0)
end
return out
";

/// KEYS: per budget `B`, `B:z`, `B:a`. ARGV: id, then per budget: actual,
/// keep-until ms.
const SETTLE_LUA: &str = r"
local id = ARGV[1]
for i = 1, #KEYS / 3 do
  local h, z, a = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local held = tonumber(redis.call('HGET', a, id))
  if held ~= nil then
    redis.call('HDEL', a, id)
    redis.call('ZREM', z, id)
    redis.call('HINCRBY', h, 'r', -held)
  end
  if ARGV[2 * i] ~= '0' then
    redis.call('HINCRBY', h, 's', ARGV[2 * i])
  end
  redis.call('PEXPIREAT', h, ARGV[2 * i + 1])
end
return 1
";

static RESERVE: LazyLock<Script> = LazyLock::new(|| Script::new(RESERVE_LUA));
static SETTLE: LazyLock<Script> = LazyLock::new(|| Script::new(SETTLE_LUA));

/// Lua numbers are doubles: keep every amount exact.
const EXACT: u64 = 1 << 52;

pub struct RedisLedger {
    redis: Arc<RedisState>,
}

impl RedisLedger {
    pub fn new(redis: Arc<RedisState>) -> Self {
        RedisLedger { redis }
    }

    fn keys(&self, key: &str) -> [String; 3] {
        let (plugin, rest) = key.split_once(':').unwrap_or(("", key));
        let h = format!("{}{plugin}:budget:{rest}", self.redis.key_prefix());
        let z = format!("{h}:z");
        let a = format!("{h}:a");
        [h, z, a]
    }
}

impl BudgetBackend for RedisLedger {
    fn reserve(&self, id: String, lines: Vec<Line>, ttl_ms: u64) -> StateFuture<Reserved> {
        let mut inv = RESERVE.prepare_invoke();
        inv.arg(&id).arg(ttl_ms.min(EXACT));
        for l in &lines {
            for k in self.keys(&l.key) {
                inv.key(k);
            }
            inv.arg(l.limit.min(EXACT))
                .arg(l.amount.min(EXACT))
                .arg(l.resets_at_ms.min(EXACT))
                .arg(KEEP_AFTER_MS);
        }
        let n = lines.len();
        let resets: Vec<u64> = lines.iter().map(|l| l.resets_at_ms).collect();
        let fut = self.redis.invoke::<Vec<i64>>(inv);
        Box::pin(async move {
            let flat = fut.await?;
            if flat.len() != n + 1 {
                return Err(StateError::Backend(format!(
                    "budget script answered {} values for {n} budgets",
                    flat.len()
                )));
            }
            Ok(Reserved {
                refused: (flat[0] > 0).then(|| flat[0] as usize - 1),
                states: flat[1..]
                    .iter()
                    .zip(resets)
                    .map(|(r, resets_at_ms)| State {
                        remaining: (*r).max(0) as u64,
                        resets_at_ms,
                    })
                    .collect(),
            })
        })
    }

    fn settle(&self, id: String, lines: Vec<Settle>) -> StateFuture<()> {
        let mut inv = SETTLE.prepare_invoke();
        inv.arg(&id);
        for l in &lines {
            for k in self.keys(&l.key) {
                inv.key(k);
            }
            inv.arg(l.actual.min(EXACT))
                .arg(l.resets_at_ms.saturating_add(KEEP_AFTER_MS).min(EXACT));
        }
        let fut = self.redis.invoke::<i64>(inv);
        Box::pin(async move { fut.await.map(|_| ()) })
    }
}
