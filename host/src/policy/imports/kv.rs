//! `kv-get`/`kv-set`: the shared key/value store with expiry.

use std::time::Duration;

use super::HostState;

/// TTL used when a plugin passes 0.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
const MAX_VALUE: usize = 1 << 20;

pub fn get(s: &HostState, key: &str) -> Option<Vec<u8>> {
    s.env.state.kv_get(key)
}

pub fn set(s: &HostState, key: &str, value: Vec<u8>, ttl_ms: u64) {
    if value.len() > MAX_VALUE {
        tracing::warn!(plugin = &*s.plugin, key, "kv value too large; ignored");
        return;
    }
    let ttl = match ttl_ms {
        0 => DEFAULT_TTL,
        ms => Duration::from_millis(ms),
    };
    s.env.state.kv_set(key, value, ttl)
}
