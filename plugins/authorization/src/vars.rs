//! The variables a rule sees on one request, named as agentgateway names
//! them (see [`crate::check`] for the table).
//!
//! A variable Sluice has no value for on this request is left out rather
//! than set to an empty value: `jwt` without a verified token, `llm` before
//! the body is read, `llm.requestModel` without a string `model`. Reading
//! it then fails, and a failed rule never allows (see `rule::decide`).

use serde_json::{json, Map, Value};
use sluice_sdk::{Provider, RequestContext};

use crate::body::LlmBody;

/// The attribute `jwt-auth` publishes the verified claims in (JSON object).
pub const CLAIMS_ATTR: &str = "auth.claims";

/// Everything one evaluation binds, as JSON values.
#[derive(Debug, Default)]
pub struct Vars {
    pub roots: Vec<(&'static str, Value)>,
}

impl Vars {
    /// The request-side variables. `claims` is the `auth.claims`
    /// attribute's text, if any.
    pub fn new(ctx: &RequestContext, headers: &[(String, String)], claims: Option<&str>) -> Vars {
        let mut request = Map::new();
        request.insert("method".into(), json!(ctx.method));
        request.insert("path".into(), json!(ctx.path));
        let pq = match &ctx.query {
            Some(q) => format!("{}?{q}", ctx.path),
            None => ctx.path.clone(),
        };
        request.insert("pathAndQuery".into(), json!(pq));
        let merged = merge_headers(headers);
        if let Some(host) = merged.get("host") {
            request.insert("host".into(), host.clone());
        }
        request.insert("headers".into(), Value::Object(merged));
        let mut roots = vec![
            ("request", Value::Object(request)),
            ("source", json!({ "address": ctx.client_ip })),
            ("backend", json!({ "name": ctx.backend })),
        ];
        // Only an object is a claim set; anything else is no token.
        if let Some(Value::Object(c)) = claims.and_then(|t| serde_json::from_str(t).ok()) {
            roots.push(("jwt", Value::Object(c)));
        }
        Vars { roots }
    }

    /// Add `llm` and `llmRequest` from the body.
    pub fn with_body(mut self, ctx: &RequestContext, body: LlmBody) -> Vars {
        let mut llm = Map::new();
        llm.insert("streaming".into(), json!(body.streaming));
        if let Some(p) = provider(ctx.provider) {
            llm.insert("provider".into(), json!(p));
        }
        if let Some(m) = body.model {
            llm.insert("requestModel".into(), json!(m));
        }
        self.roots.push(("llm", Value::Object(llm)));
        if let Some(r) = body.request {
            self.roots.push(("llmRequest", r));
        }
        self
    }

    /// A CEL context holding these variables.
    pub fn context(&self) -> cel::Context<'static, 'static> {
        let mut ctx = cel::Context::with_env(crate::rule::env());
        for (name, v) in &self.roots {
            // Every JSON value has a CEL value (maps with string keys,
            // lists, numbers, strings, bools, null).
            if let Ok(v) = cel::to_value(v) {
                ctx.add_variable_from_value(*name, v);
            }
        }
        ctx
    }
}

/// agentgateway's provider names for `llm.provider`.
fn provider(p: Provider) -> Option<&'static str> {
    match p {
        Provider::Anthropic => Some("anthropic"),
        Provider::Openai => Some("openai"),
        Provider::None => None,
    }
}

/// Lowercase names, repeated names joined with `, ` (HTTP list semantics).
fn merge_headers(h: &[(String, String)]) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in h {
        let k = k.to_ascii_lowercase();
        match out.get_mut(&k) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(v);
            }
            _ => {
                out.insert(k, Value::String(v.clone()));
            }
        }
    }
    out
}
