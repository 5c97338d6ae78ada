//! `incr-counter`: fixed-window counters in the shared state.

use std::time::Duration;

use super::HostState;
use crate::policy::bindings::host::WindowCount;

pub fn incr(s: &HostState, key: &str, delta: i64, window_ms: u64) -> WindowCount {
    let c = s
        .env
        .state
        .incr(key, delta, Duration::from_millis(window_ms.max(1)));
    WindowCount {
        total: c.total,
        reset_ms: c.reset.as_millis() as u64,
    }
}
