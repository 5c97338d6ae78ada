//! The running configuration: the config compiled into routes, targets,
//! clients and policy chains, swapped as a whole on reload.

use super::client::{ClientError, HttpClient, TlsKey, Upstreams};
use super::errors::ErrorShape;
use super::router::MatchSet;
use super::target::Target;
use crate::config::{AiKind, BackendAuth, Config, PathRewrite, Provider, Route};
use crate::policy::Attachment;
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
}

/// A policy layer: a route entry without backends.
pub struct LayerEntry {
    pub name: String,
    pub attachments: Vec<Arc<Attachment>>,
}

/// Everything a request needs, behind one pointer.
pub struct Snapshot {
    pub routes: Vec<(MatchSet, Arc<RouteEntry>)>,
    pub layers: Vec<(MatchSet, Arc<LayerEntry>)>,
    pub config: Arc<Config>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("route {route}: {message}")]
    Route { route: String, message: String },
    #[error(transparent)]
    Client(#[from] ClientError),
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
            let matches = MatchSet::compile(&r.matches).map_err(|m| err(r, m))?;
            let backend = r
                .backends
                .first()
                .ok_or_else(|| err(r, "no backends".into()))?;
            if r.backends.len() > 1 {
                tracing::warn!(route = %r.name, "several backends: only the first one is used");
            }
            let p = &r.policies;
            let tls = p.backend_tls.clone().unwrap_or_default();
            let key = match &p.backend_auth {
                Some(BackendAuth::Key(k)) => Some(k.clone()),
                _ => None,
            };
            let target =
                Target::compile(backend, p.backend_tls.is_some(), key).map_err(|m| err(r, m))?;
            let client = upstreams.client(&TlsKey {
                extra_root: tls.root.clone(),
            })?;
            let timeout = p.timeout.clone().unwrap_or_default();
            let shape = match target.provider {
                Some(Provider::Anthropic) => ErrorShape::Anthropic,
                _ => ErrorShape::OpenAi,
            };
            routes.push((
                matches,
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
                }),
            ));
        }
        let mut layers = Vec::new();
        for l in &config.layers {
            let matches = MatchSet::compile(&l.matches).map_err(|m| err(l, m))?;
            layers.push((
                matches,
                Arc::new(LayerEntry {
                    name: l.name.clone(),
                    attachments: plugins.attach(l).map_err(|m| err(l, m))?,
                }),
            ));
        }
        Ok(Snapshot {
            routes,
            layers,
            config,
        })
    }
}
