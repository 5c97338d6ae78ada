//! Starting the gateway: load the config, build the running snapshot, open
//! the listeners and the admin endpoint, and wait for a signal to stop.

use crate::config::Protocol;
use crate::metrics::Metrics;
use crate::plugins::{self, PluginSet};
use crate::proxy::client::{ResolveMap, Upstreams};
use crate::proxy::guard::BindPort;
use crate::proxy::pipeline;
use crate::proxy::snapshot::Snapshot;
use crate::{admin, reload, server, watch};
use anyhow::{bail, Context};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How the process was asked to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub config_paths: Vec<PathBuf>,
    /// `--port-map 4060=0`: listen on another port than the config says
    /// (0 = any free port), e.g. to run the guide's files side by side in tests.
    pub port_map: HashMap<u16, u16>,
    /// `--resolve host:port=ip:port` pins for upstream connections.
    pub resolve: Vec<String>,
    /// `--admin ADDR` overrides `admin.address`.
    pub admin: Option<SocketAddr>,
}

pub use reload::load_config;

/// `keys.json` under `state.memory.path`; none with Redis (the records
/// live there) or without a path (memory only).
fn keys_file(cfg: &crate::config::Config) -> Option<PathBuf> {
    match (&cfg.state.backend, &cfg.state.memory_path) {
        (crate::config::StateBackend::Memory, Some(dir)) => {
            Some(crate::keys::persist::path_in(dir))
        }
        _ => None,
    }
}

/// Run until SIGINT/SIGTERM.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let cfg = load_config(&options.config_paths)?;
    let admin_addr = options.admin.unwrap_or(cfg.admin.address);
    if !admin_addr.ip().is_loopback() && cfg.admin.token.is_none() {
        bail!(
            "admin address {admin_addr} is not loopback: set `admin.token` in the config \
             (e.g. `token: $SLUICE_ADMIN_TOKEN`) so the admin API is not open to the network"
        );
    }
    let metrics = Arc::new(Metrics::new());
    let connect_timeout = Duration::from_secs(10);
    let upstreams = Upstreams::new(ResolveMap::parse(&options.resolve)?, connect_timeout);
    let runtime = plugins::runtime_with(
        &metrics,
        upstreams.fetch_client()?,
        &cfg.state,
        crate::policy::pool::LiveLimit {
            max: cfg.limits.plugin_instances,
            wait: cfg.limits.plugin_instance_wait,
        },
    )?;
    tracing::info!(replica = runtime.state().replica(), "replica");
    // Learn now whether the store answers (logged once if not; never fatal:
    // the store reconnects by itself and the failure mode covers the gap).
    let _ = runtime.state().probe();
    let keys = Arc::new(crate::keys::KeyStore::new(
        runtime.state().clone(),
        keys_file(&cfg),
    ));
    match keys.restore() {
        Ok(0) => {}
        Ok(n) => tracing::info!(keys = n, "runtime API keys restored"),
        // A file that cannot be read must not be overwritten by the next
        // change: refuse to start rather than lose every runtime key.
        Err(e) => bail!("runtime API keys: {e}"),
    }
    let budgets = runtime.state().budgets().clone();
    let plugin_set = PluginSet::load(runtime, &cfg)
        .map_err(|e| anyhow::anyhow!("invalid plugins:\n{}", e.join("\n")))?;
    let snapshot = Snapshot::build(Arc::new(cfg.clone()), &upstreams, &plugin_set)?;
    let tracing = crate::otel::Tracing::new(&metrics);
    tracing.apply(crate::otel::plan(cfg.global.tracing.as_ref(), &|n| {
        std::env::var(n).ok()
    })?);
    crate::pricing::set(crate::pricing::catalog_of(&cfg));
    // The reloader owns what it swaps; listeners, SIGHUP, the watcher and
    // the admin endpoint each get a handle to it.
    let serving = reload::Serving {
        snapshot: ArcSwap::from_pointee(snapshot),
        upstreams,
        config_paths: options.config_paths.clone(),
        tracing,
    };
    let hot = Arc::new(reload::HotSwap::new(plugin_set, &cfg, &metrics, serving));
    reload::spawn_sighup(hot.clone()).context("installing the SIGHUP handler")?;
    watch::spawn(hot.clone()).await;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    // Detached: it ends with the runtime, and shutdown must not wait for it.
    drop(crate::memtrim::spawn());
    for bind in &cfg.binds {
        let port = options
            .port_map
            .get(&bind.port)
            .copied()
            .unwrap_or(bind.port);
        let addr = SocketAddr::new(bind.address, port);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (bind port {})", bind.port))?;
        let local = listener.local_addr()?;
        let tls_listener = bind
            .listeners
            .iter()
            .find(|l| l.protocol == Protocol::Https);
        let tls = match tls_listener.and_then(|l| l.tls.as_ref()) {
            Some(files) => Some(server::tls_acceptor(files)?),
            None => None,
        };
        println!(
            "SLUICE_LISTENING port={} addr={} tls={}",
            bind.port,
            local,
            tls.is_some()
        );
        tracing::info!(port = bind.port, %local, tls = tls.is_some(), "listening");
        let (hot2, metrics2) = (hot.clone(), metrics.clone());
        let bind_port = BindPort(bind.port);
        let handler = move |mut req: hyper::Request<hyper::body::Incoming>, peer| {
            req.extensions_mut().insert(bind_port);
            let tracer = hot2.tracing().current();
            let (snapshot, metrics) = (hot2.snapshot(), metrics2.clone());
            async move { pipeline::handle(snapshot, metrics, tracer, req, peer).await }
        };
        let mut rx = stop_rx.clone();
        tasks.push(tokio::spawn(server::serve(
            listener,
            tls,
            (&bind.limits.over(&cfg.limits)).into(),
            handler,
            async move {
                let _ = rx.wait_for(|s| *s).await;
            },
        )));
    }

    let admin_listener = TcpListener::bind(admin_addr)
        .await
        .with_context(|| format!("cannot listen on admin address {admin_addr}"))?;
    println!("SLUICE_ADMIN addr={}", admin_listener.local_addr()?);
    let admin_state = Arc::new(admin::AdminState {
        metrics: metrics.clone(),
        keys,
        spend: None,
    });
    let hot2 = hot.clone();
    let admin_handler =
        move |req, peer| admin::handle(hot2.clone(), admin_state.clone(), req, peer);
    let mut rx = stop_rx.clone();
    tasks.push(tokio::spawn(server::serve(
        admin_listener,
        None,
        server::ServeLimits {
            max_connections: 64,
            ..(&cfg.limits).into()
        },
        admin_handler,
        async move {
            let _ = rx.wait_for(|s| *s).await;
        },
    )));
    // The probe listeners outlive the drain: readiness says 503 meanwhile.
    let (probes_stop_tx, probes_stop_rx) = tokio::sync::watch::channel(false);
    let ready = Arc::new(crate::probes::Readiness::default());
    let mut probe_tasks = Vec::new();
    if let Some(addr) = cfg.global.stats_addr {
        let listener = bind_probe(&options, addr, "statsAddr").await?;
        println!("SLUICE_STATS addr={}", listener.local_addr()?);
        let metrics = metrics.clone();
        let handler = move |req: hyper::Request<hyper::body::Incoming>, _peer| {
            let r = crate::probes::stats(&metrics, &req);
            async move { r }
        };
        probe_tasks.push(spawn_probe(listener, &cfg, handler, probes_stop_rx.clone()));
    }
    if let Some(addr) = cfg.global.readiness_addr {
        let listener = bind_probe(&options, addr, "readinessAddr").await?;
        println!("SLUICE_READINESS addr={}", listener.local_addr()?);
        let ready = ready.clone();
        let handler = move |req: hyper::Request<hyper::body::Incoming>, _peer| {
            let r = crate::probes::readiness(&ready, &req);
            async move { r }
        };
        probe_tasks.push(spawn_probe(listener, &cfg, handler, probes_stop_rx.clone()));
    }
    // Listen for the stop signals before announcing readiness: a SIGTERM
    // that arrives in between would otherwise kill the process undrained.
    let stop = StopSignals::install()?;
    ready.set(true);
    println!("SLUICE_READY");
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "sluice ready");

    stop.wait().await;
    tracing::info!("stopping: draining in-flight requests");
    ready.set(false);
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let _ = probes_stop_tx.send(true);
    for t in probe_tasks {
        let _ = t.await;
    }
    // Requests are done: save their settled spend (memory store with a path).
    budgets.flush();
    // Requests are done: their spans are queued; send them before exiting.
    hot.tracing().shutdown(crate::otel::SHUTDOWN_FLUSH).await;
    Ok(())
}

/// A probe listener (`config.statsAddr`/`readinessAddr`); `--port-map`
/// applies to its port as to a bind's (tests run several gateways at once).
async fn bind_probe(options: &Options, addr: SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    let port = options
        .port_map
        .get(&addr.port())
        .copied()
        .unwrap_or(addr.port());
    let addr = SocketAddr::new(addr.ip(), port);
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on config.{key} {addr}"))
}

fn spawn_probe<H, F>(
    listener: TcpListener,
    cfg: &crate::config::Config,
    handler: H,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()>
where
    H: Fn(hyper::Request<hyper::body::Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = hyper::Response<http_body_util::Full<bytes::Bytes>>>
        + Send
        + 'static,
{
    tokio::spawn(server::serve(
        listener,
        None,
        server::ServeLimits {
            max_connections: 64,
            ..(&cfg.limits).into()
        },
        handler,
        async move {
            let _ = stop.wait_for(|s| *s).await;
        },
    ))
}

/// SIGINT and SIGTERM, listened for from [`StopSignals::install`] on.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}
