//! The admin listener: health, metrics, the effective config, each route's
//! backends and their eviction state (`GET /backends`), and hot
//! reloads (`GET /plugins`, `POST /plugins/{name}/reload`,
//! `POST /config/reload`), and runtime API keys (`/keys`, see
//! [`crate::keys`]).
//!
//! Bound to loopback by default (`admin.address`, 127.0.0.1:15000): it shows
//! the config and swaps code, so it is guarded like a credential store:
//! - with `admin.token`, every request but `/healthz` needs
//!   `Authorization: Bearer <token>`; without one, only loopback peers
//!   addressing a loopback `Host` are served (DNS rebinding);
//! - a request carrying `Origin` (a web page) is refused, and `POST`s need
//!   `Content-Type: application/json`, which a page cannot send without a
//!   CORS preflight that this API never answers (CSRF);
//! - a plugin reload `path` must lie inside the plugin's declared directory
//!   or `admin.pluginDirs`, and a refusal says nothing about the filesystem.

use crate::metrics::Metrics;
use crate::reload::HotSwap;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

mod access;
mod backends;
mod keys;

/// Largest `POST /plugins/{name}/reload` body accepted (it holds one path).
const MAX_RELOAD_BODY: usize = 64 * 1024;

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReloadBody {
    path: Option<PathBuf>,
}

/// What the admin API serves besides the hot-swapped config.
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    pub keys: Arc<crate::keys::KeyStore>,
    /// The budget ledger's spend, once a build has one.
    pub spend: Option<Arc<dyn crate::keys::spend::SpendSource>>,
}

pub async fn handle(
    hot: Arc<HotSwap>,
    admin: Arc<AdminState>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    if let Err(refusal) = access::check(&hot.snapshot().config.admin, &req, peer) {
        return refusal;
    }
    if keys::owns(req.uri().path()) {
        return keys::handle(&hot, &admin.keys, admin.spend.as_deref(), req).await;
    }
    let metrics = &admin.metrics;
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "text/plain", "ok\n".into()),
        (&Method::GET, "/metrics") => text(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.render(),
        ),
        (&Method::GET, "/config") => {
            let snap = hot.snapshot();
            let body =
                serde_json::to_string_pretty(&snap.config.redacted_json()).unwrap_or_default();
            text(StatusCode::OK, "application/json", body)
        }
        (&Method::GET, "/backends") => {
            let snap = hot.snapshot();
            json(StatusCode::OK, &backends::report(&snap))
        }
        (&Method::GET, "/plugins") => {
            let snap = hot.snapshot();
            json(StatusCode::OK, &hot.report(&snap.config))
        }
        (&Method::POST, "/config/reload") => {
            let outcome = hot.reload_config().await;
            let status = match outcome {
                crate::reload::ConfigOutcome::Swapped { .. } => StatusCode::OK,
                crate::reload::ConfigOutcome::Refused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            };
            json(status, &outcome)
        }
        (&Method::POST, path) if plugin_reload_name(path).is_some() => {
            let name = plugin_reload_name(path).unwrap_or_default().to_owned();
            reload_plugin(hot, name, req).await
        }
        _ => text(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

/// `/plugins/{name}/reload` → `name`.
fn plugin_reload_name(path: &str) -> Option<&str> {
    let name = path.strip_prefix("/plugins/")?.strip_suffix("/reload")?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

async fn reload_plugin(
    hot: Arc<HotSwap>,
    name: String,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let body = match Limited::new(req.into_body(), MAX_RELOAD_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
    };
    let parsed: ReloadBody = if body.iter().all(u8::is_ascii_whitespace) {
        ReloadBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("expected {{\"path\": \"...\"}} or no body: {e}"),
                )
            }
        }
    };
    if let Some(p) = &parsed.path {
        let config = hot.snapshot().config.clone();
        if let Some(decl) = config.plugins.iter().find(|d| d.name == name) {
            if let Err(msg) = access::plugin_path_allowed(p, &decl.path, &config.admin.plugin_dirs)
            {
                return error(StatusCode::FORBIDDEN, msg.to_string());
            }
        }
    }
    match hot.reload_plugin(&name, parsed.path).await {
        Ok(outcome) => {
            let status = match outcome {
                crate::reload::PluginOutcome::Refused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::OK,
            };
            json(status, &outcome)
        }
        Err(e @ crate::reload::ReloadError::Unknown(_)) => {
            error(StatusCode::NOT_FOUND, e.to_string())
        }
        Err(e @ crate::reload::ReloadError::Bundled(_)) => {
            error(StatusCode::CONFLICT, e.to_string())
        }
    }
}

pub(crate) fn error(status: StatusCode, message: String) -> Response<Full<Bytes>> {
    json(
        status,
        &serde_json::json!({ "result": "error", "reason": message }),
    )
}

fn json(status: StatusCode, v: &impl serde::Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_string_pretty(v).unwrap_or_default();
    text(status, "application/json", body)
}

fn text(status: StatusCode, ct: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(ct));
    r
}
