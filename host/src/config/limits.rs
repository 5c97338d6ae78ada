//! The top-level `limits:` section: resource caps that keep one client (or a
//! hostile one) from exhausting the gateway.
//!
//! Every key has a default that protects a laptop and a shared deployment
//! alike, so an operator only writes the ones to change. Unknown keys are
//! refused like everywhere else in the config.

use std::time::Duration;

use serde::Serialize;

use super::decode::{as_map, check_keys, duration, get, integer, string};
use super::error::Diags;
use super::tree::{join_key, Node};
use super::units::parse_size;

/// Resource limits. All apply per gateway process; `maxConnections` and
/// `maxConcurrentStreams` per listening port and per connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Time a client has to send a request's headers (slowloris).
    #[serde(with = "humantime_serde_lite")]
    pub header_read_timeout: Duration,
    /// HTTP/2 PING interval on idle connections (dead peers are dropped).
    #[serde(with = "humantime_serde_lite")]
    pub http2_keep_alive_interval: Duration,
    /// Concurrent connections per listening port. Beyond it a new connection
    /// gets `503` (HTTP/1.1) and is closed.
    pub max_connections: usize,
    /// Concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// Request bytes buffered for policies, across all requests at once.
    /// A request that would go beyond it gets `503` with `Retry-After`.
    pub body_buffer_budget: u64,
    /// Instances of one plugin attachment running at once (each holds up to
    /// its `memoryLimit`). Read at start; a config reload keeps the old value.
    pub plugin_instances: usize,
    /// How long a call waits for a free instance, then fails per the
    /// plugin's `failureMode`.
    #[serde(with = "humantime_serde_lite")]
    pub plugin_instance_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(30),
            http2_keep_alive_interval: Duration::from_secs(30),
            max_connections: 1024,
            max_concurrent_streams: 128,
            body_buffer_budget: 256 << 20,
            plugin_instances: 16,
            plugin_instance_wait: Duration::from_secs(1),
        }
    }
}

/// Serialize durations as humantime strings (`30s`).
mod humantime_serde_lite {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

const KEYS: &[&str] = &[
    "headerReadTimeout",
    "http2KeepAliveInterval",
    "maxConnections",
    "maxConcurrentStreams",
    "bodyBufferBudget",
    "pluginInstances",
    "pluginInstanceWait",
];

/// Decode `limits:`; keys not given keep their defaults.
pub(crate) fn decode_limits(d: &mut Diags, node: &Node, path: &str) -> Option<Limits> {
    let m = as_map(d, node, path)?;
    check_keys(d, m, path, KEYS);
    let mut l = Limits::default();
    let positive_duration = |d: &mut Diags, key: &str, slot: &mut Duration| {
        if let Some(n) = get(m, key) {
            let p = join_key(path, key);
            if let Some(v) = duration(d, n, &p) {
                if v.is_zero() {
                    d.error(&n.loc, &p, "must be greater than zero");
                } else {
                    *slot = v;
                }
            }
        }
    };
    positive_duration(d, "headerReadTimeout", &mut l.header_read_timeout);
    positive_duration(
        d,
        "http2KeepAliveInterval",
        &mut l.http2_keep_alive_interval,
    );
    if let Some(v) = count(d, m, path, "maxConnections", 1, 1_000_000) {
        l.max_connections = v as usize;
    }
    if let Some(v) = count(d, m, path, "maxConcurrentStreams", 1, 10_000) {
        l.max_concurrent_streams = v as u32;
    }
    positive_duration(d, "pluginInstanceWait", &mut l.plugin_instance_wait);
    if let Some(v) = count(d, m, path, "pluginInstances", 1, 4096) {
        l.plugin_instances = v as usize;
    }
    if let Some(n) = get(m, "bodyBufferBudget") {
        let p = join_key(path, "bodyBufferBudget");
        if let Some(s) = string(d, n, &p) {
            match parse_size(&s) {
                Ok(0) => d.error(&n.loc, &p, "must be greater than zero"),
                Ok(v) => l.body_buffer_budget = v,
                Err(e) => d.error(&n.loc, &p, e),
            }
        }
    }
    Some(l)
}

fn count(
    d: &mut Diags,
    m: &[(super::tree::Key, Node)],
    path: &str,
    key: &str,
    min: i128,
    max: i128,
) -> Option<i128> {
    let n = get(m, key)?;
    let p = join_key(path, key);
    let v = integer(d, n, &p)?;
    if v < min || v > max {
        d.error(
            &n.loc,
            &p,
            format!("{} is out of range ({min}-{max})", n.shown()),
        );
        return None;
    }
    Some(v)
}
