//! `incr-counter`, `window-take` and `take-tokens`: fixed-window counters,
//! sliding windows and token buckets in the shared state, in the calling
//! plugin's namespace.
//!
//! Time spent waiting for the store is credited back to the hook's CPU
//! deadline. A store that fails closed turns into a trap carrying
//! [`StateUnavailable`](crate::policy::state::StateUnavailable), which the
//! chain answers with 503.

use std::time::{Duration, Instant};

use super::HostState;
use crate::policy::bindings::host::{
    Bucket, BucketTake, WindowCount, WindowLimit, WindowTakeResult,
};
use crate::policy::state;

/// Run one state call, crediting the time waited to the deadline.
pub(super) fn timed<T>(
    s: &mut HostState,
    f: impl FnOnce(&state::StateStore, &str) -> Result<T, state::StateUnavailable>,
) -> wasmtime::Result<T> {
    let started = Instant::now();
    let env = s.env.clone();
    let r = f(&env.state, &s.plugin);
    s.wait_credit += started.elapsed();
    s.host_wait += started.elapsed();
    r.map_err(wasmtime::Error::new)
}

pub fn incr(
    s: &mut HostState,
    key: &str,
    delta: i64,
    window_ms: u64,
) -> wasmtime::Result<WindowCount> {
    let window = Duration::from_millis(window_ms.max(1));
    let c = timed(s, |st, plugin| st.incr(plugin, key, delta, window))?;
    Ok(WindowCount {
        total: c.total,
        reset_ms: c.reset.as_millis() as u64,
    })
}

pub fn take(
    s: &mut HostState,
    key: &str,
    tokens: u64,
    drain: bool,
    b: Bucket,
) -> wasmtime::Result<BucketTake> {
    let bucket = state::Bucket {
        max_tokens: b.max_tokens,
        tokens_per_fill: b.tokens_per_fill.max(1),
        fill_interval: Duration::from_millis(b.fill_interval_ms.max(1)),
    };
    let t = timed(s, |st, plugin| st.take(plugin, key, bucket, tokens, drain))?;
    Ok(BucketTake {
        allowed: t.allowed,
        remaining: t.remaining,
        retry_after_ms: t.retry_after.as_millis() as u64,
        reset_ms: t.reset.as_millis() as u64,
    })
}

/// Why a `window-take` call was refused outright (a plugin bug, so a trap).
#[derive(Debug, thiserror::Error)]
pub enum WindowTakeError {
    #[error("window-take: {0} limits in one call (at most {max})", max = state::window::MAX_LIMITS)]
    TooMany(usize),
    /// The memory backend and the Lua script would both read one stored
    /// window twice and count the call's charge once.
    #[error("window-take: key `{0}` with the same window twice in one call")]
    Duplicate(String),
}

pub fn window_take(
    s: &mut HostState,
    limits: Vec<WindowLimit>,
    force: bool,
) -> wasmtime::Result<Vec<WindowTakeResult>> {
    if limits.len() > state::window::MAX_LIMITS {
        return Err(wasmtime::Error::new(WindowTakeError::TooMany(limits.len())));
    }
    let limits: Vec<state::WindowLimit> = limits
        .into_iter()
        .map(|l| state::WindowLimit {
            key: l.key,
            amount: l.amount,
            limit: l.limit,
            window: Duration::from_millis(l.window_ms.max(1)),
        })
        .collect();
    for (i, a) in limits.iter().enumerate() {
        if limits[..i]
            .iter()
            .any(|b| b.key == a.key && b.window == a.window)
        {
            return Err(wasmtime::Error::new(WindowTakeError::Duplicate(
                a.key.clone(),
            )));
        }
    }
    let taken = timed(s, |st, plugin| st.window_take(plugin, &limits, force))?;
    Ok(taken
        .into_iter()
        .map(|t| WindowTakeResult {
            allowed: t.allowed,
            total: t.total,
            remaining: t.remaining,
            retry_after_ms: t.retry_after.as_millis() as u64,
            reset_ms: t.reset.as_millis() as u64,
        })
        .collect())
}
