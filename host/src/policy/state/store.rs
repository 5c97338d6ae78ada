//! [`StateStore`]: what the host imports call.
//!
//! - Namespacing: every key becomes `<plugin>:<key>`, so attachments of one
//!   plugin share state and different plugins cannot read or write each
//!   other's keys (a plugin cannot forge `jwt-auth`'s JWKS cache, nor reset
//!   `rate-limit`'s counters). Plugin names cannot contain `:`.
//! - Waiting: a hook is synchronous. Backends that need I/O run their futures
//!   on their own runtime; the hook thread waits inside `block_in_place` (the
//!   tokio worker's other tasks move away), bounded by the timeout, and the
//!   time waited is credited back to the hook's CPU deadline by the caller.
//! - Failure: an error or timeout is counted and logged once per outage; then
//!   [`OnOutage::Fail`] returns [`StateUnavailable`] (the request gets 503)
//!   and [`OnOutage::Allow`] answers as if the store were empty.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;

use super::health::Health;
use super::{
    Bucket, BucketTake, MemoryState, SharedState, StateError, StateFuture, StateMetrics,
    WindowCount, WindowLimit, WindowTake,
};

/// Longest key stored as is.
pub const MAX_KEY: usize = 512;

/// `failureMode` of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnOutage {
    /// `closed`: the policy call fails; the request is refused with 503.
    Fail,
    /// `open`: calls succeed as if the store were empty.
    Allow,
}

/// A store call failed and the store fails closed. Raised as a trap out of
/// the host import; the chain turns it into a 503 in the provider's shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shared state unavailable: {0}")]
pub struct StateUnavailable(pub StateError);

pub struct StateStore {
    backend: Arc<dyn SharedState>,
    on_outage: OnOutage,
    timeout: Duration,
    health: Health,
    /// Budgets (`budget-*` imports), on the same backend.
    budgets: Arc<crate::budget::Ledger>,
}

impl StateStore {
    pub fn new(
        backend: Arc<dyn SharedState>,
        on_outage: OnOutage,
        timeout: Duration,
        metrics: StateMetrics,
        replica: Arc<str>,
    ) -> Self {
        let mode = match on_outage {
            OnOutage::Fail => "closed",
            OnOutage::Allow => "open",
        };
        let health = Health::new(metrics, backend.backend(), replica, mode);
        StateStore {
            backend,
            on_outage,
            timeout,
            health,
            budgets: Arc::new(crate::budget::Ledger::default()),
        }
    }

    /// This store with budgets kept by `ledger` (Redis, or memory saved to
    /// a file) instead of in memory only.
    pub fn with_budgets(mut self, ledger: Arc<crate::budget::Ledger>) -> Self {
        self.budgets = ledger;
        self
    }

    /// The budget ledger.
    pub fn budgets(&self) -> &Arc<crate::budget::Ledger> {
        &self.budgets
    }

    /// Run one backend call that is not a [`SharedState`] method (the
    /// budget ledger's), with the same timeout, health and failure mode.
    pub fn call<T: Send + 'static>(
        &self,
        fut: StateFuture<T>,
        fallback: impl FnOnce() -> T,
    ) -> Result<T, StateUnavailable> {
        self.settle(self.run(fut), fallback)
    }

    /// In-process state, detached metrics (tests, `sluice validate`).
    pub fn memory() -> Self {
        Self::over(Arc::new(MemoryState::new()))
    }

    /// `backend`, failing closed, 1 s timeout, detached metrics.
    pub fn over(backend: Arc<dyn SharedState>) -> Self {
        Self::new(
            backend,
            OnOutage::Fail,
            Duration::from_secs(1),
            StateMetrics::default(),
            Arc::from("local"),
        )
    }

    pub fn backend(&self) -> &Arc<dyn SharedState> {
        &self.backend
    }
    pub fn replica(&self) -> &str {
        &self.health.replica
    }
    /// False during an outage (after a failed call, until one succeeds).
    pub fn is_up(&self) -> bool {
        self.health.is_up()
    }

    /// One round trip now (at startup), updating the health like any call.
    pub fn probe(&self) -> Result<(), StateError> {
        let r = self.run(self.backend.ping());
        match &r {
            Ok(()) => self.health.ok(),
            Err(e) => self.health.failed(e),
        }
        r
    }

    /// `<plugin>:<key>`; keys longer than [`MAX_KEY`] are replaced by their
    /// digest, so a hostile header value cannot make huge store keys.
    fn key(plugin: &str, key: &str) -> String {
        if key.len() > MAX_KEY {
            use sha2::Digest;
            let d = sha2::Sha256::digest(key.as_bytes());
            let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
            return format!("{plugin}:#sha256:{hex}");
        }
        format!("{plugin}:{key}")
    }

    /// Drive `fut` to completion, bounded by the timeout.
    fn run<T: Send + 'static>(&self, fut: StateFuture<T>) -> Result<T, StateError> {
        let Some(rt) = self.backend.runtime() else {
            return fut.now_or_never().unwrap_or_else(|| {
                Err(StateError::Backend(
                    "in-process state backend did not answer at once".into(),
                ))
            });
        };
        let timeout = self.timeout;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let r = tokio::time::timeout(timeout, fut)
                .await
                .unwrap_or(Err(StateError::Timeout(timeout)));
            let _ = tx.send(r);
        });
        // The task enforces the timeout; this bound only guards against a
        // stalled state runtime.
        let wait = timeout + Duration::from_millis(500);
        blocking(|| match rx.recv_timeout(wait) {
            Ok(r) => r,
            Err(_) => Err(StateError::Timeout(timeout)),
        })
    }

    fn settle<T>(
        &self,
        r: Result<T, StateError>,
        fallback: impl FnOnce() -> T,
    ) -> Result<T, StateUnavailable> {
        match r {
            Ok(v) => {
                self.health.ok();
                Ok(v)
            }
            Err(e) => {
                self.health.failed(&e);
                match self.on_outage {
                    OnOutage::Fail => Err(StateUnavailable(e)),
                    OnOutage::Allow => Ok(fallback()),
                }
            }
        }
    }

    pub fn incr(
        &self,
        plugin: &str,
        key: &str,
        delta: i64,
        window: Duration,
    ) -> Result<WindowCount, StateUnavailable> {
        let fut = self.backend.incr(Self::key(plugin, key), delta, window);
        self.settle(self.run(fut), || WindowCount {
            total: 0,
            reset: window,
        })
    }

    pub fn take(
        &self,
        plugin: &str,
        key: &str,
        bucket: Bucket,
        n: u64,
        drain: bool,
    ) -> Result<BucketTake, StateUnavailable> {
        let fut = self.backend.take(Self::key(plugin, key), bucket, n, drain);
        self.settle(self.run(fut), || BucketTake {
            allowed: true,
            remaining: bucket.max_tokens,
            retry_after: Duration::ZERO,
            reset: Duration::ZERO,
        })
    }

    /// `window-take` in `plugin`'s namespace. Failing open, every limit
    /// answers as if nothing were counted.
    pub fn window_take(
        &self,
        plugin: &str,
        limits: &[WindowLimit],
        force: bool,
    ) -> Result<Vec<WindowTake>, StateUnavailable> {
        let namespaced = limits
            .iter()
            .map(|l| WindowLimit {
                key: Self::key(plugin, &l.key),
                ..l.clone()
            })
            .collect();
        let fut = self.backend.window_take(namespaced, force);
        self.settle(self.run(fut), || {
            limits
                .iter()
                .map(|l| WindowTake {
                    allowed: true,
                    total: 0,
                    remaining: l.limit,
                    retry_after: Duration::ZERO,
                    reset: Duration::ZERO,
                })
                .collect()
        })
    }

    pub fn kv_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, StateUnavailable> {
        let fut = self.backend.kv_get(Self::key(plugin, key));
        self.settle(self.run(fut), || None)
    }

    pub fn kv_set(
        &self,
        plugin: &str,
        key: &str,
        val: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), StateUnavailable> {
        let fut = self.backend.kv_set(Self::key(plugin, key), val, ttl);
        self.settle(self.run(fut), || ())
    }

    /// [`Self::kv_get`] that fails on an outage even when the store fails
    /// open: for the host's own records (runtime API keys), where "empty"
    /// would be read back as "no keys" and written over the real ones.
    pub fn kv_get_strict(
        &self,
        plugin: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StateUnavailable> {
        let fut = self.backend.kv_get(Self::key(plugin, key));
        self.strict(self.run(fut))
    }

    /// [`Self::kv_set`] that reports an outage even when the store fails open.
    pub fn kv_set_strict(
        &self,
        plugin: &str,
        key: &str,
        val: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), StateUnavailable> {
        let fut = self.backend.kv_set(Self::key(plugin, key), val, ttl);
        self.strict(self.run(fut))
    }

    fn strict<T>(&self, r: Result<T, StateError>) -> Result<T, StateUnavailable> {
        match r {
            Ok(v) => {
                self.health.ok();
                Ok(v)
            }
            Err(e) => {
                self.health.failed(&e);
                Err(StateUnavailable(e))
            }
        }
    }
}

/// Run a blocking wait without starving the tokio worker it happens on.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend that always fails, on its own runtime.
    struct Down(tokio::runtime::Runtime);
    impl SharedState for Down {
        fn backend(&self) -> &'static str {
            "redis"
        }
        fn runtime(&self) -> Option<tokio::runtime::Handle> {
            Some(self.0.handle().clone())
        }
        fn incr(&self, _: String, _: i64, _: Duration) -> StateFuture<WindowCount> {
            Box::pin(async { Err(StateError::Unavailable("refused".into())) })
        }
        fn window_take(&self, _: Vec<WindowLimit>, _: bool) -> StateFuture<Vec<WindowTake>> {
            Box::pin(async { Err(StateError::Unavailable("refused".into())) })
        }
        fn take(&self, _: String, _: Bucket, _: u64, _: bool) -> StateFuture<BucketTake> {
            // Never answers: the timeout must end it.
            Box::pin(std::future::pending())
        }
        fn kv_get(&self, _: String) -> StateFuture<Option<Vec<u8>>> {
            Box::pin(async { Err(StateError::Backend("WRONGTYPE".into())) })
        }
        fn kv_set(&self, _: String, _: Vec<u8>, _: Duration) -> StateFuture<()> {
            Box::pin(async { Ok(()) })
        }
        fn ping(&self) -> StateFuture<()> {
            Box::pin(async { Ok(()) })
        }
    }

    fn down(mode: OnOutage) -> StateStore {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        StateStore::new(
            Arc::new(Down(rt)),
            mode,
            Duration::from_millis(50),
            StateMetrics::default(),
            Arc::from("test"),
        )
    }

    const B: Bucket = Bucket {
        max_tokens: 5,
        tokens_per_fill: 1,
        fill_interval: Duration::from_secs(1),
    };

    #[test]
    fn closed_fails_and_open_allows() {
        let s = down(OnOutage::Fail);
        let e = s.incr("p", "k", 1, Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.0.kind(), "unavailable");
        assert!(!s.is_up());
        assert!(matches!(
            s.take("p", "k", B, 1, false).unwrap_err().0,
            StateError::Timeout(_)
        ));
        let w = WindowLimit {
            key: "k".into(),
            amount: 1,
            limit: 1,
            window: Duration::from_secs(1),
        };
        assert_eq!(
            s.window_take("p", &[w], false).unwrap_err().0.kind(),
            "unavailable"
        );
        assert_eq!(s.health.metrics.up.get(), 0);
        // A success brings it back up.
        s.kv_set("p", "k", vec![], Duration::from_secs(1)).unwrap();
        assert!(s.is_up());
        assert_eq!(s.health.metrics.up.get(), 1);

        let s = down(OnOutage::Allow);
        let c = s.incr("p", "k", 1, Duration::from_secs(7)).unwrap();
        assert_eq!((c.total, c.reset), (0, Duration::from_secs(7)));
        let t = s.take("p", "k", B, 1, false).unwrap();
        assert!(t.allowed && t.remaining == 5);
        let w = WindowLimit {
            key: "k".into(),
            amount: 1,
            limit: 7,
            window: Duration::from_secs(60),
        };
        let r = s.window_take("p", &[w.clone(), w], false).unwrap();
        assert!(r
            .iter()
            .all(|r| r.allowed && r.remaining == 7 && r.total == 0));
        assert_eq!(s.kv_get("p", "k").unwrap(), None);
        assert!(!s.is_up());
        // The host's own records never read an outage as "empty".
        assert!(s.kv_get_strict("p", "k").is_err());
    }

    #[test]
    fn plugins_have_separate_namespaces() {
        let s = StateStore::memory();
        let w = Duration::from_secs(60);
        assert_eq!(s.incr("rate-limit", "k", 5, w).unwrap().total, 5);
        assert_eq!(s.incr("other", "k", 1, w).unwrap().total, 1);
        assert_eq!(s.incr("other", "rate-limit:k", -5, w).unwrap().total, -5);
        assert_eq!(s.incr("rate-limit", "k", 0, w).unwrap().total, 5);
        let lim = |key: &str| WindowLimit {
            key: key.into(),
            amount: 1,
            limit: 1,
            window: w,
        };
        assert!(s.window_take("rate-limit", &[lim("k")], false).unwrap()[0].allowed);
        assert!(s.window_take("other", &[lim("k")], false).unwrap()[0].allowed);
        assert!(
            s.window_take("other", &[lim("rate-limit:k")], false)
                .unwrap()[0]
                .allowed
        );
        assert!(!s.window_take("rate-limit", &[lim("k")], false).unwrap()[0].allowed);
        s.kv_set("jwt-auth", "doc", b"real".to_vec(), w).unwrap();
        s.kv_set("evil", "jwt-auth:doc", b"forged".to_vec(), w)
            .unwrap();
        assert_eq!(s.kv_get("jwt-auth", "doc").unwrap().unwrap(), b"real");
        assert_eq!(s.kv_get("evil", "doc").unwrap(), None);
    }
}
