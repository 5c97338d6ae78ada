//! Hot swap: replace one plugin, or the whole config, while serving.
//!
//! Why it is safe under load: a reload never mutates what requests use. It
//! compiles and validates on a blocking thread, builds a complete new
//! [`Snapshot`] (every attachment's config passes the plugin's `validate`
//! export and `init`, exactly as at startup), and only then stores it in the
//! gateway's `ArcSwap`. Requests that loaded the old snapshot finish on it. Any
//! failure leaves the old snapshot serving: a broken swap never means "no
//! policy". The [`PolicyRuntime`] (and so the host counters/KV behind it) is
//! kept across reloads, so a rate-limit window survives a plugin upgrade.
//!
//! Reloads are serialised by one async mutex that also holds the
//! [`PluginSet`] the current snapshot was built from.

use crate::config::Config;
use crate::metrics::Metrics;
use crate::plugins::{self, Declared, PluginSet};
use crate::policy::{bundled, PolicyRuntime};
use crate::proxy::client::Upstreams;
use crate::proxy::snapshot::Snapshot;
use arc_swap::ArcSwap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    /// `plugin` or `config`.
    kind: &'static str,
    /// `swapped`, `unchanged` or `refused`.
    result: &'static str,
}

/// Why a plugin reload could not even be attempted (answered 4xx).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("no plugin named `{0}`")]
    Unknown(String),
    #[error("`{0}` is a bundled plugin: declare it under `plugins:` with a `path` to reload it")]
    Bundled(String),
}

/// What a plugin reload did; the admin endpoint's JSON answer.
#[derive(Debug, Clone, Serialize)]
#[serde(
    tag = "result",
    rename_all = "lowercase",
    rename_all_fields = "camelCase"
)]
pub enum PluginOutcome {
    Swapped {
        plugin: String,
        path: PathBuf,
        old_hash: String,
        new_hash: String,
        version: u64,
    },
    /// Same bytes as the running version: nothing to swap.
    Unchanged {
        plugin: String,
        path: PathBuf,
        hash: String,
        version: u64,
    },
    /// A check failed; the old version keeps serving.
    Refused {
        plugin: String,
        path: PathBuf,
        reason: String,
        serving_hash: String,
        serving_version: u64,
    },
}

/// What a config reload did.
#[derive(Debug, Clone, Serialize)]
#[serde(
    tag = "result",
    rename_all = "lowercase",
    rename_all_fields = "camelCase"
)]
pub enum ConfigOutcome {
    Swapped {
        version: u64,
    },
    Refused {
        reason: String,
        serving_version: u64,
    },
}

/// One plugin's row in `GET /plugins`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginStatus {
    pub name: String,
    /// The `.wasm` path, or `bundled`.
    pub source: String,
    /// sha256 of the component bytes, hex.
    pub hash: String,
    /// Swap count, from 1.
    pub version: u64,
    pub loaded_at: String,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub routes: Vec<String>,
}

/// The config's row in `GET /plugins`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigStatus {
    pub sources: Vec<PathBuf>,
    pub version: u64,
    pub loaded_at: String,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
}

#[derive(Default)]
struct Status {
    /// Declared plugins of the running config (routes filled in on read).
    plugins: BTreeMap<String, PluginStatus>,
    /// Highest version handed out per name; never reset, so versions stay
    /// monotonic even if a plugin is removed and declared again.
    versions: HashMap<String, u64>,
    /// The config's version and last refusal.
    config: Option<ConfigStatus>,
}

/// What a reload replaces while the gateway serves: the running snapshot,
/// built from the config files against the upstreams, and the tracer the
/// config sets up. The reloader owns it; the listeners only read it.
pub struct Serving {
    pub snapshot: ArcSwap<Snapshot>,
    pub upstreams: Upstreams,
    pub config_paths: Vec<PathBuf>,
    pub tracing: crate::otel::Tracing,
}

/// Load and validate the config files, as at start and on every reload.
pub fn load_config(paths: &[PathBuf]) -> anyhow::Result<Config> {
    // The loader logs its own warnings (duplicate keys and the like).
    let loaded = crate::config::load(paths).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    if loaded.config.binds.is_empty() {
        anyhow::bail!(
            "no binds: {} defines routes but no `binds:` to listen on",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(loaded.config)
}

/// The reloader: the serving state it swaps, and the plugin set and
/// reload history behind it. Shared by the admin endpoint, SIGHUP and the
/// file watcher; it knows none of them.
pub struct HotSwap {
    serving: Arc<Serving>,
    runtime: Arc<PolicyRuntime>,
    current: tokio::sync::Mutex<PluginSet>,
    status: parking_lot::Mutex<Status>,
    started: SystemTime,
    reloads: Family<ReloadLabels, Counter>,
}

fn now_text(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

impl HotSwap {
    /// Record the startup plugin set as version 1 of everything.
    pub fn new(set: PluginSet, cfg: &Config, metrics: &Metrics, serving: Serving) -> HotSwap {
        let reloads = Family::<ReloadLabels, Counter>::default();
        metrics.with_registry(|r| {
            r.register(
                "reloads",
                "Hot reloads of plugins and config, by kind and result",
                reloads.clone(),
            )
        });
        let started = SystemTime::now();
        let mut status = Status {
            config: Some(ConfigStatus {
                sources: cfg.sources.clone(),
                version: 1,
                loaded_at: now_text(started),
                last_error: None,
                last_error_at: None,
            }),
            ..Default::default()
        };
        for (name, d) in set.all_declared() {
            status.versions.insert(name.clone(), 1);
            status
                .plugins
                .insert(name.clone(), new_status(name, d, 1, started));
        }
        HotSwap {
            serving: Arc::new(serving),
            runtime: set.runtime().clone(),
            current: tokio::sync::Mutex::new(set),
            status: parking_lot::Mutex::new(status),
            started,
            reloads,
        }
    }

    /// The running snapshot, for a request to use from start to end.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.serving.snapshot.load_full()
    }

    /// The tracer requests start their traces with.
    pub fn tracing(&self) -> &crate::otel::Tracing {
        &self.serving.tracing
    }

    fn count(&self, kind: &'static str, result: &'static str) {
        self.reloads
            .get_or_create(&ReloadLabels { kind, result })
            .inc();
    }

    /// Paths the file watcher should follow: the config files and the
    /// declared plugins' files as currently loaded.
    pub async fn watched(&self) -> (Vec<PathBuf>, Vec<(String, PathBuf)>) {
        let set = self.current.lock().await;
        let plugins = set
            .all_declared()
            .map(|(n, d)| (n.clone(), d.path.clone()))
            .collect();
        let cfg = self.serving.snapshot.load().config.clone();
        let mut configs = cfg.sources.clone();
        // A price catalog file is part of the config: its change reloads
        // the config, which reads it again.
        if let Some(mc) = &cfg.global.model_catalog {
            configs.extend(mc.files.iter().cloned());
        }
        (configs, plugins)
    }

    /// `GET /plugins`: declared plugins plus the bundled ones routes use.
    pub fn report(&self, cfg: &Config) -> serde_json::Value {
        let status = self.status.lock();
        let mut rows: BTreeMap<String, PluginStatus> = status.plugins.clone();
        for r in cfg.all_routes() {
            for a in &r.policies.attachments {
                let row = rows
                    .entry(a.plugin.clone())
                    .or_insert_with(|| PluginStatus {
                        name: a.plugin.clone(),
                        source: "bundled".into(),
                        hash: bundled::digest(&a.plugin)
                            .map(|d| d.iter().map(|b| format!("{b:02x}")).collect())
                            .unwrap_or_default(),
                        version: 1,
                        loaded_at: now_text(self.started),
                        last_error: None,
                        last_error_at: None,
                        routes: Vec::new(),
                    });
                if !row.routes.contains(&r.name) {
                    row.routes.push(r.name.clone());
                }
            }
        }
        // A plugin's last error is the later of its last refused reload
        // and its last refused or failed fetch (an IdP it cannot reach).
        for (name, f) in self.runtime.fetch_failures() {
            if let Some(row) = rows.get_mut(&name) {
                let at = now_text(f.at);
                if row.last_error_at.as_ref().is_none_or(|t| *t <= at) {
                    row.last_error = Some(f.reason);
                    row.last_error_at = Some(at);
                }
            }
        }
        serde_json::json!({
            "config": status.config,
            "plugins": rows.into_values().collect::<Vec<_>>(),
        })
    }

    /// Reload plugin `name` from `path` (default: the file it was loaded
    /// from). Refusals are an `Ok` outcome: the request itself was fine.
    pub async fn reload_plugin(
        &self,
        name: &str,
        path: Option<PathBuf>,
    ) -> Result<PluginOutcome, ReloadError> {
        let mut current = self.current.lock().await;
        let Some(old) = current.declared(name).cloned() else {
            return Err(if bundled::wasm(name).is_some() {
                ReloadError::Bundled(name.to_owned())
            } else {
                ReloadError::Unknown(name.to_owned())
            });
        };
        let path = path.unwrap_or_else(|| old.path.clone());
        let set = current.clone();
        let serving = self.serving.clone();
        let (name2, path2, old2) = (name.to_owned(), path.clone(), old.clone());
        let work = tokio::task::spawn_blocking(move || -> Result<Swap, String> {
            let d = plugins::load_declared(set.runtime(), &old2.decl, &path2)?;
            if d.hash == old2.hash {
                return Ok(Swap::Same(d));
            }
            let new_set = set.with_replaced(&name2, d.clone());
            let cfg = serving.snapshot.load().config.clone();
            let snap =
                Snapshot::build(cfg, &serving.upstreams, &new_set).map_err(|e| e.to_string())?;
            Ok(Swap::New(new_set, snap, d))
        })
        .await
        .unwrap_or_else(|e| Err(format!("reload task failed: {e}")));

        let serving_version = self.version_of(name);
        match work {
            Ok(Swap::Same(d)) => {
                if d.path != old.path {
                    let keep = Declared {
                        path: d.path.clone(),
                        ..old.clone()
                    };
                    *current = current.with_replaced(name, keep);
                    if let Some(s) = self.status.lock().plugins.get_mut(name) {
                        s.source = d.path.display().to_string();
                    }
                }
                self.count("plugin", "unchanged");
                tracing::info!(plugin = name, hash = %d.hash, "plugin reload: unchanged");
                Ok(PluginOutcome::Unchanged {
                    plugin: name.to_owned(),
                    path,
                    hash: d.hash,
                    version: serving_version,
                })
            }
            Ok(Swap::New(new_set, snap, d)) => {
                self.serving.snapshot.store(Arc::new(snap));
                *current = new_set;
                let version = self.bump(name, &d);
                self.count("plugin", "swapped");
                tracing::info!(plugin = name, path = %d.path.display(), old_hash = %old.hash,
                    new_hash = %d.hash, version, "plugin swapped");
                Ok(PluginOutcome::Swapped {
                    plugin: name.to_owned(),
                    path,
                    old_hash: old.hash,
                    new_hash: d.hash,
                    version,
                })
            }
            Err(reason) => {
                self.refuse_plugin(name, &reason);
                tracing::warn!(plugin = name, path = %path.display(), %reason,
                    "plugin reload refused; the old version keeps serving");
                Ok(PluginOutcome::Refused {
                    plugin: name.to_owned(),
                    path,
                    reason,
                    serving_hash: old.hash,
                    serving_version,
                })
            }
        }
    }

    /// Reload every config file: routes, plugin set and plugin configs. The
    /// new config passes the same checks as at startup or is refused.
    pub async fn reload_config(&self) -> ConfigOutcome {
        let mut current = self.current.lock().await;
        let runtime = self.runtime.clone();
        let serving = self.serving.clone();
        let work = tokio::task::spawn_blocking(
            move || -> Result<(PluginSet, Snapshot, Option<crate::otel::Plan>), String> {
                let cfg = load_config(&serving.config_paths).map_err(|e| format!("{e:#}"))?;
                let tracing =
                    crate::otel::plan(cfg.global.tracing.as_ref(), &|n| std::env::var(n).ok())
                        .map_err(|e| e.to_string())?;
                if cfg.state != serving.snapshot.load().config.state {
                    return Err("`state` changed: the shared state backend (and replicaId) \
                    cannot change on a running gateway; this change needs a restart"
                        .to_string());
                }
                let set = PluginSet::load(runtime, &cfg)
                    .map_err(|e| format!("invalid plugins:\n{}", e.join("\n")))?;
                let snap = Snapshot::build(Arc::new(cfg), &serving.upstreams, &set)
                    .map_err(|e| e.to_string())?;
                Ok((set, snap, tracing))
            },
        )
        .await
        .unwrap_or_else(|e| Err(format!("reload task failed: {e}")));

        let serving_version = self.status.lock().config.as_ref().map_or(1, |c| c.version);
        match work {
            Ok((set, snap, tracing)) => {
                self.serving.tracing.apply(tracing);
                crate::pricing::set(crate::pricing::catalog_of(&snap.config));
                let binds_changed = self.serving.snapshot.load().config.binds != snap.config.binds;
                if binds_changed {
                    tracing::warn!(
                        "config reload: `binds` changed; listeners are only reopened on restart"
                    );
                }
                let sources = snap.config.sources.clone();
                self.serving.snapshot.store(Arc::new(snap));
                self.record_set(&set);
                *current = set;
                let version = serving_version + 1;
                {
                    let mut st = self.status.lock();
                    st.config = Some(ConfigStatus {
                        sources,
                        version,
                        loaded_at: now_text(SystemTime::now()),
                        last_error: None,
                        last_error_at: None,
                    });
                }
                self.count("config", "swapped");
                tracing::info!(version, "config reloaded");
                ConfigOutcome::Swapped { version }
            }
            Err(reason) => {
                if let Some(c) = self.status.lock().config.as_mut() {
                    c.last_error = Some(reason.clone());
                    c.last_error_at = Some(now_text(SystemTime::now()));
                }
                self.count("config", "refused");
                tracing::warn!(%reason, "config reload refused; the old config keeps serving");
                ConfigOutcome::Refused {
                    reason,
                    serving_version,
                }
            }
        }
    }

    fn version_of(&self, name: &str) -> u64 {
        self.status
            .lock()
            .plugins
            .get(name)
            .map_or(1, |s| s.version)
    }

    fn bump(&self, name: &str, d: &Declared) -> u64 {
        let mut st = self.status.lock();
        let v = st.versions.entry(name.to_owned()).or_insert(0);
        *v += 1;
        let version = *v;
        st.plugins.insert(
            name.to_owned(),
            new_status(name, d, version, SystemTime::now()),
        );
        version
    }

    fn refuse_plugin(&self, name: &str, reason: &str) {
        self.count("plugin", "refused");
        let mut st = self.status.lock();
        if let Some(s) = st.plugins.get_mut(name) {
            s.last_error = Some(reason.to_owned());
            s.last_error_at = Some(now_text(SystemTime::now()));
        }
    }

    /// After a config reload: new or changed plugins get a new version,
    /// unchanged ones keep theirs, removed ones leave the report.
    fn record_set(&self, set: &PluginSet) {
        let mut st = self.status.lock();
        let mut plugins = BTreeMap::new();
        for (name, d) in set.all_declared() {
            let row = match st.plugins.get(name) {
                Some(s) if s.hash == d.hash => PluginStatus {
                    source: d.path.display().to_string(),
                    ..s.clone()
                },
                _ => {
                    let v = st.versions.entry(name.clone()).or_insert(0);
                    *v += 1;
                    new_status(name, d, *v, SystemTime::now())
                }
            };
            plugins.insert(name.clone(), row);
        }
        st.plugins = plugins;
    }
}

enum Swap {
    Same(Declared),
    New(PluginSet, Snapshot, Declared),
}

fn new_status(name: &str, d: &Declared, version: u64, at: SystemTime) -> PluginStatus {
    PluginStatus {
        name: name.to_owned(),
        source: d.path.display().to_string(),
        hash: d.hash.clone(),
        version,
        loaded_at: now_text(at),
        last_error: None,
        last_error_at: None,
        routes: Vec::new(),
    }
}

/// Reload the whole config on every SIGHUP. Installed before the gateway
/// reports ready, so a SIGHUP never hits the default action (exit).
pub fn spawn_sighup(hot: Arc<HotSwap>) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the config");
            hot.reload_config().await;
        }
    });
    Ok(())
}
