//! [`MemoryState`]: the in-process backend. One mutex, expired entries swept
//! periodically, time from an injectable [`Clock`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::{Bucket, BucketTake, Clock, Level, SharedState, StateFuture, SystemClock, WindowCount};

/// How often (in calls) the store sweeps expired entries.
const SWEEP_EVERY: u64 = 1024;

pub struct MemoryState {
    inner: Mutex<Inner>,
    clock: Arc<dyn Clock>,
}

impl Default for MemoryState {
    fn default() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }
}

#[derive(Default)]
struct Inner {
    /// (key, window ms) → (window start ms, total).
    counters: HashMap<(String, u64), (u64, i64)>,
    /// key → (level, expiry ms).
    buckets: HashMap<String, (Level, u64)>,
    /// key → (value, expiry ms).
    kv: HashMap<String, (Vec<u8>, u64)>,
    calls: u64,
}

impl Inner {
    fn tick(&mut self, now: u64) {
        self.calls += 1;
        if self.calls.is_multiple_of(SWEEP_EVERY) {
            self.sweep(now);
        }
    }
    fn sweep(&mut self, now: u64) {
        self.counters
            .retain(|(_, w), (start, _)| start.saturating_add(*w) > now);
        self.buckets.retain(|_, (_, exp)| *exp > now);
        self.kv.retain(|_, (_, exp)| *exp > now);
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

impl MemoryState {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store reading time from `clock` (tests use a [`super::ManualClock`]).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        MemoryState {
            inner: Mutex::new(Inner::default()),
            clock,
        }
    }

    /// Entries currently held (counters, kv), expired or not.
    pub fn len(&self) -> (usize, usize) {
        let g = self.inner.lock();
        (g.counters.len(), g.kv.len())
    }

    /// Drop expired entries now.
    pub fn sweep(&self) {
        let now = self.clock.now_ms();
        self.inner.lock().sweep(now);
    }

    pub fn incr_now(&self, key: &str, delta: i64, window: Duration) -> WindowCount {
        let w = ms(window).max(1);
        let now = self.clock.now_ms();
        let start = now - now % w;
        let mut g = self.inner.lock();
        g.tick(now);
        let entry = g.counters.entry((key.to_owned(), w)).or_insert((start, 0));
        if entry.0 != start {
            *entry = (start, 0);
        }
        entry.1 = entry.1.saturating_add(delta);
        WindowCount {
            total: entry.1,
            reset: Duration::from_millis(start + w - now),
        }
    }

    pub fn take_now(&self, key: &str, bucket: Bucket, n: u64, drain: bool) -> BucketTake {
        let now = self.clock.now_ms();
        let mut g = self.inner.lock();
        g.tick(now);
        let level = g
            .buckets
            .get(key)
            .filter(|(_, exp)| *exp > now)
            .map(|(l, _)| *l);
        let (level, take) = bucket.take(level, now, n, drain);
        let exp = now.saturating_add(ms(take.reset + bucket.ttl()));
        g.buckets.insert(key.to_owned(), (level, exp));
        take
    }

    pub fn kv_get_now(&self, key: &str) -> Option<Vec<u8>> {
        let now = self.clock.now_ms();
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

    pub fn kv_set_now(&self, key: &str, val: Vec<u8>, ttl: Duration) {
        let now = self.clock.now_ms();
        let mut g = self.inner.lock();
        g.tick(now);
        g.kv.insert(key.to_owned(), (val, now.saturating_add(ms(ttl))));
    }
}

impl SharedState for MemoryState {
    fn backend(&self) -> &'static str {
        "memory"
    }
    fn runtime(&self) -> Option<tokio::runtime::Handle> {
        None
    }
    fn incr(&self, key: String, delta: i64, window: Duration) -> StateFuture<WindowCount> {
        let r = self.incr_now(&key, delta, window);
        Box::pin(std::future::ready(Ok(r)))
    }
    fn take(&self, key: String, bucket: Bucket, n: u64, drain: bool) -> StateFuture<BucketTake> {
        let r = self.take_now(&key, bucket, n, drain);
        Box::pin(std::future::ready(Ok(r)))
    }
    fn kv_get(&self, key: String) -> StateFuture<Option<Vec<u8>>> {
        let r = self.kv_get_now(&key);
        Box::pin(std::future::ready(Ok(r)))
    }
    fn kv_set(&self, key: String, val: Vec<u8>, ttl: Duration) -> StateFuture<()> {
        self.kv_set_now(&key, val, ttl);
        Box::pin(std::future::ready(Ok(())))
    }
    fn ping(&self) -> StateFuture<()> {
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::state::ManualClock;

    fn store() -> (Arc<ManualClock>, MemoryState) {
        let clock = Arc::new(ManualClock::new(1_000_000));
        (clock.clone(), MemoryState::with_clock(clock))
    }

    #[test]
    fn counters_window_and_expire() {
        let (clock, s) = store();
        let w = Duration::from_millis(30_000);
        assert_eq!(s.incr_now("k", 2, w).total, 2);
        clock.advance(5_000);
        let c = s.incr_now("k", 3, w);
        assert_eq!(c.total, 5);
        // 1_005_000 is 15 s into the window starting at 990_000.
        assert_eq!(c.reset, Duration::from_millis(15_000));
        assert_eq!(s.incr_now("other", 0, w).total, 0);
        // A different window length is a different counter.
        assert_eq!(s.incr_now("k", 1, Duration::from_secs(60)).total, 1);
        clock.advance(15_000);
        assert_eq!(s.incr_now("k", 0, w).total, 0, "a new window starts empty");
        s.sweep();
        assert!(s.len().0 <= 3, "{:?}", s.len());
        clock.advance(3_600_000);
        s.sweep();
        assert_eq!(s.len().0, 0);
    }

    #[test]
    fn kv_ttl() {
        let (clock, s) = store();
        s.kv_set_now("a", b"1".to_vec(), Duration::from_millis(20));
        assert_eq!(s.kv_get_now("a").as_deref(), Some(&b"1"[..]));
        clock.advance(19);
        assert!(s.kv_get_now("a").is_some());
        clock.advance(1);
        assert_eq!(s.kv_get_now("a"), None);
        s.kv_set_now("b", b"2".to_vec(), Duration::from_millis(1));
        clock.advance(5);
        s.sweep();
        assert_eq!(s.len().1, 0);
    }

    #[test]
    fn buckets_refill_with_the_clock() {
        let (clock, s) = store();
        let b = Bucket {
            max_tokens: 2,
            tokens_per_fill: 1,
            fill_interval: Duration::from_secs(10),
        };
        assert!(s.take_now("b", b, 1, false).allowed);
        assert!(s.take_now("b", b, 1, false).allowed);
        let t = s.take_now("b", b, 1, false);
        assert!(!t.allowed);
        assert_eq!(t.retry_after, Duration::from_secs(10));
        clock.advance(10_000);
        assert!(s.take_now("b", b, 1, false).allowed);
        assert!(!s.take_now("b", b, 1, false).allowed);
        // Other keys have their own bucket.
        assert!(s.take_now("c", b, 2, false).allowed);
    }
}
