//! Building the store from the `state:` config section, and naming this
//! replica.

use std::sync::Arc;
use std::time::Duration;

use super::{
    redact_url, MemoryState, OnOutage, RedisOptions, RedisState, StateError, StateMetrics,
    StateStore,
};
use crate::config::{StateBackend, StateConfig, StateFailureMode};

/// This replica's name: `state.replicaId`, else the host name (the pod name
/// on Kubernetes), else `sluice`.
pub fn replica_id(cfg: &StateConfig) -> String {
    if let Some(id) = &cfg.replica_id {
        return id.clone();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "sluice".to_owned())
}

/// The store `cfg` asks for. Does not connect: a Redis that is down at
/// startup is an outage like any other (see [`StateStore::probe`]).
pub fn from_config(cfg: &StateConfig, metrics: StateMetrics) -> Result<StateStore, StateError> {
    let replica: Arc<str> = Arc::from(replica_id(cfg));
    match &cfg.backend {
        StateBackend::Memory => {
            let store = StateStore::new(
                Arc::new(MemoryState::new()),
                OnOutage::Fail,
                Duration::from_secs(1),
                metrics,
                replica,
            );
            match &cfg.memory_path {
                Some(dir) => {
                    let ledger = crate::budget::Ledger::memory_at(dir.clone())
                        .map_err(|e| StateError::Backend(e.to_string()))?;
                    tracing::info!(path = %dir.display(), "budget spend saved under state.memory.path");
                    Ok(store.with_budgets(ledger))
                }
                None => Ok(store),
            }
        }
        StateBackend::Redis(r) => {
            let timeout = Duration::from_millis(r.timeout_ms);
            let backend = Arc::new(RedisState::new(RedisOptions {
                url: r.url.expose().to_owned(),
                key_prefix: r.key_prefix.clone(),
                pool_size: r.pool_size as usize,
                timeout,
            })?);
            let ledger = Arc::new(crate::budget::Ledger::redis(backend.clone()));
            let on_outage = match r.failure_mode {
                StateFailureMode::Closed => OnOutage::Fail,
                StateFailureMode::Open => OnOutage::Allow,
            };
            tracing::info!(
                replica = &*replica,
                url = %redact_url(r.url.expose()),
                key_prefix = %r.key_prefix,
                pool_size = r.pool_size,
                ?timeout,
                failure_mode = ?r.failure_mode,
                "shared state in redis"
            );
            Ok(StateStore::new(backend, on_outage, timeout, metrics, replica).with_budgets(ledger))
        }
    }
}
