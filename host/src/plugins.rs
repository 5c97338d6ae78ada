//! Turning the config's plugin declarations and attachments into live ones.
//!
//! A route's policy keys name plugins: the bundled ones embedded in the
//! binary, or the operator's own from the top-level `plugins:` list (which
//! override a bundled plugin of the same name). Each attachment's config is
//! checked by the plugin's own `validate` export before anything serves, and a
//! failure names the file, line and key that attached it.

use crate::config::{self, Config, PluginAttachment, Route};
use crate::policy::{self, Attachment, FailureMode, Limits, Plugin, PolicyRuntime};
use crate::proxy::snapshot::AttachmentFactory;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A declared plugin as loaded: the compiled plugin plus where it came from,
/// so that a hot swap can tell what changed and `GET /plugins` can show it.
#[derive(Clone)]
pub struct Declared {
    pub plugin: Arc<Plugin>,
    pub decl: config::PluginDecl,
    /// The file actually loaded (the declaration's, or one given to
    /// `POST /plugins/{name}/reload`).
    pub path: PathBuf,
    /// sha256 of the wasm bytes, hex.
    pub hash: String,
}

/// The plugins a config can attach, resolved against one runtime. Cheap to
/// clone: a reload builds a new set and leaves the old one to in-flight
/// requests.
#[derive(Clone)]
pub struct PluginSet {
    runtime: Arc<PolicyRuntime>,
    declared: HashMap<String, Declared>,
}

impl PluginSet {
    /// Load (compile or fetch from the cache) every declared plugin.
    pub fn load(runtime: Arc<PolicyRuntime>, cfg: &Config) -> Result<Self, Vec<String>> {
        let mut declared = HashMap::new();
        let mut errors = Vec::new();
        for d in &cfg.plugins {
            match load_declared(&runtime, d, &d.path) {
                Ok(p) => {
                    declared.insert(d.name.clone(), p);
                }
                Err(e) => errors.push(format!("{}: plugins.{}: {e}", d.location, d.name)),
            }
        }
        if errors.is_empty() {
            Ok(PluginSet { runtime, declared })
        } else {
            Err(errors)
        }
    }

    pub fn runtime(&self) -> &Arc<PolicyRuntime> {
        &self.runtime
    }

    /// The declared plugin `name`, if any.
    pub fn declared(&self, name: &str) -> Option<&Declared> {
        self.declared.get(name)
    }

    /// Every declared plugin, by name.
    pub fn all_declared(&self) -> impl Iterator<Item = (&String, &Declared)> {
        self.declared.iter()
    }

    /// A copy of this set with `name` replaced (the hot-swap path).
    pub fn with_replaced(&self, name: &str, d: Declared) -> PluginSet {
        let mut set = self.clone();
        set.declared.insert(name.to_owned(), d);
        set
    }

    fn attach_one(&self, a: &PluginAttachment) -> Result<Arc<Attachment>, String> {
        let (plugin, config) = match self.declared.get(&a.plugin) {
            Some(d) => {
                let cfg = if a.config.is_null() {
                    d.decl.config.clone()
                } else {
                    a.config.clone()
                };
                (d.plugin.clone(), cfg)
            }
            None => {
                let p = self.runtime.bundled(&a.plugin).ok_or_else(|| {
                    format!(
                        "no plugin named `{}` (declare it under `plugins:`)",
                        a.plugin
                    )
                })?;
                (p, a.config.clone())
            }
        };
        self.runtime
            .attach(&plugin, &config)
            .map_err(|e| e.to_string())
    }

    /// Check every attachment of every route and layer; all problems at once.
    pub fn check(&self, cfg: &Config) -> Vec<String> {
        cfg.all_routes()
            .flat_map(|r| self.attach(r).err())
            .collect()
    }
}

/// sha256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Load declaration `d` from `path` (normally `d.path`): read, hash, compile
/// (or hit the cache) and link against the contract's world.
pub fn load_declared(
    runtime: &PolicyRuntime,
    d: &config::PluginDecl,
    path: &Path,
) -> Result<Declared, String> {
    let wasm = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let hash = sha256_hex(&wasm);
    let defaults = Limits::default();
    let limits = Limits {
        memory_bytes: d
            .memory_limit
            .map(|m| m as usize)
            .unwrap_or(defaults.memory_bytes),
        hook_deadline: d.deadline.unwrap_or(defaults.hook_deadline),
        // Declared plugins reach only what the operator granted.
        fetch_hosts: Some(d.fetch_hosts.clone()),
    };
    let failure = match d.failure_mode {
        config::FailureMode::Closed => FailureMode::Closed,
        config::FailureMode::Open => FailureMode::Open,
    };
    let plugin = runtime
        .load_plugin(&d.name, &wasm, limits, failure)
        .map_err(|e| e.to_string())?;
    Ok(Declared {
        plugin,
        decl: d.clone(),
        path: path.to_path_buf(),
        hash,
    })
}

impl AttachmentFactory for PluginSet {
    fn attach(&self, route: &Route) -> Result<Vec<Arc<Attachment>>, String> {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for a in &route.policies.attachments {
            match self.attach_one(a) {
                Ok(att) => out.push(att),
                Err(e) => errors.push(format!(
                    "{}: routes.{}.policies.{}: {e}",
                    a.location,
                    route.name,
                    a.keys.join("+")
                )),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors.join("\n"))
        }
    }
}

/// The runtime for a gateway process: shared state as `state:` says (memory
/// or Redis; not connected yet), metrics in the gateway's registry.
pub fn runtime(
    metrics: &crate::metrics::Metrics,
    fetch_client: crate::proxy::client::FetchClient,
    state: &config::StateConfig,
) -> Result<Arc<PolicyRuntime>, policy::PolicyError> {
    runtime_with(metrics, fetch_client, state, Default::default())
}

/// [`runtime`] with the config's cap on running instances per attachment.
pub fn runtime_with(
    metrics: &crate::metrics::Metrics,
    fetch_client: crate::proxy::client::FetchClient,
    state: &config::StateConfig,
    live: policy::pool::LiveLimit,
) -> Result<Arc<PolicyRuntime>, policy::PolicyError> {
    let pm = metrics.with_registry(policy::PolicyMetrics::register);
    let sm = metrics.with_registry(policy::state::StateMetrics::register);
    let store = policy::state::from_config(state, sm)
        .map_err(|e| policy::PolicyError::Engine(format!("state: {e}")))?;
    let opts = policy::RuntimeOptions {
        metrics: Some(pm),
        fetch_client: Some(fetch_client),
        live_per_attachment: live,
        ..Default::default()
    };
    Ok(Arc::new(PolicyRuntime::with_state(
        opts,
        Arc::new(store),
        Arc::new(policy::state::SystemClock),
    )?))
}
