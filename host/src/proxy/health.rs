//! Per-backend health: failures in a row, and eviction until a moment.
//!
//! Why here and not in the snapshot: a reload builds a new snapshot, and a
//! backend that a provider just rate-limited for a minute must stay out of
//! rotation across it. So the state lives in a process-wide table keyed by
//! (route, backend name) that each snapshot build looks its backends up in;
//! a backend that survives the reload keeps its state, one that disappears
//! drops it with the last snapshot holding it. The state is per replica:
//! nothing is shared between gateway processes.

use crate::config::Eviction;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

pub use super::retry_after::{retry_after, MAX_EVICTION};

/// Eviction time when `eviction` gives no `duration` (agentgateway's default).
pub const DEFAULT_EVICTION: Duration = Duration::from_secs(3);

/// Why a backend was evicted (a metrics label and the admin view).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The provider said when to come back (`Retry-After` and friends).
    RateLimited,
    /// `consecutiveFailures` failures in a row.
    Failures,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Reason::RateLimited => "rate_limited",
            Reason::Failures => "failures",
        }
    }
}

/// One backend's health on this replica.
#[derive(Debug, Default)]
pub struct Health {
    state: Mutex<State>,
}

#[derive(Debug, Default, Clone, Copy)]
struct State {
    failures: u32,
    until: Option<(Instant, SystemTime, Reason)>,
}

/// What `GET /backends` shows of one backend.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub consecutive_failures: u32,
    /// RFC 3339, UTC; absent when the backend is in rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evicted_until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When the backend returns to rotation, if it is out of it now.
    pub fn evicted_until(&self, now: Instant) -> Option<Instant> {
        self.lock().until.map(|u| u.0).filter(|u| *u > now)
    }

    /// Take the backend out of rotation for `d` (at most [`MAX_EVICTION`]);
    /// an eviction already running longer is kept. Returns the time applied.
    pub fn evict(&self, d: Duration, reason: Reason) -> Duration {
        let d = d.min(MAX_EVICTION);
        let now = Instant::now();
        let mut s = self.lock();
        if s.until.is_some_and(|u| u.0 >= now + d) {
            return d;
        }
        s.until = Some((now + d, SystemTime::now() + d, reason));
        d
    }

    /// An answer that is not a failure: the run of failures ends.
    pub fn success(&self) {
        self.lock().failures = 0;
    }

    /// A failure. With an `eviction` policy, the one that completes
    /// `consecutiveFailures` in a row evicts: returns for how long.
    pub fn failure(&self, eviction: Option<&Eviction>) -> Option<Duration> {
        let n = {
            let mut s = self.lock();
            s.failures = s.failures.saturating_add(1);
            s.failures
        };
        let e = eviction?;
        if n < e.consecutive_failures {
            return None;
        }
        self.lock().failures = 0;
        Some(self.evict(e.duration.unwrap_or(DEFAULT_EVICTION), Reason::Failures))
    }

    pub fn status(&self) -> Status {
        let s = *self.lock();
        let live = s.until.filter(|u| u.0 > Instant::now());
        Status {
            consecutive_failures: s.failures,
            evicted_until: live.map(|u| humantime::format_rfc3339_millis(u.1).to_string()),
            reason: live.map(|u| u.2),
        }
    }
}

/// Live health states by (route, backend); entries die with the last
/// snapshot that uses them.
static TABLE: LazyLock<Mutex<Table>> = LazyLock::new(Default::default);

/// (route, backend) → its health.
type Table = HashMap<(String, String), Weak<Health>>;

/// The health of `backend` on `route`: the one a previous snapshot built,
/// if it is still alive, else a fresh one.
pub fn lookup(route: &str, backend: &str) -> Arc<Health> {
    let mut t = TABLE.lock().unwrap_or_else(|p| p.into_inner());
    t.retain(|_, w| w.strong_count() > 0);
    let key = (route.to_string(), backend.to_string());
    if let Some(h) = t.get(&key).and_then(Weak::upgrade) {
        return h;
    }
    let h = Arc::new(Health::default());
    t.insert(key, Arc::downgrade(&h));
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_failures_evict_and_a_success_resets_the_run() {
        let h = Health::default();
        let e = Eviction {
            duration: Some(Duration::from_secs(5)),
            consecutive_failures: 2,
        };
        assert_eq!(h.failure(Some(&e)), None);
        h.success();
        assert_eq!(h.failure(Some(&e)), None);
        assert!(h.evicted_until(Instant::now()).is_none());
        assert_eq!(h.failure(Some(&e)), Some(Duration::from_secs(5)));
        assert!(h.evicted_until(Instant::now()).is_some());
        assert_eq!(h.status().reason, Some(Reason::Failures));
        // Without a policy, failures are counted but never evict.
        let h = Health::default();
        for _ in 0..10 {
            assert_eq!(h.failure(None), None);
        }
        assert_eq!(h.status().consecutive_failures, 10);
    }

    #[test]
    fn evictions_are_capped_and_never_shortened() {
        let h = Health::default();
        let ten_years = Duration::from_secs(10 * 365 * 86400);
        assert_eq!(h.evict(ten_years, Reason::RateLimited), MAX_EVICTION);
        h.evict(Duration::from_secs(1), Reason::RateLimited);
        let until = h.evicted_until(Instant::now()).unwrap();
        assert!(until > Instant::now() + Duration::from_secs(3000));
    }

    #[test]
    fn the_table_keeps_state_while_a_snapshot_holds_it() {
        let a = lookup("r-health-test", "b");
        a.evict(Duration::from_secs(60), Reason::RateLimited);
        let again = lookup("r-health-test", "b");
        assert!(Arc::ptr_eq(&a, &again));
        drop((a, again));
        let fresh = lookup("r-health-test", "b");
        assert!(fresh.evicted_until(Instant::now()).is_none());
    }
}
