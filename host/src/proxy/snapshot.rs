//! The running configuration: the config compiled into routes, targets,
//! clients and policy chains, swapped as a whole on reload.

use super::client::{ClientError, HttpClient, TlsKey, Upstreams};
use super::errors::ErrorShape;
use super::router::MatchSet;
use super::target::Target;
use crate::config::{AiKind, BackendAuth, Config, ModelAliases, PathRewrite, Route, Secret};
use crate::policy::Attachment;
use crate::provider::auth::Credential;
use crate::provider::Family;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Time to response headers when the config sets none. Generous: a long
/// non-streaming completion can take minutes before its first byte.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// A route that serves requests.
pub struct RouteEntry {
    pub name: String,
    pub target: Target,
    pub client: HttpClient,
    pub rewrite: Option<PathRewrite>,
    pub ai_routes: Option<Vec<(String, AiKind)>>,
    pub request_timeout: Duration,
    pub attachments: Vec<Arc<Attachment>>,
    pub shape: ErrorShape,
    /// `backendAuth.passHeaders`: billing headers kept beside the injected key.
    pub pass_headers: Vec<String>,
    /// `ai.modelAliases`: requested model → served model.
    pub aliases: ModelAliases,
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
            let backend = r
                .backends
                .first()
                .ok_or_else(|| err(r, "no backends".into()))?;
            if r.backends.len() > 1 {
                tracing::warn!(route = %r.name, "several backends: only the first one is used");
            }
            let p = &r.policies;
            let tls = p.backend_tls.clone().unwrap_or_default();
            let mut target =
                Target::compile(backend, p.backend_tls.is_some()).map_err(|m| err(r, m))?;
            target.credential = match &p.backend_auth {
                Some(BackendAuth::Key(k)) => Some(Credential::Key(k.clone())),
                Some(BackendAuth::Passthrough) | None => None,
                Some(other) => {
                    return Err(err(
                        r,
                        format!("backendAuth {other:?} is not built into this gateway"),
                    ))
                }
            };
            let client = upstreams.client(&TlsKey {
                extra_root: tls.root.clone(),
            })?;
            let timeout = p.timeout.clone().unwrap_or_default();
            let shape = match target.api().map(|a| a.family()) {
                Some(Family::Anthropic) => ErrorShape::Anthropic,
                _ => ErrorShape::OpenAi,
            };
            routes.push((
                r,
                Arc::new(RouteEntry {
                    name: r.name.clone(),
                    target,
                    client,
                    rewrite: p.url_rewrite.as_ref().and_then(|u| u.path.clone()),
                    ai_routes: p
                        .ai
                        .as_ref()
                        .map(|a| a.routes.iter().map(|(k, v)| (k.clone(), *v)).collect()),
                    request_timeout: timeout
                        .backend_request_timeout
                        .or(timeout.request_timeout)
                        .unwrap_or(DEFAULT_REQUEST_TIMEOUT),
                    attachments: plugins.attach(r).map_err(|m| err(r, m))?,
                    shape,
                    pass_headers: p.pass_headers.clone(),
                    aliases: p
                        .ai
                        .as_ref()
                        .map(|a| a.model_aliases.clone())
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
        Ok(Snapshot { binds, config })
    }
}
