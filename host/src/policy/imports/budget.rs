//! `budget-reserve`, `budget-settle`, `budget-release` and `price`: the
//! accounting primitives behind the bundled `budget` policy. The policy
//! decides what to reserve and what to refuse; the host keeps the ledger
//! ([`crate::budget`]) atomic across budgets and replicas, and prices with
//! the gateway's `config.modelCatalog`.

use std::time::{Duration, Instant};

use super::HostState;
use crate::budget::ledger::{Amount, Budget, Outcome, Unit};
use crate::budget::period::Period;
use crate::budget::State;
use crate::policy::bindings::host::{
    BudgetAmount, BudgetExhausted, BudgetPeriod, BudgetRef, BudgetReserved, BudgetState, BudgetUnit,
};
use crate::policy::bindings::types::TokenUsage;

/// Run one ledger call, crediting the time waited to the deadline; a
/// refused call (a plugin bug, a store down and failing closed) traps.
fn timed<T>(
    s: &mut HostState,
    f: impl FnOnce(&crate::policy::state::StateStore, &str) -> Result<T, crate::budget::BudgetError>,
) -> wasmtime::Result<T> {
    let started = Instant::now();
    let env = s.env.clone();
    let r = f(&env.state, &s.plugin);
    s.wait_credit += started.elapsed();
    s.host_wait += started.elapsed();
    r.map_err(|e| match e {
        crate::budget::BudgetError::State(e) => {
            wasmtime::Error::new(crate::policy::state::StateUnavailable(e))
        }
        e => wasmtime::Error::new(e),
    })
}

fn amount(a: BudgetAmount) -> Amount {
    Amount {
        usd_micros: a.usd_micros,
        tokens: a.tokens,
    }
}

fn states(v: Vec<State>) -> Vec<BudgetState> {
    v.into_iter()
        .map(|s| BudgetState {
            remaining: s.remaining,
            resets_at_ms: s.resets_at_ms,
        })
        .collect()
}

pub fn reserve(
    s: &mut HostState,
    budgets: Vec<BudgetRef>,
    a: BudgetAmount,
    ttl_ms: u64,
) -> wasmtime::Result<Result<BudgetReserved, BudgetExhausted>> {
    let budgets: Vec<Budget> = budgets
        .into_iter()
        .map(|b| Budget {
            key: b.key,
            unit: match b.unit {
                BudgetUnit::Usd => Unit::Usd,
                BudgetUnit::Tokens => Unit::Tokens,
            },
            limit: b.limit,
            period: match b.period {
                BudgetPeriod::Day => Period::Day,
                BudgetPeriod::Week => Period::Week,
                BudgetPeriod::Month => Period::Month,
            },
            time_zone: b.time_zone,
        })
        .collect();
    let ttl = Duration::from_millis(ttl_ms.max(1));
    let r = timed(s, |st, plugin| {
        st.budgets().reserve(st, plugin, &budgets, amount(a), ttl)
    })?;
    Ok(match r {
        Outcome::Reserved { id, states: st } => Ok(BudgetReserved {
            id,
            budgets: states(st),
        }),
        Outcome::Exhausted { budget, states: st } => Err(BudgetExhausted {
            budget: budget as u32,
            budgets: states(st),
        }),
    })
}

pub fn settle(s: &mut HostState, id: &str, actual: BudgetAmount) -> wasmtime::Result<()> {
    timed(s, |st, _| st.budgets().settle(st, id, amount(actual)))
}

/// Dollars for `usage` of `model`, the request's provider first.
pub fn price(s: &HostState, model: &str, u: TokenUsage) -> Option<f64> {
    let provider = s
        .call
        .attrs
        .get("backend.provider")
        .map_or("", String::as_str);
    let usage = crate::stream::usage::Usage {
        input_tokens: u.input_tokens,
        cache_read_tokens: u.cache_read_tokens,
        cache_write_tokens: u.cache_write_tokens,
        output_tokens: u.output_tokens,
        reasoning_tokens: u.reasoning_tokens,
    };
    crate::pricing::cost(provider, &[Some(model)], &usage)
}
