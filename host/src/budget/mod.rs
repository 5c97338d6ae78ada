//! Budgets: spend limits per key or per group, reserved at admission and
//! settled at completion, behind the `budget-*` host imports.
//!
//! Why in the host and not in the plugin's KV: the invariant "settled spend
//! plus open reservations never exceeds the limit, at every admission on
//! every replica" needs a check-and-reserve over several budgets in one
//! atomic step, and reservations that expire by themselves when the replica
//! holding them dies. The policy (which budgets, what to reserve, what to
//! refuse) stays in the bundled `budget` plugin.
//!
//! - [`period`]: calendar periods in an IANA time zone.
//! - [`memory`]: the in-process ledger (one mutex), persisted by [`persist`].
//! - [`redis`]: the same ledger as two Lua scripts on Redis time.
//! - [`ledger`]: what the host imports call.

pub mod ledger;
pub mod memory;
pub mod period;
pub mod persist;
pub mod redis;

pub use ledger::Ledger;

use crate::policy::state::{StateError, StateFuture};

/// Most budgets one reservation may draw on (bounds one atomic step).
pub const MAX_BUDGETS: usize = 16;

/// One budget line of a reservation, as the backend stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Storage key: namespaced, with unit, period and period start.
    pub key: String,
    pub limit: u64,
    /// What this reservation holds on it.
    pub amount: u64,
    /// End of the budget's period (ms since the epoch): the budget's data
    /// can be dropped some time after.
    pub resets_at_ms: u64,
}

/// One budget after a reserve call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    pub remaining: u64,
    pub resets_at_ms: u64,
}

/// What a reserve call answered: every line's state, and whether all had
/// room (then the reservation is open) or the index of the first without.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    pub refused: Option<usize>,
    pub states: Vec<State>,
}

/// Closing one line of a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settle {
    pub key: String,
    /// Spend to count (0: a release).
    pub actual: u64,
    pub resets_at_ms: u64,
}

/// A ledger backend. Both implementations answer alike.
pub trait BudgetBackend: Send + Sync {
    /// Drop expired reservations, then reserve every line's amount under
    /// `id` for `ttl_ms` if each line fits (settled + open + amount <=
    /// limit), else nothing.
    fn reserve(&self, id: String, lines: Vec<Line>, ttl_ms: u64) -> StateFuture<Reserved>;

    /// Close reservation `id` on each line (if still open) and count its
    /// `actual` spend.
    fn settle(&self, id: String, lines: Vec<Settle>) -> StateFuture<()>;
}

/// Why a budget call was refused outright (a plugin bug, so a trap).
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error("budget-reserve: {0} budgets in one call (at most {MAX_BUDGETS})")]
    TooMany(usize),
    #[error("budget-reserve: the budget `{0}` twice in one call")]
    Duplicate(String),
    #[error("budget-reserve: unknown time zone `{0}`")]
    TimeZone(String),
    #[error(transparent)]
    State(#[from] StateError),
}
