//! The `llm:` port's model dispatcher: the request body's `model` picks the
//! route (agentgateway's `ModelRouter`).
//!
//! Why in the host: which model entry, hence which provider and key, serves
//! a request is routing, like the path is on other ports; a policy only
//! decides about a request once routed. Each model entry is an ordinary
//! route (`config::llm`), so what follows the choice — provider checks,
//! credentials, `params.model`, usage, logs — is the routing mode's own.
//!
//! Resolution, for a body's `model`:
//! 1. `/v1/models` (GET) answers from the config: public models and virtual
//!    models, in the OpenAI list shape, or Anthropic's when the request
//!    carries `anthropic-version`.
//! 2. A virtual model of that name picks a target model (weighted random;
//!    conditional: the first `when` that is true, CEL errors counting as
//!    false; failover: the lowest `priority` first, the others in
//!    [`Routed::fallbacks`], tried by the pipeline's phase 5b on no
//!    connection, a timeout, 429 or 5xx). The body's `model` becomes the
//!    target's name, resolved like a client's, `internal` entries included.
//! 3. A model entry: the exact name first, then the longest `prefix*` or
//!    `*suffix` pattern (config order on equal lengths), then `*`.
//!    `internal` entries are skipped for a client's own name. agentgateway
//!    takes the first entry in config order that matches; longest-first
//!    gives the same answer for configs that list specific entries first.
//! 4. The entry's `transformation.model` (CEL over `llmRequest`, the body)
//!    gives the model sent on; failing, the request gets 500 (a config
//!    mistake is not the client's), never the untransformed model.
//!
//! No match is agentgateway's 404 `model_not_found`; a body without a
//! string `model` is 400 `missing_model`.
//!
//! The pipeline runs this after the listener's policies (`llm.policies`, a
//! layer) have seen the headers and the body is read: an unauthenticated
//! client gets the policy's refusal, not the model list nor a 404.

use super::errors::ErrorShape;
use super::snapshot::RouteEntry;
use crate::config::llm::{name_matches, LlmConfig, VirtualRouting};
use crate::llm_cel::{LlmExpr, LlmRequest};
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A request the dispatcher answers itself, in agentgateway's terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub status: u16,
    /// agentgateway's `error.code` (`model_not_found`, ...).
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status,
            code,
            message: message.into(),
        }
    }

    /// The error body in the client's shape: OpenAI's keeps agentgateway's
    /// `code`; Anthropic's has no code, its `type` follows the status.
    pub fn body(&self, shape: ErrorShape) -> Bytes {
        let v = match shape {
            ErrorShape::OpenAi => json!({"error": {
                "message": self.message,
                "type": if self.status >= 500 { "server_error" } else { "invalid_request_error" },
                "param": null,
                "code": self.code,
            }}),
            ErrorShape::Anthropic => json!({"type": "error", "error": {
                "type": super::errors::default_error_type(shape, self.status),
                "message": self.message,
            }}),
        };
        Bytes::from(v.to_string())
    }
}

/// The chosen route and the body to send it (its `model` rewritten).
pub struct Routed {
    pub route: Arc<RouteEntry>,
    pub body: Bytes,
    /// What the client asked for (kept for the access log).
    pub requested: String,
    /// A failover virtual model's other targets, in order: the route and
    /// the model to put in the body (`transformation.model` applied).
    pub fallbacks: Vec<(Arc<RouteEntry>, String)>,
}

struct Model {
    name: String,
    internal: bool,
    transform: Option<LlmExpr>,
    route: Arc<RouteEntry>,
}

enum Routing {
    Weighted(Vec<(String, u64)>),
    Failover(Vec<String>),
    Conditional(Vec<(Option<LlmExpr>, String)>),
}

struct Virtual {
    name: String,
    routing: Routing,
}

/// The compiled `llm:` models of one listener.
pub struct ModelRouter {
    models: Vec<Model>,
    virtuals: Vec<Virtual>,
    /// `created` in the model list: when the config was loaded.
    created: u64,
}

/// A CEL expression the config loader accepted did not compile again.
#[derive(Debug, thiserror::Error)]
#[error("llm: {0}")]
pub struct BuildError(String);

impl ModelRouter {
    /// `routes`: the built route entries by route name.
    pub fn build(
        cfg: &LlmConfig,
        routes: &HashMap<String, Arc<RouteEntry>>,
    ) -> Result<ModelRouter, BuildError> {
        let compile = |s: &str| LlmExpr::compile(s).map_err(|e| BuildError(e.to_string()));
        let mut models = Vec::new();
        for m in &cfg.models {
            let route = routes
                .get(&m.route.name)
                .cloned()
                .ok_or_else(|| BuildError(format!("no route for model `{}`", m.name)))?;
            models.push(Model {
                name: m.name.clone(),
                internal: m.internal,
                transform: m.transform_model.as_deref().map(compile).transpose()?,
                route,
            });
        }
        let mut virtuals = Vec::new();
        for v in &cfg.virtual_models {
            let routing = match &v.routing {
                VirtualRouting::Weighted(t) => Routing::Weighted(t.clone()),
                VirtualRouting::Failover(t) => Routing::Failover(t.clone()),
                VirtualRouting::Conditional(t) => Routing::Conditional(
                    t.iter()
                        .map(|(w, m)| Ok((w.as_deref().map(compile).transpose()?, m.clone())))
                        .collect::<Result<_, BuildError>>()?,
                ),
            };
            virtuals.push(Virtual {
                name: v.name.clone(),
                routing,
            });
        }
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(ModelRouter {
            models,
            virtuals,
            created,
        })
    }

    /// The entry a request's session starts on, before phase 1c picks its
    /// own: every model route has the same API routes and no attachments
    /// of its own (`llm.policies` is a layer), so the choice is neutral.
    pub fn placeholder(&self) -> Arc<RouteEntry> {
        self.models[0].route.clone()
    }

    /// `GET /v1/models`: public model names and virtual models.
    pub fn list(&self, anthropic: bool) -> Bytes {
        let names: Vec<&str> = self
            .models
            .iter()
            .filter(|m| !m.internal)
            .map(|m| m.name.as_str())
            .chain(self.virtuals.iter().map(|v| v.name.as_str()))
            .collect();
        let v = if anthropic {
            let created = rfc3339(self.created);
            json!({
                "data": names.iter().map(|n| json!({
                    "type": "model", "id": n, "display_name": n, "created_at": created,
                })).collect::<Vec<_>>(),
                "has_more": false,
                "first_id": names.first(),
                "last_id": names.last(),
            })
        } else {
            json!({
                "object": "list",
                "data": names.iter().map(|n| json!({
                    "id": n, "object": "model", "created": self.created, "owned_by": "sluice",
                })).collect::<Vec<_>>(),
            })
        };
        Bytes::from(v.to_string())
    }

    /// Pick the route for a strict-JSON request body.
    pub fn route(&self, body: &Bytes) -> Result<Routed, Refusal> {
        let parsed: Value = serde_json::from_slice(body).map_err(|_| {
            Refusal::new(
                400,
                "invalid_request_body",
                "LLM request body must be valid JSON",
            )
        })?;
        let Some(requested) = parsed
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return Err(Refusal::new(
                400,
                "missing_model",
                "LLM request body is missing string field 'model'",
            ));
        };
        let Some(v) = self.virtuals.iter().find(|v| v.name == requested) else {
            let m = self
                .concrete(&requested, false)
                .ok_or_else(|| Refusal::new(404, "model_not_found", "Model not found"))?;
            let (route, body) = self.serve(m, parsed)?;
            return Ok(Routed {
                route,
                body: encode(&body)?,
                requested,
                fallbacks: Vec::new(),
            });
        };
        let targets: Vec<&str> = match &v.routing {
            Routing::Weighted(t) => {
                let total: u64 = t.iter().map(|(_, w)| w).sum();
                let mut pick = fastrand::u64(0..total.max(1));
                let chosen = t
                    .iter()
                    .find(|(_, w)| {
                        if pick < *w {
                            true
                        } else {
                            pick -= w;
                            false
                        }
                    })
                    .map(|(m, _)| m.as_str());
                chosen.into_iter().collect()
            }
            Routing::Failover(t) => t.iter().map(String::as_str).collect(),
            Routing::Conditional(t) => {
                let req = LlmRequest::new(&parsed);
                t.iter()
                .find(|(when, _)| match when {
                    None => true,
                    Some(e) => e.eval_bool(&req).unwrap_or_else(|err| {
                        tracing::debug!(virtual_model = %v.name, error = %err, "`when` failed: false");
                        false
                    }),
                })
                .map(|(_, m)| m.as_str())
                .into_iter()
                .collect()
            }
        };
        if targets.is_empty() {
            return Err(Refusal::new(
                400,
                "virtual_model_no_matching_target",
                format!(
                    "Virtual model {} did not match any conditional target",
                    v.name
                ),
            ));
        }
        let mut served = Vec::new();
        for t in targets {
            let m = self.concrete(t, true).ok_or_else(|| {
                Refusal::new(
                    404,
                    "virtual_model_target_not_found",
                    format!(
                        "Virtual model {} selected target {t}, but no matching model was found",
                        v.name
                    ),
                )
            })?;
            let mut body = parsed.clone();
            body["model"] = Value::String(t.to_string());
            served.push(self.serve(m, body)?);
        }
        let (route, body) = served.remove(0);
        let fallbacks = served
            .into_iter()
            .map(|(r, b)| {
                let model = b["model"].as_str().unwrap_or_default().to_string();
                (r, model)
            })
            .collect();
        Ok(Routed {
            route,
            body: encode(&body)?,
            requested,
            fallbacks,
        })
    }

    /// Exact name, then the longest pattern, then `*`.
    fn concrete(&self, model: &str, allow_internal: bool) -> Option<&Model> {
        let usable = |m: &&Model| allow_internal || !m.internal;
        if let Some(m) = self.models.iter().filter(usable).find(|m| m.name == model) {
            return Some(m);
        }
        let mut best: Option<&Model> = None;
        for m in self.models.iter().filter(usable) {
            if m.name == "*" || !m.name.contains('*') || !name_matches(&m.name, model) {
                continue;
            }
            if best.is_none_or(|b| m.name.len() > b.name.len()) {
                best = Some(m);
            }
        }
        best.or_else(|| self.models.iter().filter(usable).find(|m| m.name == "*"))
    }

    /// The entry's route and the body as it goes on (its `transformation.model`
    /// applied).
    fn serve(&self, m: &Model, mut body: Value) -> Result<(Arc<RouteEntry>, Value), Refusal> {
        if let Some(t) = &m.transform {
            let model = t.eval_string(&LlmRequest::new(&body)).map_err(|e| {
                tracing::warn!(model = %m.name, expression = t.source(), error = %e, "transformation.model failed");
                Refusal::new(
                    500,
                    "model_transformation_failed",
                    format!("the gateway could not compute the upstream model for `{}`: {e}", m.name),
                )
            })?;
            body["model"] = Value::String(model);
        }
        Ok((m.route.clone(), body))
    }
}

fn encode(body: &Value) -> Result<Bytes, Refusal> {
    serde_json::to_vec(body)
        .map(Bytes::from)
        .map_err(|e| Refusal::new(500, "internal_error", format!("re-encoding the body: {e}")))
}

/// Whether a failover virtual model tries its next target after this
/// attempt: no connection, no answer in time, or 429/5xx. Decided before
/// any byte of the answer reaches the client.
pub fn failover_cause<B, E, T>(sent: &Result<Result<http::Response<B>, E>, T>) -> bool {
    match sent {
        Ok(Ok(r)) => {
            r.status() == http::StatusCode::TOO_MANY_REQUESTS || r.status().is_server_error()
        }
        _ => true,
    }
}

/// Whether this request is a model listing (answered from the config).
pub fn lists_models(method: &http::Method, path: &str) -> bool {
    method == http::Method::GET && path.trim_end_matches('/').ends_with("/v1/models")
}

/// `secs` since the epoch as RFC 3339 UTC (Anthropic's `created_at`).
fn rfc3339(secs: u64) -> String {
    let t = UNIX_EPOCH + std::time::Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn refusal_shapes() {
        let r = Refusal::new(404, "model_not_found", "Model not found");
        let o: Value = serde_json::from_slice(&r.body(ErrorShape::OpenAi)).unwrap();
        assert_eq!(o["error"]["code"], "model_not_found");
        assert_eq!(o["error"]["type"], "invalid_request_error");
        let a: Value = serde_json::from_slice(&r.body(ErrorShape::Anthropic)).unwrap();
        assert_eq!(a["type"], "error");
        assert_eq!(a["error"]["type"], "not_found_error");
        assert_eq!(a["error"]["message"], "Model not found");
    }

    #[test]
    fn models_listing() {
        assert!(lists_models(&http::Method::GET, "/v1/models"));
        assert!(!lists_models(&http::Method::POST, "/v1/models"));
        assert!(!lists_models(&http::Method::GET, "/v1/models/x"));
    }
}
