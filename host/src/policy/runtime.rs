//! [`PolicyRuntime`]: engine + linker + component cache + shared state +
//! metrics. Loads plugins (compile or cache hit) and attaches them to configs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use wasmtime::component::{Component, Linker};
use wasmtime::Engine;

use super::bindings::PolicyPluginPre;
use super::cache::{self, ComponentCache};
use super::engine::{build_engine, build_linker, EpochTicker, PoolingOptions};
use super::imports::{Fetcher, HostEnv, HostState};
use super::metrics::PolicyMetrics;
use super::plugin::{classify, FailureMode, Limits, Plugin};
use super::pool::Attachment;
use super::state::{Clock, SharedState, StateStore, SystemClock};
use super::PolicyError;
use sha2::Digest as _;

/// How the runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Compiled-component cache dir; `None`: [`cache::default_dir`].
    pub cache_dir: Option<PathBuf>,
    /// Disable the disk cache entirely.
    pub disk_cache: bool,
    /// Use wasmtime's pooling allocator (pre-reserved instance slots).
    pub pooling: Option<PoolingOptions>,
    /// Keep initialized instances for reuse (measured to be much faster than
    /// instantiating per call; see `benches/policy.rs`).
    pub reuse_instances: bool,
    /// Idle instances kept per attachment.
    pub max_idle_per_attachment: usize,
    /// Instances of one attachment running at once, and how long an extra
    /// call waits for one.
    pub live_per_attachment: super::pool::LiveLimit,
    /// Metrics registered in the pipeline's registry; `None`: detached.
    pub metrics: Option<PolicyMetrics>,
    /// The client plugin `fetch`es use (the gateway's, with its trust store
    /// and resolve pins); `None`: a default one.
    pub fetch_client: Option<crate::proxy::client::FetchClient>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            cache_dir: None,
            disk_cache: true,
            pooling: None,
            reuse_instances: true,
            max_idle_per_attachment: 32,
            live_per_attachment: Default::default(),
            metrics: None,
            fetch_client: None,
        }
    }
}

/// Counters about compilation, for tests and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Components compiled from wasm.
    pub compiles: u64,
    /// Components loaded from the disk cache.
    pub disk_hits: u64,
    /// Components found already loaded in this process.
    pub memory_hits: u64,
}

/// The policy runtime. One per process; cheap to share behind `Arc`.
pub struct PolicyRuntime {
    engine: Engine,
    linker: Linker<HostState>,
    cache: ComponentCache,
    env: Arc<HostEnv>,
    opts: RuntimeOptions,
    loaded: Mutex<HashMap<String, Component>>,
    bundled: Mutex<HashMap<String, Arc<Plugin>>>,
    compiles: AtomicU64,
    disk_hits: AtomicU64,
    memory_hits: AtomicU64,
    _ticker: EpochTicker,
}

impl PolicyRuntime {
    /// Each plugin's last refused or failed `fetch` (for `GET /plugins`).
    pub fn fetch_failures(
        &self,
    ) -> std::collections::HashMap<String, super::imports::fetch::FetchFailure> {
        self.env.fetcher.failures()
    }

    /// A runtime over `state` (failing closed, detached state metrics) and
    /// the wall clock.
    pub fn new(opts: RuntimeOptions, state: Arc<dyn SharedState>) -> Result<Self, PolicyError> {
        Self::with_state(
            opts,
            Arc::new(StateStore::over(state)),
            Arc::new(SystemClock),
        )
    }

    /// A runtime over a configured store, with `clock` behind `now-ms`.
    pub fn with_state(
        opts: RuntimeOptions,
        state: Arc<StateStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, PolicyError> {
        let engine = build_engine(opts.pooling.as_ref())?;
        let linker = build_linker(&engine)?;
        let ticker = EpochTicker::start(&engine)?;
        let dir = if opts.disk_cache {
            opts.cache_dir.clone().or_else(cache::default_dir)
        } else {
            None
        };
        let env = Arc::new(HostEnv {
            state,
            clock,
            metrics: opts.metrics.clone().unwrap_or_else(PolicyMetrics::detached),
            fetcher: Arc::new(match opts.fetch_client.clone() {
                Some(c) => Fetcher::new(c),
                None => Fetcher::default(),
            }),
            verified: Default::default(),
        });
        Ok(PolicyRuntime {
            engine,
            linker,
            cache: ComponentCache::new(dir),
            env,
            opts,
            loaded: Mutex::new(HashMap::new()),
            bundled: Mutex::new(HashMap::new()),
            compiles: AtomicU64::new(0),
            disk_hits: AtomicU64::new(0),
            memory_hits: AtomicU64::new(0),
            _ticker: ticker,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
    pub fn metrics(&self) -> &PolicyMetrics {
        &self.env.metrics
    }
    /// The shared state behind the plugins' counters and KV.
    pub fn state(&self) -> &Arc<StateStore> {
        &self.env.state
    }

    pub fn stats(&self) -> RuntimeStats {
        RuntimeStats {
            compiles: self.compiles.load(Ordering::Relaxed),
            disk_hits: self.disk_hits.load(Ordering::Relaxed),
            memory_hits: self.memory_hits.load(Ordering::Relaxed),
        }
    }

    fn component(
        &self,
        name: &str,
        wasm: &[u8],
        digest: &[u8; 32],
    ) -> Result<Component, PolicyError> {
        let key = ComponentCache::key(&self.engine, digest);
        if let Some(c) = self.loaded.lock().get(&key) {
            self.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(c.clone());
        }
        let component = match self.cache.load(&self.engine, &key) {
            Some(c) => {
                self.disk_hits.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(plugin = name, "component loaded from cache");
                c
            }
            None => {
                let started = std::time::Instant::now();
                let c = Component::new(&self.engine, wasm).map_err(|e| PolicyError::Compile {
                    plugin: name.to_owned(),
                    reason: format!("{e:#}"),
                })?;
                self.compiles.fetch_add(1, Ordering::Relaxed);
                tracing::info!(plugin = name, elapsed = ?started.elapsed(), "compiled plugin");
                self.cache.store(&key, &c);
                // Run the stored copy (mapped, like a cache hit) rather than
                // the compiled one held in memory; a perf map names guest
                // code only in the compiled one.
                let c = match super::engine::perf_map() {
                    false => self.cache.load(&self.engine, &key).unwrap_or(c),
                    true => c,
                };
                crate::memtrim::now();
                c
            }
        };
        self.loaded.lock().insert(key, component.clone());
        Ok(component)
    }

    /// Compile (or load from cache) and link a plugin.
    pub fn load_plugin(
        &self,
        name: &str,
        wasm: &[u8],
        limits: Limits,
        failure: FailureMode,
    ) -> Result<Arc<Plugin>, PolicyError> {
        let digest: [u8; 32] = sha2::Sha256::digest(wasm).into();
        self.load_plugin_digest(name, wasm, &digest, limits, failure)
    }

    /// [`Self::load_plugin`] with the sha256 of `wasm` already known.
    fn load_plugin_digest(
        &self,
        name: &str,
        wasm: &[u8],
        digest: &[u8; 32],
        limits: Limits,
        failure: FailureMode,
    ) -> Result<Arc<Plugin>, PolicyError> {
        let component = self.component(name, wasm, digest)?;
        let contract = |e: wasmtime::Error| PolicyError::Contract {
            plugin: name.to_owned(),
            reason: format!("{e:#}"),
        };
        let pre = self.linker.instantiate_pre(&component).map_err(contract)?;
        let pre = PolicyPluginPre::new(pre).map_err(contract)?;
        Ok(Arc::new(Plugin {
            name: Arc::from(name),
            hash: digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into(),
            engine: self.engine.clone(),
            pre,
            limits,
            failure,
            env: self.env.clone(),
        }))
    }

    /// A plugin embedded in the binary (`plugins/*`), default limits,
    /// failing closed. Use [`super::bundled::wasm`] + [`Self::load_plugin`]
    /// for other settings.
    pub fn bundled(&self, name: &str) -> Option<Arc<Plugin>> {
        if let Some(p) = self.bundled.lock().get(name) {
            return Some(p.clone());
        }
        let wasm = super::bundled::wasm(name)?;
        let digest = super::bundled::digest(name)?;
        match self.load_plugin_digest(name, wasm, digest, Limits::default(), FailureMode::Closed) {
            Ok(p) => {
                self.bundled.lock().insert(name.to_owned(), p.clone());
                Some(p)
            }
            Err(e) => {
                tracing::error!(plugin = name, error = %e, "bundled plugin failed to load");
                None
            }
        }
    }

    /// Validate `config` in a throwaway instance, then create the first
    /// instance and `init` it: its answer fixes the attachment's hooks and
    /// fetch hosts.
    pub fn attach(
        &self,
        plugin: &Arc<Plugin>,
        config: &serde_json::Value,
    ) -> Result<Arc<Attachment>, PolicyError> {
        let name = plugin.name.to_string();
        let text = config.to_string();
        let runtime_err = |reason: String| PolicyError::Runtime {
            plugin: name.clone(),
            reason,
        };

        let mut probe = plugin
            .instantiate(Arc::from([]))
            .map_err(|e| runtime_err(e.reason))?;
        let guest = probe.bindings.sluice_policy_policy();
        match guest.call_validate(&mut probe.store, &text) {
            Ok(Ok(())) => {}
            Ok(Err(message)) => {
                return Err(PolicyError::InvalidConfig {
                    plugin: name,
                    message,
                })
            }
            Err(e) => {
                let err = classify(&e, &probe.store, &plugin.limits);
                return Err(runtime_err(format!("validate: {}", err.reason)));
            }
        }
        drop(probe);

        let mut first = plugin
            .instantiate(Arc::from([]))
            .map_err(|e| runtime_err(e.reason))?;
        first.store.set_epoch_deadline(plugin.limits.init_ticks());
        let guest = first.bindings.sluice_policy_policy();
        first.store.data_mut().in_init = true;
        let init = guest.call_init(&mut first.store, &text);
        first.store.data_mut().in_init = false;
        let init = match init {
            Ok(Ok(r)) => r,
            Ok(Err(message)) => {
                return Err(PolicyError::Init {
                    plugin: name,
                    message,
                })
            }
            Err(e) => {
                let err = classify(&e, &first.store, &plugin.limits);
                return Err(runtime_err(format!("init: {}", err.reason)));
            }
        };
        let fetch_hosts: Vec<String> = match &plugin.limits.fetch_hosts {
            None => init.fetch_hosts,
            Some(allowed) => init
                .fetch_hosts
                .into_iter()
                .filter(|h| {
                    let ok = allowed.iter().any(|a| operator_grants(a, h));
                    if !ok {
                        tracing::warn!(plugin = %name, host = %h, "fetch host not allowed by the operator");
                    }
                    ok
                })
                .collect(),
        };
        let fetch_hosts: Arc<[String]> = fetch_hosts.into();
        first.store.data_mut().fetch_hosts = fetch_hosts.clone();
        tracing::info!(plugin = %name, hooks = ?init.hooks, "plugin attached");
        Ok(Arc::new(Attachment::new(
            plugin.clone(),
            text,
            init.hooks,
            fetch_hosts,
            first,
            super::pool::PoolShape {
                max_idle: self.opts.max_idle_per_attachment,
                reuse: self.opts.reuse_instances,
                live: self.opts.live_per_attachment,
            },
        )))
    }
}

/// Does operator entry `granted` (`host` or `host:port`) cover the plugin's
/// requested `host` or `host:port`? A bare host grants every port.
fn operator_grants(granted: &str, requested: &str) -> bool {
    if granted.eq_ignore_ascii_case(requested) {
        return true;
    }
    let bare = |s: &str| match s.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h.to_string(),
        _ => s.to_string(),
    };
    !granted.contains(':') && granted.eq_ignore_ascii_case(&bare(requested))
}
