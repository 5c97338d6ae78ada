//! Shared state behind the `incr-counter`, `take-tokens`, `window-take` and
//! `kv-*` host imports.
//!
//! Counters, buckets and KV live in the host (not in plugin memory) so they
//! are atomic, expire, survive hot swaps and, with the Redis backend, are
//! shared between replicas. Each capability backend implements the one async,
//! fallible trait [`SharedState`]: [`MemoryState`] (in process, the default)
//! and [`RedisState`]. [`StateStore`] is what the host imports call: it puts
//! every key in the calling plugin's namespace, waits for the backend without
//! stalling a tokio worker (like `fetch`), bounds every call by the timeout,
//! applies the configured failure mode and tracks the store's health.

use std::time::Duration;

use futures_util::future::BoxFuture;

mod bucket;
pub mod clock;
mod health;
pub mod memory;
pub mod redis;
mod setup;
mod store;
pub mod window;

pub use bucket::{Bucket, BucketTake, Level};
pub use clock::{Clock, ManualClock, SystemClock};
pub use health::StateMetrics;
pub use memory::MemoryState;
pub use redis::{redact_url, RedisOptions, RedisState};
pub use setup::{from_config, replica_id};
pub use store::{OnOutage, StateStore, StateUnavailable, MAX_KEY};
pub use window::{WindowLimit, WindowTake};

/// A fixed-window counter reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    /// Total in the current window after the call.
    pub total: i64,
    /// Time until the current window ends.
    pub reset: Duration,
}

/// Why a store call failed. Messages never carry credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The store could not be reached (connection refused, reset, DNS...).
    #[error("state store unreachable: {0}")]
    Unavailable(String),
    /// No answer within the configured timeout.
    #[error("state store did not answer within {0:?}")]
    Timeout(Duration),
    /// The store answered with an error.
    #[error("state store error: {0}")]
    Backend(String),
}

impl StateError {
    /// Metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            StateError::Unavailable(_) => "unavailable",
            StateError::Timeout(_) => "timeout",
            StateError::Backend(_) => "backend",
        }
    }
}

pub type StateFuture<T> = BoxFuture<'static, Result<T, StateError>>;

/// A state backend. Every call is atomic on the backend's side (no
/// read-modify-write across replicas). Keys arrive already namespaced by
/// [`StateStore`] (`<plugin>:<key>`).
pub trait SharedState: Send + Sync {
    /// `memory` or `redis`, for logs and metrics.
    fn backend(&self) -> &'static str;

    /// Where the returned futures must run. `None`: they are ready when
    /// first polled (in-process backends), so callers never wait.
    fn runtime(&self) -> Option<tokio::runtime::Handle>;

    /// Add `delta` to `key` in the current fixed window of length `window`
    /// (windows are aligned to the epoch of the backend's clock, so replicas
    /// sharing a backend agree).
    fn incr(&self, key: String, delta: i64, window: Duration) -> StateFuture<WindowCount>;

    /// Check and charge sliding-window limits in one atomic step (see
    /// `window.rs`): every limit's `amount` is added only if each has room,
    /// or regardless with `force`. One answer per limit, in order. Keys are
    /// namespaced like the others; the period is part of the stored key.
    fn window_take(&self, limits: Vec<WindowLimit>, force: bool) -> StateFuture<Vec<WindowTake>>;

    /// Take `n` tokens from the bucket `key` (see [`Bucket::take`]).
    fn take(&self, key: String, bucket: Bucket, n: u64, drain: bool) -> StateFuture<BucketTake>;

    fn kv_get(&self, key: String) -> StateFuture<Option<Vec<u8>>>;
    fn kv_set(&self, key: String, val: Vec<u8>, ttl: Duration) -> StateFuture<()>;

    /// One round trip, to learn whether the store answers.
    fn ping(&self) -> StateFuture<()>;
}
