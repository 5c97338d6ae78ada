//! `log`: plugin log lines go to `tracing`, tagged with plugin and request id.
//! Lines are truncated so a plugin cannot flood the logs with huge messages.

use super::HostState;
use crate::policy::bindings::host::Level;

const MAX_LINE: usize = 4096;

pub fn log(s: &HostState, level: Level, message: &str) {
    let mut end = message.len().min(MAX_LINE);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let msg = &message[..end];
    let plugin = &*s.plugin;
    let request_id = s.call.request_id.as_str();
    match level {
        Level::Trace => tracing::trace!(target: "sluice::plugin", plugin, request_id, "{msg}"),
        Level::Debug => tracing::debug!(target: "sluice::plugin", plugin, request_id, "{msg}"),
        Level::Info => tracing::info!(target: "sluice::plugin", plugin, request_id, "{msg}"),
        Level::Warn => tracing::warn!(target: "sluice::plugin", plugin, request_id, "{msg}"),
        Level::Error => tracing::error!(target: "sluice::plugin", plugin, request_id, "{msg}"),
    }
}
