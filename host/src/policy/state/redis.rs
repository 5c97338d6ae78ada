//! [`RedisState`]: state shared by every replica through one Redis.
//!
//! - Connections: `poolSize` multiplexed [`ConnectionManager`]s, used round
//!   robin, each connected on first use and reconnecting by itself after the
//!   server goes away. TLS and credentials come from the URL (`rediss://`,
//!   `redis://user:pass@host:port/db`); the password never appears in logs or
//!   errors ([`redact_url`]).
//! - Atomicity: the windowed counter and the token bucket are Lua scripts
//!   (EVALSHA, falling back to loading the script on `NOSCRIPT`), run by the
//!   server in one step against the server's own clock (`TIME`), so replicas
//!   never race on a read-modify-write nor disagree on window edges. KV is a
//!   plain `GET` / `SET PX`. Every host call is exactly one round trip.
//! - Keys: `<keyPrefix><plugin>:kv:<key>`, `<keyPrefix><plugin>:ctr:<window
//!   ms>:<key>`, `<keyPrefix><plugin>:tb:<key>`; each expires with its data.
//! - Bounds: connecting and every command are bounded by `timeout` (the
//!   caller, [`super::StateStore`], bounds the whole call too).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script};
use tokio::sync::OnceCell;

use super::{Bucket, BucketTake, SharedState, StateError, StateFuture, WindowCount};

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
            }),
            rt,
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
