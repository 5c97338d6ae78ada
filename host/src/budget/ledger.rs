//! [`Ledger`]: what the `budget-*` host imports call.
//!
//! It turns a plugin's budgets into storage keys (namespaced by plugin,
//! with unit, period and the period's first day, so each period starts at
//! zero), remembers which budgets each of this replica's open reservations
//! holds (so `budget-settle` needs only the id), and runs the backend call
//! through the [`StateStore`] (timeout, failure mode, health).
//!
//! Spend per key, team, model and day for the admin API is not served from
//! here: the keys admin API keeps its own per-day counters.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::memory::MemoryLedger;
use super::period::{self, Period};
use super::redis::RedisLedger;
use super::{persist, BudgetBackend, BudgetError, Line, Reserved, Settle, State, MAX_BUDGETS};
use crate::policy::state::{Clock, RedisState, StateStore, StateUnavailable, SystemClock};

/// What a budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Micro-dollars.
    Usd,
    Tokens,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Usd => "usd",
            Unit::Tokens => "tokens",
        }
    }
}

/// One budget as a plugin names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub key: String,
    pub unit: Unit,
    pub limit: u64,
    pub period: Period,
    /// IANA zone; empty: UTC.
    pub time_zone: String,
}

/// An amount in both units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amount {
    pub usd_micros: u64,
    pub tokens: u64,
}

impl Amount {
    fn of(&self, unit: Unit) -> u64 {
        match unit {
            Unit::Usd => self.usd_micros,
            Unit::Tokens => self.tokens,
        }
    }
}

/// What [`Ledger::reserve`] answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every budget had room: the reservation `id` is open.
    Reserved { id: String, states: Vec<State> },
    /// Budget `budget` (index in call order) had no room; nothing was reserved.
    Exhausted { budget: usize, states: Vec<State> },
}

/// A reservation this replica opened and has not closed.
struct Open {
    /// (storage key, unit, period end ms) per budget.
    lines: Vec<(String, Unit, u64)>,
    deadline_ms: u64,
}

/// How often (in reservations) forgotten ids are swept.
const SWEEP_EVERY: usize = 1024;
/// How long past its deadline a reservation's budgets are remembered, so a
/// request that outlived `reservationTimeout` still has its spend counted.
const REMEMBER_AFTER_MS: u64 = 3_600_000;

pub struct Ledger {
    backend: Arc<dyn BudgetBackend>,
    /// The memory backend, when spend is saved to a file.
    saved: Option<(Arc<MemoryLedger>, PathBuf)>,
    open: Mutex<HashMap<String, Open>>,
    clock: Arc<dyn Clock>,
}

impl Default for Ledger {
    fn default() -> Self {
        Self::over(Arc::new(MemoryLedger::default()))
    }
}

impl Ledger {
    pub fn over(backend: Arc<dyn BudgetBackend>) -> Self {
        Ledger {
            backend,
            saved: None,
            open: Mutex::new(HashMap::new()),
            clock: Arc::new(SystemClock),
        }
    }

    /// This ledger reading periods from `clock` (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Budgets in Redis, shared by every replica.
    pub fn redis(redis: Arc<RedisState>) -> Self {
        Self::over(Arc::new(RedisLedger::new(redis)))
    }

    /// Budgets in memory, saved under `dir` (loaded now; saved at most once
    /// a second while spend changes, and by [`Self::flush`]).
    pub fn memory_at(dir: PathBuf) -> Result<Arc<Self>, persist::PersistError> {
        let mem = Arc::new(MemoryLedger::default());
        mem.load(persist::load(&dir)?);
        let ledger = Arc::new(Ledger {
            saved: Some((mem.clone(), dir)),
            ..Self::over(mem)
        });
        let weak = Arc::downgrade(&ledger);
        std::thread::Builder::new()
            .name("sluice-budgets".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(1));
                match weak.upgrade() {
                    Some(l) => l.flush(),
                    None => return,
                }
            })
            .map_err(|source| persist::PersistError::Io {
                path: PathBuf::from("<thread>"),
                source,
            })?;
        Ok(ledger)
    }

    /// Save the memory ledger's spend now, if it changed (at shutdown).
    pub fn flush(&self) {
        let Some((mem, dir)) = &self.saved else {
            return;
        };
        if !mem.dirty.swap(false, Ordering::Relaxed) {
            return;
        }
        if let Err(e) = persist::save(dir, mem.settled()) {
            mem.dirty.store(true, Ordering::Relaxed);
            tracing::warn!(error = %e, "could not save budget spend");
        }
    }

    /// Reserve `amount` against every budget, all or none, for `ttl`.
    pub fn reserve(
        &self,
        store: &StateStore,
        plugin: &str,
        budgets: &[Budget],
        amount: Amount,
        ttl: Duration,
    ) -> Result<Outcome, BudgetError> {
        if budgets.len() > MAX_BUDGETS {
            return Err(BudgetError::TooMany(budgets.len()));
        }
        let now = self.clock.now_ms();
        let mut lines = Vec::with_capacity(budgets.len());
        let mut units = Vec::with_capacity(budgets.len());
        for b in budgets {
            let tz = period::zone(&b.time_zone)
                .ok_or_else(|| BudgetError::TimeZone(b.time_zone.clone()))?;
            let (start, resets_at_ms) = period::current(b.period, tz, now);
            let key = format!(
                "{plugin}:{}:{}:{}:{start}",
                b.key,
                b.unit.name(),
                b.period.name()
            );
            if lines.iter().any(|l: &Line| l.key == key) {
                return Err(BudgetError::Duplicate(b.key.clone()));
            }
            units.push(b.unit);
            lines.push(Line {
                key,
                limit: b.limit,
                amount: amount.of(b.unit),
                resets_at_ms,
            });
        }
        let id = ulid::Ulid::new().to_string();
        let ttl_ms = ttl.as_millis().min(u64::MAX as u128) as u64;
        let fallback = Reserved {
            refused: None,
            states: lines
                .iter()
                .map(|l| State {
                    remaining: l.limit,
                    resets_at_ms: l.resets_at_ms,
                })
                .collect(),
        };
        let keep: Vec<(String, Unit, u64)> = lines
            .iter()
            .zip(&units)
            .map(|(l, u)| (l.key.clone(), *u, l.resets_at_ms))
            .collect();
        let fut = self.backend.reserve(id.clone(), lines, ttl_ms);
        let r = store
            .call(fut, || fallback)
            .map_err(|StateUnavailable(e)| BudgetError::State(e))?;
        if let Some(budget) = r.refused {
            return Ok(Outcome::Exhausted {
                budget,
                states: r.states,
            });
        }
        let mut open = self.open.lock();
        if open.len() % SWEEP_EVERY == SWEEP_EVERY - 1 {
            open.retain(|_, o| o.deadline_ms.saturating_add(REMEMBER_AFTER_MS) > now);
        }
        open.insert(
            id.clone(),
            Open {
                lines: keep,
                deadline_ms: now.saturating_add(ttl_ms),
            },
        );
        Ok(Outcome::Reserved {
            id,
            states: r.states,
        })
    }

    /// Close reservation `id`, counting `actual` against each of its
    /// budgets (zero: a release). An id this replica does not know (never
    /// opened here, or closed already) does nothing.
    pub fn settle(&self, store: &StateStore, id: &str, actual: Amount) -> Result<(), BudgetError> {
        let Some(open) = self.open.lock().remove(id) else {
            return Ok(());
        };
        let lines = open
            .lines
            .into_iter()
            .map(|(key, unit, resets_at_ms)| Settle {
                key,
                actual: actual.of(unit),
                resets_at_ms,
            })
            .collect();
        let fut = self.backend.settle(id.to_owned(), lines);
        store
            .call(fut, || ())
            .map_err(|StateUnavailable(e)| BudgetError::State(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(key: &str, limit: u64) -> Budget {
        Budget {
            key: key.into(),
            unit: Unit::Usd,
            limit,
            period: Period::Month,
            time_zone: "Europe/Paris".into(),
        }
    }

    fn reserved(o: Outcome) -> (String, Vec<State>) {
        match o {
            Outcome::Reserved { id, states } => (id, states),
            other => panic!("{other:?}"),
        }
    }

    fn exhausted(o: Outcome) -> usize {
        match o {
            Outcome::Exhausted { budget, .. } => budget,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_request_across_the_period_edge_settles_in_its_own_period() {
        use crate::policy::state::ManualClock;
        let store = StateStore::memory();
        // 2026-12-31T22:59:59.900Z: 100 ms before January in Paris.
        let clock = Arc::new(ManualClock::new(1_798_757_999_900));
        let l = Ledger::default().with_clock(clock.clone());
        let ttl = Duration::from_secs(600);
        let a = |usd_micros| Amount {
            usd_micros,
            tokens: 0,
        };
        let (id, st) = reserved(
            l.reserve(&store, "budget", &[usd("key:a", 1000)], a(900), ttl)
                .unwrap(),
        );
        assert_eq!(st[0].resets_at_ms, 1_798_758_000_000);
        // In December, no room for another.
        exhausted(
            l.reserve(&store, "budget", &[usd("key:a", 1000)], a(900), ttl)
                .unwrap(),
        );
        clock.advance(100);
        // January starts at zero, while December's request is still open.
        let (_, st) = reserved(
            l.reserve(&store, "budget", &[usd("key:a", 1000)], a(900), ttl)
                .unwrap(),
        );
        assert_eq!(st[0].remaining, 100);
        // December's request settles in December, not in January.
        l.settle(&store, &id, a(800)).unwrap();
        let (_, st) = reserved(
            l.reserve(&store, "budget", &[usd("key:a", 1000)], a(100), ttl)
                .unwrap(),
        );
        assert_eq!(st[0].remaining, 0);
    }

    #[test]
    fn settle_by_id_frees_what_was_not_spent() {
        let store = StateStore::memory();
        let l = Ledger::default();
        let amount = Amount {
            usd_micros: 600,
            tokens: 9,
        };
        let ttl = Duration::from_secs(60);
        let (id, st) = reserved(
            l.reserve(&store, "budget", &[usd("key:a", 1000)], amount, ttl)
                .unwrap(),
        );
        assert_eq!(st[0].remaining, 400);
        let i = exhausted(
            l.reserve(&store, "budget", &[usd("key:a", 1000)], amount, ttl)
                .unwrap(),
        );
        assert_eq!(i, 0);
        l.settle(
            &store,
            &id,
            Amount {
                usd_micros: 100,
                tokens: 0,
            },
        )
        .unwrap();
        // Settling twice counts once.
        l.settle(&store, &id, amount).unwrap();
        let (_, st) = reserved(
            l.reserve(&store, "budget", &[usd("key:a", 1000)], amount, ttl)
                .unwrap(),
        );
        assert_eq!(st[0].remaining, 300);
        // Plugins do not share budgets.
        reserved(
            l.reserve(&store, "other", &[usd("key:a", 1000)], amount, ttl)
                .unwrap(),
        );
        assert!(matches!(
            l.reserve(&store, "budget", &[usd("a", 1), usd("a", 1)], amount, ttl),
            Err(BudgetError::Duplicate(_))
        ));
        let mut bad = usd("a", 1);
        bad.time_zone = "Nowhere/Else".into();
        assert!(matches!(
            l.reserve(&store, "budget", &[bad], amount, ttl),
            Err(BudgetError::TimeZone(_))
        ));
    }
}
