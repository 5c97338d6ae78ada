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
    /// Largest single body buffered (a request for policies or model
    /// routing, a response for policies): agentgateway's
    /// `frontendPolicies.http.maxBufferSize`. Beyond it: 413.
    pub max_buffered_body: usize,
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
            max_buffered_body: 32 << 20,
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

/// The keys a bind may set for itself (`binds[].limits`): the ones that
/// govern its connections. The rest are shared by the whole process.
const CONNECTION_KEYS: &[&str] = &[
    "headerReadTimeout",
    "http2KeepAliveInterval",
    "maxConnections",
    "maxConcurrentStreams",
];

/// One bind's own connection limits (`binds[].limits`); a key not given
/// takes the top-level `limits:` value. A public port can so take fewer
/// connections, or a shorter header timeout, than a loopback one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BindLimits {
    #[serde(skip_serializing_if = "Option::is_none", with = "humantime_opt")]
    pub header_read_timeout: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none", with = "humantime_opt")]
    pub http2_keep_alive_interval: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_streams: Option<u32>,
}

impl BindLimits {
    /// The process-wide `limits`, with this bind's own values on top.
    pub fn over(&self, l: &Limits) -> Limits {
        Limits {
            header_read_timeout: self.header_read_timeout.unwrap_or(l.header_read_timeout),
            http2_keep_alive_interval: self
                .http2_keep_alive_interval
                .unwrap_or(l.http2_keep_alive_interval),
            max_connections: self.max_connections.unwrap_or(l.max_connections),
            max_concurrent_streams: self
                .max_concurrent_streams
                .unwrap_or(l.max_concurrent_streams),
            ..l.clone()
        }
    }
}

mod humantime_opt {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::humantime_serde_lite::serialize(d, s),
            None => s.serialize_none(),
        }
    }
}

/// Decode `binds[].limits`: connection keys only; a process-wide key is
/// refused with a pointer to the top-level `limits:`.
pub(crate) fn decode_bind_limits(d: &mut Diags, node: &Node, path: &str) -> Option<BindLimits> {
    let m = as_map(d, node, path)?;
    for (k, _) in m {
        if KEYS.contains(&k.name.as_str()) && !CONNECTION_KEYS.contains(&k.name.as_str()) {
            d.error(
                &k.loc,
                &join_key(path, &k.name),
                format!(
                    "`{}` is shared by the whole process: set it under the top-level `limits:`",
                    k.name
                ),
            );
        }
    }
    check_keys(d, m, path, KEYS);
    Some(connection_limits(d, m, path))
}

/// The connection keys of a `limits:` map, as given.
fn connection_limits(d: &mut Diags, m: &[(super::tree::Key, Node)], path: &str) -> BindLimits {
    let mut l = BindLimits {
        header_read_timeout: positive_duration(d, m, path, "headerReadTimeout"),
        http2_keep_alive_interval: positive_duration(d, m, path, "http2KeepAliveInterval"),
        ..BindLimits::default()
    };
    if let Some(v) = count(d, m, path, "maxConnections", 1, 1_000_000) {
        l.max_connections = Some(v as usize);
    }
    if let Some(v) = count(d, m, path, "maxConcurrentStreams", 1, 10_000) {
        l.max_concurrent_streams = Some(v as u32);
    }
    l
}

fn positive_duration(
    d: &mut Diags,
    m: &[(super::tree::Key, Node)],
    path: &str,
    key: &str,
) -> Option<Duration> {
    let n = get(m, key)?;
    let p = join_key(path, key);
    let v = duration(d, n, &p)?;
    if v.is_zero() {
        d.error(&n.loc, &p, "must be greater than zero");
        return None;
    }
    Some(v)
}

/// Decode `limits:`; keys not given keep their defaults.
pub(crate) fn decode_limits(d: &mut Diags, node: &Node, path: &str) -> Option<Limits> {
    let m = as_map(d, node, path)?;
    check_keys(d, m, path, KEYS);
    let mut l = connection_limits(d, m, path).over(&Limits::default());
    if let Some(v) = positive_duration(d, m, path, "pluginInstanceWait") {
        l.plugin_instance_wait = v;
    }
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
