//! Sliding-window arithmetic behind `window-take`, used by the memory
//! backend and mirrored line by line by the Redis backend's Lua script
//! (`redis.rs`), so both answer alike.
//!
//! Why sub-windows and not a log of every request: a log costs one entry per
//! unit counted (a `tokensPerDay: 1M` limit could hold a million), while
//! [`SUB_WINDOWS`] counters per key bound the memory whatever the limit.
//! The price is precision, and it is paid only toward refusing: a unit
//! counts from the start of its sub-window until the end of the last
//! sub-window that overlaps the period after it, so it may count up to one
//! sub-window (1% of the period) longer than an exact log would, and never
//! shorter. Hence no span of one period ever holds more admitted units than
//! the limit, on one gateway or across replicas sharing the backend.
//!
//! Sub-window `i` covers `[i*s, (i+1)*s)` with `s = ceil(window / 100)` ms
//! (epoch-aligned on the backend's clock, so replicas agree), and counts
//! while `(i+1)*s > now - window`.

use std::collections::VecDeque;
use std::time::Duration;

/// Sub-windows per period. 100 keeps the over-count within 1% of the period
/// and, in Redis, a key's hash under 128 fields (101 sub-windows + 4), so it
/// stays in Redis's compact listpack encoding.
pub const SUB_WINDOWS: u64 = 100;

/// Most limits one `window-take` call may carry (bounds one atomic step).
pub const MAX_LIMITS: usize = 16;

/// One limit of a `window-take` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowLimit {
    pub key: String,
    /// Units to add; 0 reads.
    pub amount: u64,
    pub limit: u64,
    pub window: Duration,
}

/// What a `window-take` answered for one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowTake {
    /// Room for `max(amount, 1)` more units, before the call charged.
    pub allowed: bool,
    /// Units counted in the last period, after the call.
    pub total: u64,
    pub remaining: u64,
    /// When refused: time until `max(amount, 1)` more units fit. 0 when allowed.
    pub retry_after: Duration,
    /// Time until the oldest counted unit ages out (0: nothing counted).
    pub reset: Duration,
}

/// Sub-window length for a period, in ms.
pub fn slot_ms(window_ms: u64) -> u64 {
    window_ms.div_ceil(SUB_WINDOWS).max(1)
}

/// A key's counted sub-windows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    /// Non-empty sub-windows, oldest first: (index, units).
    slots: VecDeque<(u64, u64)>,
    total: u64,
    /// Latest time seen: a clock that steps back never un-counts anything.
    last_ms: u64,
}

impl Window {
    /// The time the call runs at: never before the latest time seen.
    pub fn now(&self, clock_ms: u64) -> u64 {
        clock_ms.max(self.last_ms)
    }

    /// Drop the sub-windows that no longer overlap the period ending at `now`.
    pub fn trim(&mut self, now: u64, window_ms: u64) {
        self.last_ms = now;
        let s = slot_ms(window_ms);
        let cutoff = now.saturating_sub(window_ms) / s;
        let cutoff = if now >= window_ms { cutoff } else { 0 };
        while let Some(&(i, n)) = self.slots.front() {
            if i >= cutoff {
                break;
            }
            self.total = self.total.saturating_sub(n);
            self.slots.pop_front();
        }
    }

    /// Is there room for `max(amount, 1)` more units (after [`Self::trim`])?
    pub fn fits(&self, amount: u64, limit: u64) -> bool {
        self.total.saturating_add(amount.max(1)) <= limit
    }

    /// Count `amount` units at `now`.
    pub fn add(&mut self, now: u64, window_ms: u64, amount: u64) {
        if amount == 0 {
            return;
        }
        let i = now / slot_ms(window_ms);
        match self.slots.back_mut() {
            Some((last, n)) if *last >= i => *n = n.saturating_add(amount),
            _ => self.slots.push_back((i, amount)),
        }
        self.total = self.total.saturating_add(amount);
    }

    /// When sub-window `i` stops counting.
    fn ages_out(i: u64, window_ms: u64) -> u64 {
        (i + 1)
            .saturating_mul(slot_ms(window_ms))
            .saturating_add(window_ms)
    }

    /// The answer for this limit at `now`, `allowed` as decided before charging.
    pub fn report(
        &self,
        now: u64,
        window_ms: u64,
        amount: u64,
        limit: u64,
        allowed: bool,
    ) -> WindowTake {
        let wait = |at: u64| Duration::from_millis(at.saturating_sub(now));
        let retry_after = if allowed {
            Duration::ZERO
        } else {
            let need = amount.max(1);
            let excess = if need > limit {
                self.total
            } else {
                (self.total + need).saturating_sub(limit)
            };
            let mut freed = 0u64;
            let mut at = now;
            for &(i, n) in &self.slots {
                freed = freed.saturating_add(n);
                at = Self::ages_out(i, window_ms);
                if freed >= excess {
                    break;
                }
            }
            wait(at)
        };
        WindowTake {
            allowed,
            total: self.total,
            remaining: limit.saturating_sub(self.total),
            retry_after,
            reset: self
                .slots
                .front()
                .map_or(Duration::ZERO, |&(i, _)| wait(Self::ages_out(i, window_ms))),
        }
    }

    /// Nothing counted.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// When everything counted has aged out (the entry can be dropped).
    pub fn expires_at(&self, window_ms: u64) -> u64 {
        self.slots
            .back()
            .map_or(0, |&(i, _)| Self::ages_out(i, window_ms))
    }

    /// Heap bytes held by the sub-windows.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<(u64, u64)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    /// One take on one window, as the memory backend does it.
    fn take(w: &mut Window, clock: u64, amount: u64, limit: u64, force: bool) -> WindowTake {
        let now = w.now(clock);
        w.trim(now, MIN);
        let allowed = w.fits(amount, limit);
        if allowed || force {
            w.add(now, MIN, amount);
        }
        w.report(now, MIN, amount, limit, allowed)
    }

    #[test]
    fn the_window_edge_burst_is_refused() {
        // The case: 20 at hh:mm:58.8, 20 more at hh:(mm+1):00.3.
        let mut w = Window::default();
        let t0 = 1_700_000_000_000 / MIN * MIN + 58_800;
        for _ in 0..20 {
            assert!(take(&mut w, t0, 1, 20, false).allowed);
        }
        let t1 = t0 + 1_500;
        let r = take(&mut w, t1, 1, 20, false);
        assert!(!r.allowed);
        assert_eq!((r.total, r.remaining), (20, 0), "refusals charge nothing");
        // The 20 age out 60 s after their sub-window (600 ms) ends.
        let ages = (t0 / 600 + 1) * 600 + MIN;
        assert_eq!(r.retry_after, Duration::from_millis(ages - t1));
        assert_eq!(r.reset, r.retry_after);
        assert!(!take(&mut w, ages - 1, 1, 20, false).allowed);
        let r = take(&mut w, ages, 1, 20, false);
        assert!(r.allowed && r.total == 1, "{r:?}");
    }

    #[test]
    fn never_more_than_the_limit_in_any_period_and_at_most_one_slot_late() {
        // A client retrying every 7 ms for 5 minutes at 10 per minute.
        let mut w = Window::default();
        let mut admitted: Vec<u64> = Vec::new();
        let start = 1_000_003;
        let mut t = start;
        while t < start + 5 * MIN {
            if take(&mut w, t, 1, 10, false).allowed {
                admitted.push(t);
            }
            t += 7;
        }
        for (k, a) in admitted.iter().enumerate() {
            let in_period = admitted[k..].iter().take_while(|b| **b < a + MIN).count();
            assert!(
                in_period <= 10,
                "{in_period} admitted within a minute of {a}"
            );
        }
        // Exact would admit the 11th one period after the first; the
        // sub-windows admit it at most one sub-window (600 ms) + a step later.
        let late = admitted[10] - (admitted[0] + MIN);
        assert!(late <= 600 + 7, "{late}");
        assert!(admitted.len() >= 40, "{}", admitted.len());
    }

    #[test]
    fn reads_retry_after_and_forced_charges() {
        let mut w = Window::default();
        let t = 10 * MIN;
        // Tokens: reads allow while under the limit; the charge is forced.
        assert!(take(&mut w, t, 0, 30, false).allowed);
        assert_eq!(take(&mut w, t, 18, 30, true).total, 18);
        // The second charge lands in the next sub-window.
        assert!(take(&mut w, t + 700, 0, 30, false).allowed);
        let r = take(&mut w, t + 700, 18, 30, true);
        assert!(!r.allowed && r.total == 36, "forced past the limit: {r:?}");
        let r = take(&mut w, t + 800, 0, 30, false);
        assert!(!r.allowed && r.remaining == 0);
        // 36 counted; one more needs 7 gone: the first 18 must age out.
        assert_eq!(
            r.retry_after,
            Duration::from_millis(t + 600 + MIN - (t + 800))
        );
        assert!(!take(&mut w, t + 599 + MIN, 0, 30, false).allowed);
        let r = take(&mut w, t + 600 + MIN, 0, 30, false);
        assert!(r.allowed && r.total == 18, "{r:?}");
        // More than the limit never fits: wait until everything aged out.
        let r = take(&mut w, t + 600 + MIN, 31, 30, false);
        assert!(!r.allowed);
        assert_eq!(r.retry_after, Duration::from_millis(600));
    }

    #[test]
    fn a_clock_stepping_back_uncounts_nothing() {
        let mut w = Window::default();
        assert!(take(&mut w, 5 * MIN, 1, 1, false).allowed);
        let r = take(&mut w, 5 * MIN - 30_000, 1, 1, false);
        assert!(!r.allowed);
        assert_eq!(r.retry_after, Duration::from_millis(600 + MIN));
        assert_eq!(w.expires_at(MIN), 6 * MIN + 600);
    }

    #[test]
    fn slots_are_bounded() {
        let mut w = Window::default();
        for k in 0..10_000u64 {
            take(&mut w, k * 50, 1, u64::MAX, false);
            assert!(w.slots.len() as u64 <= SUB_WINDOWS + 1);
        }
        assert_eq!(slot_ms(1_000), 10);
        assert_eq!(slot_ms(1), 1);
        assert_eq!(slot_ms(3_600_000), 36_000);
    }
}
