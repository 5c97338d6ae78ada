//! Shared state behind the `incr-counter` and `kv-*` host imports.
//!
//! Counters and KV live in the host (not in plugin memory) so they are atomic,
//! expire, survive hot swaps and, with a Redis implementation of
//! [`SharedState`], are shared between replicas. Calls are synchronous.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// A fixed-window counter reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    /// Total in the current window after the call.
    pub total: i64,
    /// Time until the current window ends.
    pub reset: Duration,
}

/// The store behind counters and KV. Implementations must be atomic per call.
pub trait SharedState: Send + Sync {
    /// Add `delta` to `key` in the current fixed window of length `window`
    /// (windows are aligned to the Unix epoch, so replicas agree).
    fn incr(&self, key: &str, delta: i64, window: Duration) -> WindowCount;
    fn kv_get(&self, key: &str) -> Option<Vec<u8>>;
    fn kv_set(&self, key: &str, val: Vec<u8>, ttl: Duration);
}

/// How often (in calls) the in-memory store sweeps expired entries.
const SWEEP_EVERY: u64 = 1024;

/// In-process [`SharedState`]: one mutex, expired entries swept periodically.
#[derive(Default)]
pub struct MemoryState {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// (key, window ms, window start ms) → (total, window end as Instant).
    counters: HashMap<(String, u64, u64), (i64, Instant)>,
    kv: HashMap<String, (Vec<u8>, Instant)>,
    calls: u64,
}

impl Inner {
    fn tick(&mut self, now: Instant) {
        self.calls += 1;
        if self.calls.is_multiple_of(SWEEP_EVERY) {
            self.sweep(now);
        }
    }
    fn sweep(&mut self, now: Instant) {
        self.counters.retain(|_, (_, end)| *end > now);
        self.kv.retain(|_, (_, exp)| *exp > now);
    }
}

impl MemoryState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Entries currently held (counters, kv), expired or not.
    pub fn len(&self) -> (usize, usize) {
        let g = self.inner.lock();
        (g.counters.len(), g.kv.len())
    }

    /// Drop expired entries now.
    pub fn sweep(&self) {
        self.inner.lock().sweep(Instant::now());
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl SharedState for MemoryState {
    fn incr(&self, key: &str, delta: i64, window: Duration) -> WindowCount {
        let window_ms = (window.as_millis() as u64).max(1);
        let now_ms = unix_ms();
        let start = now_ms - now_ms % window_ms;
        let reset = Duration::from_millis(start + window_ms - now_ms);
        let now = Instant::now();
        let mut g = self.inner.lock();
        g.tick(now);
        let entry = g
            .counters
            .entry((key.to_owned(), window_ms, start))
            .or_insert((0, now + reset));
        entry.0 = entry.0.saturating_add(delta);
        WindowCount {
            total: entry.0,
            reset,
        }
    }

    fn kv_get(&self, key: &str) -> Option<Vec<u8>> {
        let now = Instant::now();
        let mut g = self.inner.lock();
        g.tick(now);
        match g.kv.get(key) {
            Some((v, exp)) if *exp > now => Some(v.clone()),
            Some(_) => {
                g.kv.remove(key);
                None
            }
            None => None,
        }
    }

    fn kv_set(&self, key: &str, val: Vec<u8>, ttl: Duration) {
        let now = Instant::now();
        let mut g = self.inner.lock();
        g.tick(now);
        g.kv.insert(key.to_owned(), (val, now + ttl));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_window_and_expire() {
        let s = MemoryState::new();
        let w = Duration::from_millis(30);
        assert_eq!(s.incr("k", 2, w).total, 2);
        let c = s.incr("k", 3, w);
        // Either still in the same window (5) or a fresh one (3).
        assert!(c.total == 5 || c.total == 3, "{c:?}");
        assert!(c.reset <= w);
        assert_eq!(s.incr("other", 0, w).total, 0);
        std::thread::sleep(Duration::from_millis(70));
        assert_eq!(s.incr("k", 0, w).total, 0);
        s.sweep();
        // Only the entries of the current window remain.
        assert!(s.len().0 <= 1, "{:?}", s.len());
    }

    #[test]
    fn kv_ttl() {
        let s = MemoryState::new();
        s.kv_set("a", b"1".to_vec(), Duration::from_millis(20));
        assert_eq!(s.kv_get("a").as_deref(), Some(&b"1"[..]));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(s.kv_get("a"), None);
        s.kv_set("b", b"2".to_vec(), Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        s.sweep();
        assert_eq!(s.len().1, 0);
    }
}
