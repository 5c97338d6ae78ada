//! A loaded plugin: compiled component, pre-linked `InstancePre`, limits and
//! failure mode. Creates ready-to-call instances (store + bindings).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

use super::bindings::{PolicyPlugin, PolicyPluginPre};
use super::engine::EPOCH_TICK;
use super::imports::{HostEnv, HostState};
use super::state::StateUnavailable;

/// What a failing plugin does to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    /// The request fails (500 in the provider's error shape).
    #[default]
    Closed,
    /// The plugin is skipped.
    Open,
}

/// Resource limits of one plugin's instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory cap per instance.
    pub memory_bytes: usize,
    /// CPU deadline of one hook call (time blocked in `fetch` not counted).
    pub hook_deadline: Duration,
    /// Operator allow-list for `fetch`; `None`: whatever the plugin declares.
    pub fetch_hosts: Option<Vec<String>>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            hook_deadline: Duration::from_millis(200),
            fetch_hosts: None,
        }
    }
}

impl Limits {
    pub(crate) fn hook_ticks(&self) -> u64 {
        ticks(self.hook_deadline)
    }
    /// `validate`/`init`/instantiation may parse big configs: 10× the hook
    /// deadline, at least one second.
    pub(crate) fn init_ticks(&self) -> u64 {
        ticks((self.hook_deadline * 10).max(Duration::from_secs(1)))
    }
}

fn ticks(d: Duration) -> u64 {
    // +1: the current tick is already partly over.
    (d.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64 + 1
}

/// A compiled, linked plugin. Attach it (with a config) to use it.
pub struct Plugin {
    pub(crate) name: Arc<str>,
    /// sha256 of the component, hex (policy spans name the version by it).
    pub(crate) hash: Arc<str>,
    pub(crate) engine: Engine,
    pub(crate) pre: PolicyPluginPre<HostState>,
    pub(crate) limits: Limits,
    pub(crate) failure: FailureMode,
    pub(crate) env: Arc<HostEnv>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("limits", &self.limits)
            .field("failure", &self.failure)
            .finish()
    }
}

/// One live instance: its store and typed exports.
pub struct Instance {
    pub(crate) store: Store<HostState>,
    pub(crate) bindings: PolicyPlugin,
    pub(crate) created: Instant,
}

/// Why a call into an instance failed.
#[derive(Debug, Clone)]
pub(crate) struct CallError {
    /// `trap`, `deadline`, `memory`, `state` (store down, failing closed)
    /// or `plugin` (bad output, init error).
    pub kind: &'static str,
    pub reason: String,
}

impl Plugin {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
    pub fn failure_mode(&self) -> FailureMode {
        self.failure
    }

    /// A fresh instance (no `init` yet).
    pub(crate) fn instantiate(&self, fetch_hosts: Arc<[String]>) -> Result<Instance, CallError> {
        let state = HostState::new(
            self.name.clone(),
            self.limits.memory_bytes,
            fetch_hosts,
            self.env.clone(),
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_callback(|mut ctx| {
            // Credit time spent blocked in host calls back to the guest.
            let credit = std::mem::take(&mut ctx.data_mut().wait_credit);
            let ticks = (credit.as_micros() / EPOCH_TICK.as_micros()) as u64;
            Ok(if ticks > 0 {
                UpdateDeadline::Continue(ticks)
            } else {
                UpdateDeadline::Interrupt
            })
        });
        store.set_epoch_deadline(self.limits.init_ticks());
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| classify(&e, &store, &self.limits))?;
        self.env
            .metrics
            .instances
            .get_or_create(&super::metrics::PluginLabels {
                plugin: self.name.to_string(),
            })
            .inc();
        Ok(Instance {
            store,
            bindings,
            created: Instant::now(),
        })
    }
}

/// Turn a wasmtime error into a kind + operator-readable reason.
pub(crate) fn classify(
    err: &wasmtime::Error,
    store: &Store<HostState>,
    limits: &Limits,
) -> CallError {
    if store.data().limiter.memory_hit {
        CallError {
            kind: "memory",
            reason: format!("memory cap of {} bytes exceeded", limits.memory_bytes),
        }
    } else if let Some(s) = err.downcast_ref::<StateUnavailable>() {
        CallError {
            kind: "state",
            reason: s.to_string(),
        }
    } else if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        CallError {
            kind: "deadline",
            reason: format!("CPU deadline of {:?} exceeded", limits.hook_deadline),
        }
    } else {
        CallError {
            kind: "trap",
            reason: trap_reason(err),
        }
    }
}

/// A trap's message, naming the innermost guest function that has a name
/// (components keep a `name` section unless stripped). The whole wasm
/// backtrace goes to the debug log.
fn trap_reason(err: &wasmtime::Error) -> String {
    let Some(bt) = err.downcast_ref::<wasmtime::WasmBacktrace>() else {
        return format!("{err:#}");
    };
    tracing::debug!(backtrace = %bt, "plugin trap backtrace");
    let cause = match err.downcast_ref::<Trap>() {
        Some(t) => t.to_string(),
        None => err.root_cause().to_string(),
    };
    let frame = bt.frames().iter().find_map(|f| {
        f.func_name()
            .map(|n| (n.to_owned(), f.module().name().map(str::to_owned)))
    });
    match frame {
        Some((func, Some(module))) => {
            format!("{cause} in guest function `{func}` (module `{module}`)")
        }
        Some((func, None)) => format!("{cause} in guest function `{func}`"),
        None => match bt.frames().first() {
            Some(f) => format!(
                "{cause} in guest function #{} (no names: the component was stripped)",
                f.func_index()
            ),
            None => cause,
        },
    }
}
