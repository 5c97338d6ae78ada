//! The one `wasmtime::Engine` of the process and the `Linker` every plugin is
//! instantiated against.
//!
//! CPU limits use epoch interruption (cheaper than fuel): a background thread
//! bumps the epoch every [`EPOCH_TICK`] and each hook call sets a deadline in
//! ticks. The linker offers WASI p2 (with a context that inherits nothing:
//! no filesystem, env, network or stdio) plus our `host` interface.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::PolicyPlugin;
use super::imports::HostState;
use super::PolicyError;

/// Epoch period: the granularity of hook deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Pooling allocator settings (pre-reserved instance slots).
#[derive(Debug, Clone)]
pub struct PoolingOptions {
    /// Live instances at once, over all plugins.
    pub max_instances: u32,
    /// Upper bound of any plugin's memory cap.
    pub max_memory_bytes: usize,
}

impl Default for PoolingOptions {
    fn default() -> Self {
        PoolingOptions {
            max_instances: 1000,
            max_memory_bytes: 256 << 20,
        }
    }
}

/// `SLUICE_WASM_PERFMAP=1`: name guest code for `perf`.
pub(crate) fn perf_map() -> bool {
    std::env::var_os("SLUICE_WASM_PERFMAP").is_some_and(|v| v == "1")
}

pub(crate) fn build_engine(pooling: Option<&PoolingOptions>) -> Result<Engine, PolicyError> {
    let mut cfg = Config::new();
    cfg.wasm_component_model(true);
    cfg.epoch_interruption(true);
    // `SLUICE_WASM_PERFMAP=1` names guest functions for `perf` (a
    // /tmp/perf-<pid>.map), so a profile shows which plugin code is hot.
    if perf_map() {
        cfg.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if let Some(p) = pooling {
        let mut pool = PoolingAllocationConfig::default();
        let n = p.max_instances;
        pool.total_component_instances(n);
        // Rust components carry a few core modules (program + WASI adapter).
        pool.total_core_instances(n * 4);
        pool.total_memories(n * 2);
        pool.total_tables(n * 2);
        pool.max_memory_size(p.max_memory_bytes);
        cfg.memory_reservation(p.max_memory_bytes as u64);
        cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&cfg).map_err(|e| PolicyError::Engine(format!("{e:#}")))
}

pub(crate) fn build_linker(engine: &Engine) -> Result<Linker<HostState>, PolicyError> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
        .map_err(|e| PolicyError::Engine(format!("linking WASI: {e:#}")))?;
    PolicyPlugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
        .map_err(|e| PolicyError::Engine(format!("linking host imports: {e:#}")))?;
    Ok(linker)
}

/// Bumps the engine's epoch every [`EPOCH_TICK`] until dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: &Engine) -> Result<Self, PolicyError> {
        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sluice-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| PolicyError::Engine(format!("spawning the epoch thread: {e}")))?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
