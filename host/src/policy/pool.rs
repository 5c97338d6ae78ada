//! An attachment (a plugin + its config) and its pool of initialized
//! instances.
//!
//! `init` runs once per instance. A hook checks an instance out for exactly
//! one call and returns it; an instance whose call trapped, hit its deadline
//! or its memory cap is dropped, never reused. Per-request data (attributes,
//! request id) lives in the store only during a call and is moved out
//! afterwards, so nothing host-side crosses requests; guest memory is reused,
//! which the WIT tells plugins not to rely on.
//!
//! Reuse vs instantiate-per-call, measured with `cargo bench -p sluice
//! --bench policy` (wasmtime 48, 2 busy cores, one `on-request-headers` call
//! of a Rust fixture, medians): reused instance 3.7 µs; instantiate + init +
//! call 53 µs (on-demand allocator) or 40 µs (pooling allocator). Reuse is
//! 10-14x cheaper, so it is the default;
//! [`super::RuntimeOptions::reuse_instances`] turns it off.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use wasmtime::Store;

use super::bindings::{types::Hooks, PolicyPlugin};
use super::imports::{CallData, HeaderView, HostState};
use super::metrics::{HookLabels, TrapLabels};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

/// Hook names, as used in metrics labels and logs.
pub(crate) const HOOKS: [&str; 7] = [
    "request_headers",
    "request_body",
    "response_headers",
    "response_body",
    "response_event",
    "response_end",
    "complete",
];

/// Per-hook metric handles, resolved once per attachment (no label
/// allocation or family lookup on the hot path).
struct HookMetrics {
    calls: Counter,
    duration: Histogram,
}
use super::plugin::{classify, CallError, FailureMode, Instance, Plugin};
use super::types::{RequestContext, RequestScope};

/// A plugin attached with one config: what a chain is made of.
pub struct Attachment {
    pub(crate) plugin: Arc<Plugin>,
    config: String,
    hooks: Hooks,
    fetch_hosts: Arc<[String]>,
    /// The headers its hooks are handed (`read-headers` in `init`).
    view: HeaderView,
    idle: Mutex<Vec<Instance>>,
    max_idle: usize,
    reuse: bool,
    hook_metrics: Vec<HookMetrics>,
    /// Instances checked out for a call right now (each is live memory),
    /// at most `live.max`; a call beyond it waits up to `live.wait`.
    busy: Mutex<usize>,
    freed: Condvar,
    live: LiveLimit,
}

/// The cap on instances of one attachment running at once.
#[derive(Debug, Clone, Copy)]
pub struct LiveLimit {
    pub max: usize,
    /// How long an extra call waits for a free instance before failing
    /// (then the plugin's `failureMode` decides).
    pub wait: Duration,
}

impl Default for LiveLimit {
    fn default() -> Self {
        LiveLimit {
            max: 16,
            wait: Duration::from_secs(1),
        }
    }
}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("plugin", &self.plugin.name)
            .field("hooks", &self.hooks)
            .field("fetch_hosts", &self.fetch_hosts)
            .finish()
    }
}

/// How an attachment pools its instances (from the runtime's options).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolShape {
    /// Idle instances kept for reuse.
    pub max_idle: usize,
    /// Reuse instances across calls (else one fresh instance per call).
    pub reuse: bool,
    pub live: LiveLimit,
}

impl Attachment {
    pub(crate) fn new(
        plugin: Arc<Plugin>,
        config: String,
        hooks: Hooks,
        fetch_hosts: Arc<[String]>,
        first: Instance,
        shape: PoolShape,
    ) -> Self {
        let PoolShape {
            max_idle,
            reuse,
            live,
        } = shape;
        let m = &plugin.env.metrics;
        let hook_metrics = HOOKS
            .iter()
            .map(|hook| {
                let labels = HookLabels {
                    plugin: plugin.name.to_string(),
                    hook,
                };
                HookMetrics {
                    calls: m.calls.get_or_create(&labels).clone(),
                    duration: m.duration.get_or_create(&labels).clone(),
                }
            })
            .collect();
        Attachment {
            view: first.store.data().read_headers.clone(),
            hook_metrics,
            plugin,
            config,
            hooks,
            fetch_hosts,
            idle: Mutex::new(if reuse { vec![first] } else { Vec::new() }),
            max_idle: max_idle.min(live.max),
            reuse,
            busy: Mutex::new(0),
            freed: Condvar::new(),
            live,
        }
    }

    /// Take a slot for one call, waiting up to `live.wait` for one.
    fn acquire(&self) -> Result<(), CallError> {
        let deadline = Instant::now() + self.live.wait;
        let mut busy = self.busy.lock();
        while *busy >= self.live.max {
            if self.freed.wait_until(&mut busy, deadline).timed_out() && *busy >= self.live.max {
                return Err(CallError {
                    kind: "busy",
                    reason: format!(
                        "all {} instances busy for {:?}",
                        self.live.max, self.live.wait
                    ),
                });
            }
        }
        *busy += 1;
        Ok(())
    }

    fn release(&self) {
        let mut busy = self.busy.lock();
        *busy = busy.saturating_sub(1);
        drop(busy);
        self.freed.notify_one();
    }

    /// Calls running right now.
    pub fn busy_instances(&self) -> usize {
        *self.busy.lock()
    }

    pub fn name(&self) -> &str {
        &self.plugin.name
    }
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }
    /// The hooks `init` asked for.
    pub fn hooks(&self) -> Hooks {
        self.hooks
    }
    /// `headers` as this attachment's hooks see them.
    pub fn header_list(&self, headers: &http::HeaderMap) -> Vec<(String, String)> {
        self.view.list(headers)
    }
    pub fn fetch_hosts(&self) -> &[String] {
        &self.fetch_hosts
    }
    pub fn failure_mode(&self) -> FailureMode {
        self.plugin.failure
    }
    /// Idle instances currently pooled.
    pub fn idle_instances(&self) -> usize {
        self.idle.lock().len()
    }

    /// A new instance with `init` done.
    pub(crate) fn fresh(&self) -> Result<Instance, CallError> {
        let mut inst = self.plugin.instantiate(self.fetch_hosts.clone())?;
        inst.store
            .set_epoch_deadline(self.plugin.limits.init_ticks());
        let guest = inst.bindings.sluice_policy_policy();
        inst.store.data_mut().in_init = true;
        let init = guest.call_init(&mut inst.store, &self.config);
        inst.store.data_mut().in_init = false;
        match init {
            Ok(Ok(_)) => Ok(inst),
            Ok(Err(message)) => Err(CallError {
                kind: "plugin",
                reason: format!("init failed: {message}"),
            }),
            Err(e) => Err(classify(&e, &inst.store, &self.plugin.limits)),
        }
    }

    fn checkout(&self) -> Result<Instance, CallError> {
        if self.reuse {
            if let Some(inst) = self.idle.lock().pop() {
                return Ok(inst);
            }
        }
        self.fresh()
    }

    fn checkin(&self, inst: Instance) {
        if !self.reuse {
            return;
        }
        let mut idle = self.idle.lock();
        if idle.len() < self.max_idle {
            idle.push(inst);
        }
    }

    /// Run one hook on a checked-out instance, with the request's attributes
    /// moved into the store for the call.
    pub(crate) fn call<R>(
        &self,
        hook: &'static str,
        scope: &mut RequestScope,
        f: impl FnOnce(&PolicyPlugin, &mut Store<HostState>, &RequestContext) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let hm = &self.hook_metrics[HOOKS.iter().position(|h| *h == hook).unwrap_or(0)];
        hm.calls.inc();
        let started = Instant::now();
        if let Err(e) = self.acquire() {
            self.count_failure(hook, &e);
            return Err(e);
        }
        // Released however the call ends (a panic included).
        struct Slot<'a>(&'a Attachment);
        impl Drop for Slot<'_> {
            fn drop(&mut self) {
                self.0.release();
            }
        }
        let _slot = Slot(self);
        let mut inst = match self.checkout() {
            Ok(i) => i,
            Err(e) => {
                // `plugin`-kind errors are counted by the chain when settled.
                if e.kind != "plugin" {
                    self.count_failure(hook, &e);
                }
                return Err(e);
            }
        };
        {
            let data = inst.store.data_mut();
            data.call = CallData {
                request_id: scope.ctx.request_id.clone(),
                attrs: std::mem::take(&mut scope.attrs),
                usage: scope.usage,
            };
            data.wait_credit = std::time::Duration::ZERO;
            data.host_wait = std::time::Duration::ZERO;
        }
        let traced = scope
            .policy_spans
            .is_some()
            .then(std::time::SystemTime::now);
        inst.store
            .set_epoch_deadline(self.plugin.limits.hook_ticks());
        let result = f(&inst.bindings, &mut inst.store, &scope.ctx);
        scope.attrs = std::mem::take(&mut inst.store.data_mut().call).attrs;
        hm.duration.observe(started.elapsed().as_secs_f64());
        if let (Some(start), Some(spans)) = (traced, scope.policy_spans.as_mut()) {
            spans.record(crate::otel::PolicyCall {
                plugin: self.plugin.name.clone(),
                hash: self.plugin.hash.clone(),
                hook,
                start,
                duration: started.elapsed(),
                host_wait: inst.store.data().host_wait,
                outcome: match &result {
                    Ok(_) => crate::otel::PolicyOutcome::Continue,
                    Err(e) => crate::otel::PolicyOutcome::Failed(
                        classify(e, &inst.store, &self.plugin.limits).kind,
                    ),
                },
            });
        }
        match result {
            Ok(r) => {
                self.checkin(inst);
                Ok(r)
            }
            Err(e) => {
                let err = classify(&e, &inst.store, &self.plugin.limits);
                tracing::debug!(plugin = %self.plugin.name, age = ?inst.created.elapsed(), "discarding failed instance");
                drop(inst);
                self.count_failure(hook, &err);
                Err(err)
            }
        }
    }

    pub(crate) fn count_failure(&self, hook: &'static str, err: &CallError) {
        let metrics = &self.plugin.env.metrics;
        let plugin = self.plugin.name.to_string();
        if err.kind == "plugin" {
            metrics
                .errors
                .get_or_create(&HookLabels { plugin, hook })
                .inc();
        } else {
            metrics
                .traps
                .get_or_create(&TrapLabels {
                    plugin,
                    hook,
                    kind: err.kind,
                })
                .inc();
        }
    }
}
