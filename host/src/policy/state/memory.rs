//! [`MemoryState`]: the in-process backend. One mutex, expired entries swept
//! periodically, time from an injectable [`Clock`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::window::Window;
use super::{
    Bucket, BucketTake, Clock, Level, SharedState, StateFuture, SystemClock, WindowCount,
    WindowLimit, WindowTake,
};

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
    /// (key, window ms) → sliding window (`window-take`).
    windows: HashMap<(String, u64), Window>,
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
        self.windows.retain(|(_, w), win| win.expires_at(*w) > now);
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

    /// Sliding windows currently held, and the heap bytes of their
    /// sub-windows (keys not included).
    pub fn windows(&self) -> (usize, usize) {
        let g = self.inner.lock();
        let bytes = g.windows.values().map(Window::heap_bytes).sum();
        (g.windows.len(), bytes)
    }

    /// `window-take` now. Under the one lock, so the check and the charge
    /// of every limit are one step. An empty window is not stored.
    pub fn window_take_now(&self, limits: &[WindowLimit], force: bool) -> Vec<WindowTake> {
        let clock = self.clock.now_ms();
        let mut g = self.inner.lock();
        g.tick(clock);
        let mut wins: Vec<(Window, u64, u64)> = limits
            .iter()
            .map(|l| {
                let w = ms(l.window).max(1);
                let mut win = g.windows.remove(&(l.key.clone(), w)).unwrap_or_default();
                let now = win.now(clock);
                win.trim(now, w);
                (win, w, now)
            })
            .collect();
        let fits: Vec<bool> = wins
            .iter()
            .zip(limits)
            .map(|((win, _, _), l)| win.fits(l.amount, l.limit))
            .collect();
        let charge = force || fits.iter().all(|f| *f);
        let mut out = Vec::with_capacity(limits.len());
        for (((win, w, now), l), allowed) in wins.iter_mut().zip(limits).zip(fits) {
            if charge {
                win.add(*now, *w, l.amount);
            }
            out.push(win.report(*now, *w, l.amount, l.limit, allowed));
        }
        for ((win, w, _), l) in wins.into_iter().zip(limits) {
            if !win.is_empty() {
                g.windows.insert((l.key.clone(), w), win);
            }
        }
        out
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
    fn window_take(&self, limits: Vec<WindowLimit>, force: bool) -> StateFuture<Vec<WindowTake>> {
        let r = self.window_take_now(&limits, force);
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

    fn lim(key: &str, amount: u64, limit: u64, window_ms: u64) -> WindowLimit {
        WindowLimit {
            key: key.into(),
            amount,
            limit,
            window: Duration::from_millis(window_ms),
        }
    }

    #[test]
    fn windows_slide_across_the_clock_minute() {
        // 20 per minute: 20 at hh:mm:58.8, then hh:(mm+1):00.3 is refused
        // (fixed windows admitted 20 more there).
        let clock = Arc::new(ManualClock::new(
            1_700_000_000_000 / 60_000 * 60_000 + 58_800,
        ));
        let s = MemoryState::with_clock(clock.clone());
        let l = [lim("k", 1, 20, 60_000)];
        for n in 1..=20 {
            let r = s.window_take_now(&l, false);
            assert!(r[0].allowed && r[0].total == n, "{r:?}");
        }
        clock.advance(1_500);
        let r = s.window_take_now(&l, false)[0];
        assert!(!r.allowed && r.total == 20, "{r:?}");
        // The first sub-window (600 ms) ends at 59.4; it ages out at +1 min.
        assert_eq!(r.retry_after, Duration::from_millis(600 + 60_000 - 1_500));
        clock.advance(r.retry_after.as_millis() as u64 - 1);
        assert!(!s.window_take_now(&l, false)[0].allowed);
        clock.advance(1);
        assert!(s.window_take_now(&l, false)[0].allowed);
    }

    #[test]
    fn window_limits_are_all_or_nothing() {
        let (clock, s) = store();
        let both = [lim("sec", 1, 2, 1_000), lim("min", 1, 3, 60_000)];
        assert!(s.window_take_now(&both, false).iter().all(|r| r.allowed));
        assert!(s.window_take_now(&both, false).iter().all(|r| r.allowed));
        // The per-second limit is full: nothing is charged to the minute.
        let r = s.window_take_now(&both, false);
        assert!(!r[0].allowed && r[1].allowed, "{r:?}");
        assert_eq!((r[0].total, r[1].total), (2, 2));
        clock.advance(1_010);
        let r = s.window_take_now(&both, false);
        assert!(r[0].allowed && r[1].allowed && r[1].total == 3, "{r:?}");
        // Now the minute refuses; the retry is the minute's.
        clock.advance(1_010);
        let r = s.window_take_now(&both, false);
        assert!(r[0].allowed && !r[1].allowed, "{r:?}");
        assert_eq!(r[0].total, 0, "the second was not charged");
        assert!(r[1].retry_after > Duration::from_secs(57), "{r:?}");
        // A read (amount 0) charges nothing; force charges past the limit.
        let tok = [lim("tok", 0, 10, 60_000)];
        assert!(s.window_take_now(&tok, false)[0].allowed);
        assert_eq!(s.windows().0, 1, "empty windows and reads store nothing");
        let r = s.window_take_now(&[lim("tok", 25, 10, 60_000)], true)[0];
        assert!(!r.allowed && r.total == 25 && r.remaining == 0, "{r:?}");
        assert!(!s.window_take_now(&tok, false)[0].allowed);
    }

    #[test]
    fn windows_memory_is_bounded_and_swept() {
        let (clock, s) = store();
        for k in 0..1_000u64 {
            s.window_take_now(&[lim(&format!("k{}", k % 10), 1, 1_000_000, 60_000)], false);
            clock.advance(97);
        }
        let (n, bytes) = s.windows();
        assert_eq!(n, 10);
        // At most 101 sub-windows of 16 bytes each per key (plus growth slack).
        assert!(bytes <= 10 * 128 * 16, "{bytes}");
        clock.advance(60_000 + 600);
        s.sweep();
        assert_eq!(s.windows().0, 0);
    }
}
