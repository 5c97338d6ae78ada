//! [`MemoryLedger`]: budgets in this process, under one mutex, with the
//! same semantics as the Redis scripts. Settled spend can be saved to and
//! loaded from a file ([`super::persist`]); open reservations are not
//! saved: a restart releases them, as their deadline would.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{BudgetBackend, Line, Reserved, Settle, State};
use crate::policy::state::{Clock, StateFuture, SystemClock};

/// How long a budget's spend is kept after its period ended (it is then
/// never read again: the next period has another key).
pub const KEEP_AFTER_MS: u64 = 24 * 3_600_000;

/// One budget in one period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Budget {
    pub settled: u64,
    pub resets_at_ms: u64,
    /// Open reservations: (id, amount, deadline ms).
    pub open: Vec<(String, u64, u64)>,
}

impl Budget {
    fn purge(&mut self, now: u64) {
        self.open.retain(|(_, _, deadline)| *deadline > now);
    }
    fn reserved(&self) -> u64 {
        self.open.iter().map(|(_, a, _)| *a).sum()
    }
}

pub struct MemoryLedger {
    budgets: Mutex<HashMap<String, Budget>>,
    clock: Arc<dyn Clock>,
    /// Settled spend changed since the last save.
    pub(super) dirty: AtomicBool,
}

impl Default for MemoryLedger {
    fn default() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }
}

impl MemoryLedger {
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        MemoryLedger {
            budgets: Mutex::new(HashMap::new()),
            clock,
            dirty: AtomicBool::new(false),
        }
    }

    /// The check and the reservation of every line, under the one lock.
    pub fn reserve_now(&self, id: &str, lines: &[Line], ttl_ms: u64) -> Reserved {
        let now = self.clock.now_ms();
        let mut g = self.budgets.lock();
        let mut refused = None;
        for (i, l) in lines.iter().enumerate() {
            let b = g.entry(l.key.clone()).or_default();
            b.resets_at_ms = l.resets_at_ms;
            b.purge(now);
            let used = b.settled.saturating_add(b.reserved());
            if refused.is_none() && used.saturating_add(l.amount) > l.limit {
                refused = Some(i);
            }
        }
        let mut states = Vec::with_capacity(lines.len());
        for l in lines {
            let b = g.get_mut(&l.key).expect("inserted above");
            if refused.is_none() {
                b.open
                    .push((id.to_owned(), l.amount, now.saturating_add(ttl_ms)));
            }
            let used = b.settled.saturating_add(b.reserved());
            states.push(State {
                remaining: l.limit.saturating_sub(used),
                resets_at_ms: l.resets_at_ms,
            });
        }
        Reserved { refused, states }
    }

    pub fn settle_now(&self, id: &str, lines: &[Settle]) {
        let now = self.clock.now_ms();
        let mut g = self.budgets.lock();
        for l in lines {
            let b = g.entry(l.key.clone()).or_default();
            b.resets_at_ms = b.resets_at_ms.max(l.resets_at_ms);
            b.open.retain(|(rid, ..)| rid != id);
            b.purge(now);
            if l.actual > 0 {
                b.settled = b.settled.saturating_add(l.actual);
                self.dirty.store(true, Ordering::Relaxed);
            }
        }
        g.retain(|_, b| b.resets_at_ms.saturating_add(KEEP_AFTER_MS) > now);
    }

    /// Settled spend per budget key, and when each period ends (to save).
    pub fn settled(&self) -> HashMap<String, (u64, u64)> {
        self.budgets
            .lock()
            .iter()
            .filter(|(_, b)| b.settled > 0)
            .map(|(k, b)| (k.clone(), (b.settled, b.resets_at_ms)))
            .collect()
    }

    /// Add saved spend (at startup); periods long over are skipped.
    pub fn load(&self, saved: HashMap<String, (u64, u64)>) {
        let now = self.clock.now_ms();
        let mut g = self.budgets.lock();
        for (k, (settled, resets)) in saved {
            if resets.saturating_add(KEEP_AFTER_MS) > now {
                let b = g.entry(k).or_default();
                b.settled = b.settled.saturating_add(settled);
                b.resets_at_ms = b.resets_at_ms.max(resets);
            }
        }
    }
}

impl BudgetBackend for MemoryLedger {
    fn reserve(&self, id: String, lines: Vec<Line>, ttl_ms: u64) -> StateFuture<Reserved> {
        let r = self.reserve_now(&id, &lines, ttl_ms);
        Box::pin(async move { Ok(r) })
    }
    fn settle(&self, id: String, lines: Vec<Settle>) -> StateFuture<()> {
        self.settle_now(&id, &lines);
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::state::ManualClock;

    fn line(key: &str, limit: u64, amount: u64) -> Line {
        Line {
            key: key.into(),
            limit,
            amount,
            resets_at_ms: u64::MAX / 2,
        }
    }

    #[test]
    fn all_or_none_and_settle_frees_the_rest() {
        let l = MemoryLedger::default();
        let r = l.reserve_now("a", &[line("k", 100, 60), line("t", 1000, 60)], 60_000);
        assert_eq!(r.refused, None);
        assert_eq!(r.states[0].remaining, 40);
        // The key has no room for 50: the team is not charged either.
        let r = l.reserve_now("b", &[line("t", 1000, 50), line("k", 100, 50)], 60_000);
        assert_eq!(r.refused, Some(1));
        assert_eq!(r.states[0].remaining, 940);
        let settle = |key: &str, actual| Settle {
            key: key.into(),
            actual,
            resets_at_ms: u64::MAX / 2,
        };
        l.settle_now("a", &[settle("k", 10), settle("t", 10)]);
        let r = l.reserve_now("b", &[line("t", 1000, 50), line("k", 100, 50)], 60_000);
        assert_eq!(r.refused, None);
        assert_eq!(r.states[1].remaining, 40);
        assert_eq!(l.settled()["k"].0, 10);
    }

    #[test]
    fn reservations_expire_by_their_deadline() {
        let clock = Arc::new(ManualClock::new(1_000));
        let l = MemoryLedger::with_clock(clock.clone());
        assert_eq!(l.reserve_now("a", &[line("k", 10, 10)], 500).refused, None);
        assert_eq!(
            l.reserve_now("b", &[line("k", 10, 1)], 500).refused,
            Some(0)
        );
        clock.advance(500);
        assert_eq!(l.reserve_now("b", &[line("k", 10, 10)], 500).refused, None);
    }
}
