//! `kv-get`/`kv-set`: the shared key/value store with expiry, in the calling
//! plugin's namespace.

use std::time::Duration;

use super::counters::timed;
use super::HostState;

/// TTL used when a plugin passes 0.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
const MAX_VALUE: usize = 1 << 20;

pub fn get(s: &mut HostState, key: &str) -> wasmtime::Result<Option<Vec<u8>>> {
    timed(s, |st, plugin| st.kv_get(plugin, key))
}

pub fn set(s: &mut HostState, key: &str, value: Vec<u8>, ttl_ms: u64) -> wasmtime::Result<()> {
    if value.len() > MAX_VALUE {
        tracing::warn!(plugin = &*s.plugin, "kv value too large; ignored");
        return Ok(());
    }
    let ttl = match ttl_ms {
        0 => DEFAULT_TTL,
        ms => Duration::from_millis(ms),
    };
    timed(s, |st, plugin| st.kv_set(plugin, key, value, ttl))
}
