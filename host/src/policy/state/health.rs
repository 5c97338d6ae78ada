//! The store's health: `sluice_state_up`, `sluice_state_errors_total` and
//! `sluice_replica_info`, and one log line per change (down, then up again),
//! never one per request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::StateError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub backend: &'static str,
    /// `unavailable`, `timeout` or `backend`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReplicaLabels {
    pub replica: String,
    pub state: &'static str,
}

/// Metric handles; cheap to clone. Detached (unregistered) by default.
#[derive(Clone, Debug, Default)]
pub struct StateMetrics {
    pub errors: Family<ErrorLabels, Counter>,
    pub up: Gauge,
    pub replica: Family<ReplicaLabels, Gauge>,
}

impl StateMetrics {
    /// Register into the gateway's registry (prefix `sluice`).
    pub fn register(reg: &mut Registry) -> StateMetrics {
        let m = StateMetrics::default();
        reg.register(
            "state_errors",
            "Shared-state store calls that failed, by backend and kind",
            m.errors.clone(),
        );
        reg.register(
            "state_up",
            "1 while the shared-state store answers, 0 during an outage",
            m.up.clone(),
        );
        reg.register(
            "replica_info",
            "This gateway replica (constant 1), with its state backend",
            m.replica.clone(),
        );
        m
    }
}

/// Up/down tracking for one store.
pub(crate) struct Health {
    up: AtomicBool,
    pub metrics: StateMetrics,
    pub backend: &'static str,
    pub replica: Arc<str>,
    pub mode: &'static str,
}

impl Health {
    pub fn new(
        metrics: StateMetrics,
        backend: &'static str,
        replica: Arc<str>,
        mode: &'static str,
    ) -> Self {
        metrics.up.set(1);
        metrics
            .replica
            .get_or_create(&ReplicaLabels {
                replica: replica.to_string(),
                state: backend,
            })
            .set(1);
        Health {
            up: AtomicBool::new(true),
            metrics,
            backend,
            replica,
            mode,
        }
    }

    pub fn ok(&self) {
        if !self.up.load(Ordering::Relaxed) && !self.up.swap(true, Ordering::AcqRel) {
            self.metrics.up.set(1);
            tracing::info!(
                replica = &*self.replica,
                backend = self.backend,
                "state store reachable again; limits are shared again"
            );
        }
    }

    pub fn failed(&self, e: &StateError) {
        self.metrics
            .errors
            .get_or_create(&ErrorLabels {
                backend: self.backend,
                kind: e.kind(),
            })
            .inc();
        if self.up.swap(false, Ordering::AcqRel) {
            self.metrics.up.set(0);
            tracing::error!(
                replica = &*self.replica,
                backend = self.backend,
                failure_mode = self.mode,
                error = %e,
                "state store down: {}",
                if self.mode == "open" {
                    "policy calls proceed as if the store were empty (limits not enforced)"
                } else {
                    "requests that need it are refused with 503"
                }
            );
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }
}
