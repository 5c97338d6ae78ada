//! The running configuration: the config compiled into routes, targets,
//! clients and policy chains, swapped as a whole on reload.

use super::backends::{Backends, Candidate, Pool};
use super::client::{ClientError, TlsKey, Upstreams};
use super::errors::ErrorShape;
use super::router::MatchSet;
use super::target::Target;
use crate::config::{
    AiKind, Backend, BackendPolicies, Config, ModelAliases, PathRewrite, Retry, Route, Secret,
};
use crate::policy::Attachment;
use crate::provider::auth::Credential;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Time to response headers when the config sets none. Generous: a long
/// non-streaming completion can take minutes before its first byte.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// A route that serves requests.
pub struct RouteEntry {
    pub name: String,
    /// Where it forwards to: one backend, or several with weights, groups
    /// and health.
    pub backends: Backends,
    pub rewrite: Option<PathRewrite>,
    pub ai_routes: Option<Vec<(String, AiKind)>>,
    /// Time to response headers, for one attempt.
    pub attempt_timeout: Duration,
    /// Time to response headers over every attempt and the backoff between.
    pub request_timeout: Duration,
    /// `policies.retry`: total calls (1: no retry), backoff and statuses.
    pub retry: Option<Retry>,
    pub attachments: Vec<Arc<Attachment>>,
    /// The error shape of the route's own answers; `None` when its backends
    /// answer in different families: the client's format decides then.
    pub shape: Option<ErrorShape>,
    /// `ai.modelAliases`: requested model → served model.
    pub aliases: ModelAliases,
    /// `ai.translation.unsupportedFields`.
    pub unsupported_fields: crate::config::UnsupportedFields,
}

impl RouteEntry {
    /// Total calls one client request may make.
    pub fn attempts(&self) -> u8 {
        self.retry.as_ref().map_or(1, |r| r.attempts.max(1))
    }
}

/// A policy layer: a route entry without backends.
pub struct LayerEntry {
    pub name: String,
    pub attachments: Vec<Arc<Attachment>>,
}

/// Everything a request needs, behind one pointer.
pub struct Snapshot {
    /// Per listening port (the bind's configured port): its listeners, each
    /// with its own route table.
    pub binds: HashMap<u16, BindTable>,
    pub config: Arc<Config>,
    /// Every route once, in config order (for `GET /backends`).
    pub routes: Vec<Arc<RouteEntry>>,
}

/// The listeners sharing one port.
pub struct BindTable {
    /// Bound to a loopback address: `Host` must then name loopback or a
    /// configured hostname (DNS rebinding).
    pub loopback: bool,
    /// Listeners with a `hostname` first, in config order, then the others.
    pub listeners: Vec<Arc<ListenerTable>>,
}

/// One listener: what it answers for, who may call it, and its routes.
pub struct ListenerTable {
    pub name: String,
    /// Lowercase; `*.example.com` matches subdomains.
    pub hostname: Option<String>,
    /// The routes served here: top-level routes plus the listener's own.
    pub routes: Vec<(MatchSet, Arc<RouteEntry>)>,
    pub layers: Vec<(MatchSet, Arc<LayerEntry>)>,
    pub allowed_origins: Vec<String>,
    pub auth_keys: Vec<Secret>,
    /// On the `llm:` listener: the body's `model` picks the route.
    pub models: Option<Arc<super::model_router::ModelRouter>>,
}

/// Does `route` apply to listener `listener` on bind `port`?
fn serves(route: &Route, port: u16, listener: &str) -> bool {
    match &route.listener {
        None => true,
        Some(r) => r.listener == listener && r.port.is_none_or(|p| p == port),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("route {route}: {message}")]
    Route { route: String, message: String },
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Llm(#[from] super::model_router::BuildError),
}

/// Turns plugin attachments in the config into live ones.
pub trait AttachmentFactory {
    fn attach(&self, route: &Route) -> Result<Vec<Arc<Attachment>>, String>;
}

impl Snapshot {
    pub fn build(
        config: Arc<Config>,
        upstreams: &Upstreams,
        plugins: &dyn AttachmentFactory,
    ) -> Result<Snapshot, BuildError> {
        let err = |r: &Route, message: String| BuildError::Route {
            route: r.name.clone(),
            message,
        };
        let mut routes = Vec::new();
        for r in &config.routes {
            MatchSet::compile(&r.matches).map_err(|m| err(r, m))?;
            if r.backends.is_empty() {
                return Err(err(r, "no backends".into()));
            }
            let p = &r.policies;
            let mut pools = Vec::new();
            for b in &r.backends {
                let compile = |kind: &Backend, own: &BackendPolicies| {
                    candidate(r, kind, own, upstreams)
                        .map(Arc::new)
                        .map_err(|m| err(r, m))
                };
                let groups = match &b.kind {
                    Backend::Groups(groups) => groups
                        .iter()
                        .map(|g| {
                            g.iter()
                                .map(|ai| compile(&Backend::Ai(ai.clone()), &ai.policies))
                                .collect::<Result<Vec<_>, _>>()
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                    single => vec![vec![compile(single, &b.policies)?]],
                };
                pools.push(Pool {
                    weight: b.weight,
                    groups,
                });
            }
            let backends = Backends { pools };
            let families: Vec<_> = backends
                .all()
                .map(|c| {
                    c.target
                        .api()
                        .map(|a| (a.family(AiKind::Messages), a.family(AiKind::Completions)))
                })
                .collect();
            // One shape for the route when every backend answers every
            // format in the same family; else the client's format decides.
            let shape = match families[0] {
                Some((a, b)) if a == b && families.windows(2).all(|w| w[0] == w[1]) => {
                    Some(ErrorShape::from(a))
                }
                None if families.windows(2).all(|w| w[0] == w[1]) => Some(ErrorShape::OpenAi),
                _ => None,
            };
            let timeout = p.timeout.clone().unwrap_or_default();
            // Without `requestTimeout`, one attempt may take its whole
            // `backendRequestTimeout` even when that exceeds the default.
            let request_timeout = timeout.request_timeout.unwrap_or(
                DEFAULT_REQUEST_TIMEOUT.max(timeout.backend_request_timeout.unwrap_or_default()),
            );
            routes.push((
                r,
                Arc::new(RouteEntry {
                    name: r.name.clone(),
                    backends,
                    rewrite: p.url_rewrite.as_ref().and_then(|u| u.path.clone()),
                    ai_routes: p
                        .ai
                        .as_ref()
                        .map(|a| a.routes.iter().map(|(k, v)| (k.clone(), *v)).collect()),
                    attempt_timeout: timeout
                        .backend_request_timeout
                        .unwrap_or(request_timeout)
                        .min(request_timeout),
                    request_timeout,
                    retry: p.retry.clone(),
                    attachments: plugins.attach(r).map_err(|m| err(r, m))?,
                    shape,
                    aliases: p
                        .ai
                        .as_ref()
                        .map(|a| a.model_aliases.clone())
                        .unwrap_or_default(),
                    unsupported_fields: p
                        .ai
                        .as_ref()
                        .map(|a| a.translation.unsupported_fields)
                        .unwrap_or_default(),
                }),
            ));
        }
        let mut layers = Vec::new();
        for l in &config.layers {
            MatchSet::compile(&l.matches).map_err(|m| err(l, m))?;
            layers.push((
                l,
                Arc::new(LayerEntry {
                    name: l.name.clone(),
                    attachments: plugins.attach(l).map_err(|m| err(l, m))?,
                }),
            ));
        }
        let models = match &config.llm {
            Some(l) => {
                let by_name: HashMap<String, Arc<RouteEntry>> = routes
                    .iter()
                    .map(|(r, e)| (r.name.clone(), e.clone()))
                    .collect();
                Some((
                    l.port,
                    Arc::new(super::model_router::ModelRouter::build(l, &by_name)?),
                ))
            }
            None => None,
        };
        let mut binds = HashMap::new();
        for b in &config.binds {
            let mut listeners = Vec::new();
            for l in &b.listeners {
                let mut table = ListenerTable {
                    name: l.name.clone(),
                    hostname: l.hostname.clone(),
                    routes: Vec::new(),
                    layers: Vec::new(),
                    allowed_origins: l.allowed_origins.clone(),
                    auth_keys: l.auth_keys.clone(),
                    models: models
                        .as_ref()
                        .filter(|(port, _)| {
                            *port == b.port && l.name == crate::config::llm::LLM_LISTENER
                        })
                        .map(|(_, m)| m.clone()),
                };
                // Compiled again per listener: a MatchSet is small, and each
                // table stays a plain slice for `router::select`.
                for (r, entry) in &routes {
                    if serves(r, b.port, &l.name) {
                        let m = MatchSet::compile(&r.matches).map_err(|m| err(r, m))?;
                        table.routes.push((m, entry.clone()));
                    }
                }
                for (r, entry) in &layers {
                    if serves(r, b.port, &l.name) {
                        let m = MatchSet::compile(&r.matches).map_err(|m| err(r, m))?;
                        table.layers.push((m, entry.clone()));
                    }
                }
                listeners.push(Arc::new(table));
            }
            listeners.sort_by_key(|l| l.hostname.is_none());
            binds.insert(
                b.port,
                BindTable {
                    loopback: b.address.is_loopback(),
                    listeners,
                },
            );
        }
        super::budget::GLOBAL.set_limit(config.limits.body_buffer_budget);
        super::budget::set_max_body(config.limits.max_buffered_body);
        let routes = routes.into_iter().map(|(_, e)| e).collect();
        Ok(Snapshot {
            binds,
            config,
            routes,
        })
    }
}

/// One backend compiled: its origin and provider, its credential and TLS
/// (its own `policies` first, then the route's), and its health, found
/// again by route and name so it outlives a reload.
fn candidate(
    r: &Route,
    b: &Backend,
    own: &BackendPolicies,
    upstreams: &Upstreams,
) -> Result<Candidate, String> {
    let p = &r.policies;
    let tls = own.backend_tls.as_ref().or(p.backend_tls.as_ref());
    let mut target = Target::compile(b, tls.is_some())?;
    let (auth, pass_headers) = match &own.backend_auth {
        Some(a) => (Some(a), own.pass_headers.clone()),
        None => (p.backend_auth.as_ref(), p.pass_headers.clone()),
    };
    if let Some(auth) = auth {
        let region = match b {
            Backend::Ai(ai) => ai.params.region.as_deref(),
            _ => None,
        };
        target.credential =
            Credential::compile(auth, target.api(), region, &|n| std::env::var(n).ok())
                .map_err(|e| e.to_string())?;
    }
    let client = upstreams
        .client(&TlsKey {
            extra_root: tls.and_then(|t| t.root.clone()),
        })
        .map_err(|e| e.to_string())?;
    let health = super::health::lookup(&r.name, &target.name);
    Ok(Candidate {
        target,
        client,
        pass_headers,
        eviction: own.health.as_ref().and_then(|h| h.eviction.clone()),
        health,
    })
}
