//! [`RedisState`]: state shared by every replica through one Redis.
//!
//! - Connections: `poolSize` multiplexed [`ConnectionManager`]s, used round
//!   robin, each connected on first use and reconnecting by itself after the
//!   server goes away. TLS and credentials come from the URL (`rediss://`,
//!   `redis://user:pass@host:port/db`); the password never appears in logs or
//!   errors ([`redact_url`]).
//! - Atomicity: the windowed counter, the sliding windows and the token bucket are Lua scripts
//!   (EVALSHA, falling back to loading the script on `NOSCRIPT`), run by the
//!   server in one step against the server's own clock (`TIME`), so replicas
//!   never race on a read-modify-write nor disagree on window edges. KV is a
//!   plain `GET` / `SET PX`. Every host call is exactly one round trip.
//! - Keys: `<keyPrefix><plugin>:kv:<key>`, `<keyPrefix><plugin>:ctr:<window
//!   ms>:<key>`, `<keyPrefix><plugin>:sw:<window ms>:<key>`,
//!   `<keyPrefix><plugin>:tb:<key>`; each expires with its data.
//! - A sliding window (`sw:`) is one hash: `t` (total), `o`/`n` (oldest and
//!   newest non-empty sub-window), `l` (latest Redis time seen, so a clock
//!   stepping back un-counts nothing) and one field per non-empty
//!   sub-window (at most 101), under Redis's 128-field listpack limit.
//! - Bounds: connecting and every command are bounded by `timeout` (the
//!   caller, [`super::StateStore`], bounds the whole call too).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script};
use tokio::sync::OnceCell;

use super::window::slot_ms;
use super::{
    Bucket, BucketTake, SharedState, StateError, StateFuture, WindowCount, WindowLimit, WindowTake,
};

/// Settings from `state.redis`.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    pub url: String,
    pub key_prefix: String,
    pub pool_size: usize,
    pub timeout: Duration,
}

/// Windowed increment. KEYS[1] counter hash; ARGV delta, window ms.
/// Returns {total, ms until the window ends}.
const INCR_LUA: &str = r"
local w = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local start = now - (now % w)
local total
if tonumber(redis.call('HGET', KEYS[1], 's')) == start then
  total = redis.call('HINCRBY', KEYS[1], 'n', ARGV[1])
else
  redis.call('HSET', KEYS[1], 's', start, 'n', ARGV[1])
  total = tonumber(ARGV[1])
end
local reset = start + w - now
redis.call('PEXPIRE', KEYS[1], reset + 1000)
return {total, reset}
";

/// Token bucket, mirroring `bucket.rs`. KEYS[1] bucket hash; ARGV max,
/// per fill, interval ms, n, drain (1/0). Returns {allowed, remaining,
/// retry ms, reset ms}.
const TAKE_LUA: &str = r"
local max = tonumber(ARGV[1])
local per = math.max(tonumber(ARGV[2]), 1)
local iv = math.max(tonumber(ARGV[3]), 1)
local n = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('HMGET', KEYS[1], 'tokens', 'last')
local tokens = tonumber(v[1])
local last = tonumber(v[2])
if tokens == nil or last == nil then
  tokens = max
  last = now
end
if now > last then
  local fills = math.floor((now - last) / iv)
  if fills > 0 then
    tokens = math.min(max, tokens + fills * per)
    last = last + fills * iv
  end
end
tokens = math.min(tokens, max)
local since = math.max(now - last, 0)
local function wait(missing)
  if missing <= 0 then return 0 end
  return math.max(math.ceil(missing / per) * iv - since, 0)
end
local need = math.max(n, 1)
local allowed = 0
local retry = 0
if tokens >= need then
  allowed = 1
  tokens = tokens - n
else
  if need > max then retry = wait(max - tokens) else retry = wait(need - tokens) end
  if ARGV[5] == '1' then tokens = 0 end
end
local reset = wait(max - tokens)
redis.call('HSET', KEYS[1], 'tokens', tokens, 'last', last)
redis.call('PEXPIRE', KEYS[1], reset + math.ceil(max / per) * iv + iv)
return {allowed, tokens, retry, reset}
";

/// Sliding windows, mirroring `window.rs`. KEYS: one hash per limit. ARGV:
/// force (1/0), then per key: amount, limit, window ms, sub-window ms.
/// Returns, per key: {allowed, total, remaining, retry ms, reset ms}.
///
/// Bounded work: a hash holds at most 101 sub-windows (`n - o` <= 101), so
/// each step reads at most that many fields in one HMGET.
const WINDOW_LUA: &str = r"
local force = ARGV[1] == '1'
local t = redis.call('TIME')
local clock = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local st = {}
local all = true
local function fields(key, from, to)
  local idx = {}
  for j = from, to do idx[#idx + 1] = j end
  return idx, redis.call('HMGET', key, unpack(idx))
end
for i, key in ipairs(KEYS) do
  local a = 2 + (i - 1) * 4
  local s = {key = key, amount = tonumber(ARGV[a]), limit = tonumber(ARGV[a + 1]),
    w = tonumber(ARGV[a + 2]), b = tonumber(ARGV[a + 3])}
  local m = redis.call('HMGET', key, 't', 'o', 'n', 'l')
  s.total = tonumber(m[1]) or 0
  s.o = tonumber(m[2])
  s.n = tonumber(m[3])
  s.now = math.max(clock, tonumber(m[4]) or 0)
  local cutoff = 0
  if s.now >= s.w then cutoff = math.floor((s.now - s.w) / s.b) end
  if s.o ~= nil and s.o < cutoff then
    if s.n == nil or s.n < cutoff then
      redis.call('DEL', key)
      s.total = 0
      s.o = nil
      s.n = nil
    else
      local idx, v = fields(key, s.o, s.n)
      local gone = {}
      s.o = nil
      for j = 1, #idx do
        local c = tonumber(v[j])
        if c ~= nil then
          if idx[j] < cutoff then
            s.total = s.total - c
            gone[#gone + 1] = idx[j]
          elseif s.o == nil then
            s.o = idx[j]
          end
        end
      end
      if #gone > 0 then redis.call('HDEL', key, unpack(gone)) end
    end
  end
  s.fits = s.total + math.max(s.amount, 1) <= s.limit
  all = all and s.fits
  st[i] = s
end
local out = {}
for i, s in ipairs(st) do
  if (all or force) and s.amount > 0 then
    local cur = math.floor(s.now / s.b)
    if s.n ~= nil and s.n > cur then cur = s.n end
    redis.call('HINCRBY', s.key, cur, ARGV[2 + (i - 1) * 4])
    s.total = s.total + s.amount
    if s.o == nil then s.o = cur end
    s.n = cur
  end
  if s.o == nil then
    redis.call('DEL', s.key)
  else
    redis.call('HSET', s.key, 't', s.total, 'o', s.o, 'n', s.n, 'l', s.now)
    redis.call('PEXPIRE', s.key, (s.n + 1) * s.b + s.w - s.now + 1)
  end
  local retry = 0
  if not s.fits and s.o ~= nil then
    local need = math.max(s.amount, 1)
    local excess = s.total + need - s.limit
    if need > s.limit then excess = s.total end
    local idx, v = fields(s.key, s.o, s.n)
    local freed = 0
    for j = 1, #idx do
      local c = tonumber(v[j])
      if c ~= nil then
        freed = freed + c
        retry = (idx[j] + 1) * s.b + s.w - s.now
        if freed >= excess then break end
      end
    end
  end
  local reset = 0
  if s.o ~= nil then reset = (s.o + 1) * s.b + s.w - s.now end
  local ok = 0
  if s.fits then ok = 1 end
  out[#out + 1] = ok
  out[#out + 1] = s.total
  out[#out + 1] = math.max(s.limit - s.total, 0)
  out[#out + 1] = math.max(retry, 0)
  out[#out + 1] = math.max(reset, 0)
end
return out
";

pub struct RedisState {
    inner: Arc<Inner>,
    rt: tokio::runtime::Runtime,
}

struct Inner {
    client: redis::Client,
    config: ConnectionManagerConfig,
    pool: Vec<OnceCell<ConnectionManager>>,
    next: AtomicUsize,
    prefix: String,
    timeout: Duration,
    /// The URL's password, scrubbed from every error message.
    password: Option<String>,
    incr: Script,
    take: Script,
    window: Script,
}

/// `url` with its password replaced by `<redacted>`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let shown = if userinfo.contains(':') {
                format!("{user}:{}", crate::config::REDACTED)
            } else {
                user.to_owned()
            };
            format!("{scheme}://{shown}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

fn password_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (userinfo, _) = rest[..end].rsplit_once('@')?;
    let (_, pass) = userinfo.split_once(':')?;
    (!pass.is_empty()).then(|| pass.to_owned())
}

impl RedisState {
    /// Parse the URL and start the client's runtime. Does not connect:
    /// connections are made on first use (see [`SharedState::ping`]).
    pub fn new(opts: RedisOptions) -> Result<Self, StateError> {
        let password = password_of(&opts.url);
        let scrub = |m: String| match &password {
            Some(p) => m.replace(p.as_str(), crate::config::REDACTED),
            None => m,
        };
        let client = redis::Client::open(opts.url.as_str()).map_err(|e| {
            StateError::Backend(scrub(format!(
                "invalid redis url {}: {e}",
                redact_url(&opts.url)
            )))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(opts.timeout)
            .set_response_timeout(opts.timeout)
            .set_number_of_retries(1)
            .set_max_delay(opts.timeout.as_millis() as u64);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sluice-state")
            .enable_all()
            .build()
            .map_err(|e| StateError::Backend(format!("starting the state runtime: {e}")))?;
        Ok(RedisState {
            inner: Arc::new(Inner {
                client,
                config,
                pool: (0..opts.pool_size.max(1))
                    .map(|_| OnceCell::new())
                    .collect(),
                next: AtomicUsize::new(0),
                prefix: opts.key_prefix,
                timeout: opts.timeout,
                password,
                incr: Script::new(INCR_LUA),
                take: Script::new(TAKE_LUA),
                window: Script::new(WINDOW_LUA),
            }),
            rt,
        })
    }

    /// `state.redis.keyPrefix`.
    pub fn key_prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// Run a prepared Lua script on a pooled connection (the budget
    /// ledger's scripts, `crate::budget::redis`). Its keys must already
    /// carry [`Self::key_prefix`].
    pub fn invoke<T: redis::FromRedisValue + Send + 'static>(
        &self,
        inv: redis::ScriptInvocation<'static>,
    ) -> StateFuture<T> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let mut c = inner.conn().await?;
            inv.invoke_async(&mut c).await.map_err(|e| inner.error(e))
        })
    }

    /// Round trip to the server (and connect every pooled connection).
    fn ping_all(&self) -> StateFuture<()> {
        let inner = self.inner.clone();
        Box::pin(async move {
            for i in 0..inner.pool.len() {
                let mut c = inner.conn_at(i).await?;
                let _: String = redis::cmd("PING")
                    .query_async(&mut c)
                    .await
                    .map_err(|e| inner.error(e))?;
            }
            Ok(())
        })
    }
}

impl Inner {
    fn error(&self, e: RedisError) -> StateError {
        let msg = match &self.password {
            Some(p) => e.to_string().replace(p.as_str(), crate::config::REDACTED),
            None => e.to_string(),
        };
        if e.is_timeout() {
            StateError::Timeout(self.timeout)
        } else if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
            StateError::Unavailable(msg)
        } else {
            StateError::Backend(msg)
        }
    }

    async fn conn_at(&self, i: usize) -> Result<ConnectionManager, StateError> {
        let cell = &self.pool[i % self.pool.len()];
        let connect = cell.get_or_try_init(|| async {
            ConnectionManager::new_with_config(self.client.clone(), self.config.clone())
                .await
                .map_err(|e| self.error(e))
        });
        match tokio::time::timeout(self.timeout, connect).await {
            Ok(r) => r.cloned(),
            Err(_) => Err(StateError::Timeout(self.timeout)),
        }
    }

    async fn conn(&self) -> Result<ConnectionManager, StateError> {
        self.conn_at(self.next.fetch_add(1, Ordering::Relaxed))
            .await
    }

    /// `<prefix><plugin>:<kind>:<key>` from the namespaced `<plugin>:<key>`.
    fn key(&self, kind: &str, ns_key: &str) -> String {
        let (plugin, key) = ns_key.split_once(':').unwrap_or(("", ns_key));
        format!("{}{plugin}:{kind}:{key}", self.prefix)
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

impl SharedState for RedisState {
    fn backend(&self) -> &'static str {
        "redis"
    }

    fn runtime(&self) -> Option<tokio::runtime::Handle> {
        Some(self.rt.handle().clone())
    }

    fn incr(&self, key: String, delta: i64, window: Duration) -> StateFuture<WindowCount> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let w = ms(window).max(1);
            let k = inner.key(&format!("ctr:{w}"), &key);
            let mut c = inner.conn().await?;
            let (total, reset): (i64, i64) = inner
                .incr
                .key(k)
                .arg(delta)
                .arg(w)
                .invoke_async(&mut c)
                .await
                .map_err(|e| inner.error(e))?;
            Ok(WindowCount {
                total,
                reset: Duration::from_millis(reset.max(0) as u64),
            })
        })
    }

    fn window_take(&self, limits: Vec<WindowLimit>, force: bool) -> StateFuture<Vec<WindowTake>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let mut inv = inner.window.prepare_invoke();
            inv.arg(if force { "1" } else { "0" });
            for l in &limits {
                let w = ms(l.window).max(1);
                inv.key(inner.key(&format!("sw:{w}"), &l.key));
                // Lua numbers are doubles: keep every value exact.
                const EXACT: u64 = 1 << 52;
                inv.arg(l.amount.min(EXACT))
                    .arg(l.limit.min(EXACT))
                    .arg(w.min(EXACT))
                    .arg(slot_ms(w.min(EXACT)));
            }
            let mut c = inner.conn().await?;
            let flat: Vec<i64> = inv.invoke_async(&mut c).await.map_err(|e| inner.error(e))?;
            if flat.len() != limits.len() * 5 {
                return Err(StateError::Backend(format!(
                    "window script answered {} values for {} limits",
                    flat.len(),
                    limits.len()
                )));
            }
            let n = |v: i64| v.max(0) as u64;
            Ok(flat
                .chunks_exact(5)
                .map(|r| WindowTake {
                    allowed: r[0] == 1,
                    total: n(r[1]),
                    remaining: n(r[2]),
                    retry_after: Duration::from_millis(n(r[3])),
                    reset: Duration::from_millis(n(r[4])),
                })
                .collect())
        })
    }

    fn take(&self, key: String, bucket: Bucket, n: u64, drain: bool) -> StateFuture<BucketTake> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let k = inner.key("tb", &key);
            let mut c = inner.conn().await?;
            let (allowed, remaining, retry, reset): (i64, i64, i64, i64) = inner
                .take
                .key(k)
                .arg(bucket.max_tokens)
                .arg(bucket.tokens_per_fill)
                .arg(ms(bucket.fill_interval).max(1))
                .arg(n)
                .arg(if drain { "1" } else { "0" })
                .invoke_async(&mut c)
                .await
                .map_err(|e| inner.error(e))?;
            Ok(BucketTake {
                allowed: allowed == 1,
                remaining: remaining.max(0) as u64,
                retry_after: Duration::from_millis(retry.max(0) as u64),
                reset: Duration::from_millis(reset.max(0) as u64),
            })
        })
    }

    fn kv_get(&self, key: String) -> StateFuture<Option<Vec<u8>>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let k = inner.key("kv", &key);
            let mut c = inner.conn().await?;
            redis::cmd("GET")
                .arg(k)
                .query_async(&mut c)
                .await
                .map_err(|e| inner.error(e))
        })
    }

    fn kv_set(&self, key: String, val: Vec<u8>, ttl: Duration) -> StateFuture<()> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let k = inner.key("kv", &key);
            let mut c = inner.conn().await?;
            redis::cmd("SET")
                .arg(k)
                .arg(val)
                .arg("PX")
                .arg(ms(ttl).max(1))
                .query_async::<()>(&mut c)
                .await
                .map_err(|e| inner.error(e))
        })
    }

    fn ping(&self) -> StateFuture<()> {
        self.ping_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("rediss://app:s3cret@redis.internal:6380/2"),
            "rediss://app:<redacted>@redis.internal:6380/2"
        );
        assert_eq!(
            redact_url("redis://:pw@localhost"),
            "redis://:<redacted>@localhost"
        );
        assert_eq!(
            redact_url("redis://localhost:6379"),
            "redis://localhost:6379"
        );
        assert_eq!(redact_url("redis://user@h/0"), "redis://user@h/0");
        assert_eq!(
            password_of("redis://u:p%40ss@h:1").as_deref(),
            Some("p%40ss")
        );
        assert_eq!(password_of("redis://h:1"), None);
    }

    #[test]
    fn bad_urls_are_refused_without_the_password() {
        let err = RedisState::new(RedisOptions {
            url: "redis://u:hunter2@[::1".into(),
            key_prefix: "t:".into(),
            pool_size: 1,
            timeout: Duration::from_millis(100),
        })
        .err()
        .expect("an invalid url");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
