//! Starting the gateway: load the config, build the running snapshot, open
//! the listeners and the admin endpoint, and wait for a signal to stop.

use crate::config::{self, Config, Protocol};
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

/// The shared state of a running gateway.
pub struct Gateway {
    pub snapshot: ArcSwap<Snapshot>,
    pub metrics: Arc<Metrics>,
    pub upstreams: Upstreams,
    pub options: Options,
    /// Hot swap of plugins and config (`reload`).
    pub hot: reload::HotSwap,
    /// OpenTelemetry traces (`config.tracing`), swapped on reload.
    pub tracing: crate::otel::Tracing,
}

/// Load and validate the config files.
pub fn load_config(paths: &[PathBuf]) -> anyhow::Result<Config> {
    // The loader logs its own warnings (duplicate keys and the like).
    let loaded = config::load(paths).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    if loaded.config.binds.is_empty() {
        bail!(
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
    let plugin_set = PluginSet::load(runtime, &cfg)
        .map_err(|e| anyhow::anyhow!("invalid plugins:\n{}", e.join("\n")))?;
    let snapshot = Snapshot::build(Arc::new(cfg.clone()), &upstreams, &plugin_set)?;
    let hot = reload::HotSwap::new(plugin_set, &cfg, &metrics);
    let tracing = crate::otel::Tracing::new(&metrics);
    tracing.apply(crate::otel::plan(cfg.global.tracing.as_ref(), &|n| {
        std::env::var(n).ok()
    })?);
    crate::pricing::set(model_catalog(&cfg));
    let gw = Arc::new(Gateway {
        snapshot: ArcSwap::from_pointee(snapshot),
        metrics,
        upstreams,
        options: options.clone(),
        hot,
        tracing,
    });
    reload::spawn_sighup(gw.clone()).context("installing the SIGHUP handler")?;
    watch::spawn(gw.clone()).await;

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
        let gw2 = gw.clone();
        let bind_port = BindPort(bind.port);
        let handler = move |mut req: hyper::Request<hyper::body::Incoming>, peer| {
            let gw = gw2.clone();
            req.extensions_mut().insert(bind_port);
            let tracer = gw.tracing.current();
            async move {
                pipeline::handle(
                    gw.snapshot.load_full(),
                    gw.metrics.clone(),
                    tracer,
                    req,
                    peer,
                )
                .await
            }
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
    let gw2 = gw.clone();
    let admin_handler = move |req, peer| admin::handle(gw2.clone(), req, peer);
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
    println!("SLUICE_READY");
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "sluice ready");

    wait_for_stop().await;
    tracing::info!("stopping: draining in-flight requests");
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    // Requests are done: their spans are queued; send them before exiting.
    gw.tracing.shutdown(crate::otel::SHUTDOWN_FLUSH).await;
    Ok(())
}

async fn wait_for_stop() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The price catalog `cfg` sets (empty: no request is priced).
pub fn model_catalog(cfg: &Config) -> crate::config::Catalog {
    cfg.global
        .model_catalog
        .as_ref()
        .map(|m| m.catalog.clone())
        .unwrap_or_default()
}
