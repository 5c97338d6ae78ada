//! `transform`: header modifiers with `$(...)` templates and CEL body and
//! header transformations, as in the agentgateway guide.
//!
//! ```yaml
//! policies:
//!   requestHeaderModifier:
//!     set:
//!       X-Gateway-Version: "1.2"
//!       X-Request-ID: \\$(request.id)
//!   responseHeaderModifier:
//!     add:
//!       X-Gateway-Processed: "true"
//!   transformations:
//!     request:
//!       body: toJson(json(request.body).filterKeys(k, k != "context_management"))
//!       headers:
//!         set:
//!           X-Authenticated-User: \\$(request.auth.claims.email)
//! ```
//!
//! See [`config`] for every accepted form and the template-vs-CEL rule,
//! [`template`] for templates (a missing variable skips the header), and
//! [`json`] for how `json`/`toJson`/`filterKeys` keep key order.
//!
//! Behaviour worth knowing:
//! - The body is only requested when a body expression is configured, and
//!   only for requests that may have one (`content-length` > 0, chunked, or
//!   no length on a method other than GET/HEAD/OPTIONS/DELETE/TRACE).
//!   An empty body is passed through untouched.
//! - A body expression that fails (the body is not JSON, a missing key, a
//!   type error) answers **500 `api_error` "transformation failed: <reason>"**:
//!   forwarding an untransformed body could leak exactly what the operator
//!   meant to strip.
//! - A CEL header expression (flat form) that fails, or yields `null`, skips
//!   that header (logged at debug): `request.headers["x"]` on a request
//!   without `x` is the common case, not an error. Header expressions cannot
//!   see bodies (headers are edited before the body is read).
//! - Response bodies are transformed for non-streaming responses only.
//! - A rendered value with CR/LF is never sent (header injection).

pub mod config;
pub mod expr;
pub mod json;
pub mod template;

use sluice_sdk::prelude::*;

use config::{Config, Side};
use expr::Vars;
use template::{Lookup, Var};

/// Attribute prefix for request headers kept for response-side templates.
const ATTR_REQ_HEADER: &str = "transform.request.header.";
/// Attribute holding the response headers (JSON pairs) for a response body expression.
const ATTR_RESP_HEADERS: &str = "transform.response.headers";
/// Longest reason echoed to the client or the log.
const MAX_REASON: usize = 300;

pub struct Transform {
    config: Config,
    /// Request headers that response-side templates read.
    response_template_headers: Vec<String>,
    response_body_needs_headers: bool,
}

impl Policy for Transform {
    /// Parsed by hand ([`config::parse`]) to accept both YAML forms and to
    /// name the exact offending key.
    type Config = serde_json::Value;

    fn validate(config: &serde_json::Value) -> Result<(), String> {
        config::parse(config).map(|_| ())
    }

    fn new(config: serde_json::Value) -> Result<Self, String> {
        let config = config::parse(&config)?;
        let response_template_headers = config
            .response
            .templates
            .set
            .iter()
            .chain(&config.response.templates.add)
            .flat_map(|(_, t)| t.vars())
            .filter_map(|v| match v {
                Var::RequestHeader(h) => Some(h.clone()),
                _ => None,
            })
            .collect();
        let response_body_needs_headers = config
            .response
            .body
            .as_ref()
            .is_some_and(|b| b.references("response") && b.source().contains("headers"));
        Ok(Transform {
            config,
            response_template_headers,
            response_body_needs_headers,
        })
    }

    fn hooks(&self) -> Hooks {
        let c = &self.config;
        let mut h = Hooks::empty();
        if c.request.has_header_edits()
            || c.request.body.is_some()
            || !self.response_template_headers.is_empty()
        {
            h |= Hooks::REQUEST_HEADERS;
        }
        if c.request.body.is_some() {
            h |= Hooks::REQUEST_BODY;
        }
        if c.response.has_header_edits() || self.response_body_needs_headers {
            h |= Hooks::RESPONSE_HEADERS;
        }
        if c.response.body.is_some() {
            h |= Hooks::RESPONSE_BODY;
        }
        h
    }

    /// The headers templates name, plus the two that say whether a request
    /// has a body. A CEL expression that mentions `headers`, or indexes a
    /// map (`request["..."]` could spell any name), may read any header:
    /// then all of them.
    fn reads_headers(&self) -> Option<Vec<String>> {
        let sides = [&self.config.request, &self.config.response];
        let open_ended = sides.iter().any(|side| {
            side.cel
                .set
                .iter()
                .chain(&side.cel.add)
                .map(|(_, e)| e)
                .chain(&side.body)
                .any(|e| e.source().contains("headers") || e.source().contains('['))
        });
        if open_ended {
            return None;
        }
        let mut names = vec!["content-length".to_owned(), "transfer-encoding".to_owned()];
        for side in sides {
            for (_, t) in side.templates.set.iter().chain(&side.templates.add) {
                for v in t.vars() {
                    if let Var::RequestHeader(h) = v {
                        names.push(h.to_ascii_lowercase());
                    }
                }
            }
        }
        Some(names)
    }

    fn on_request_headers(&self, ctx: &RequestContext, headers: &Headers) -> HeadersAction {
        for name in &self.response_template_headers {
            if let Some(v) = header(headers, name) {
                host::set_attr(&format!("{ATTR_REQ_HEADER}{name}"), v);
            }
        }
        let side = &self.config.request;
        let ops = if side.has_header_edits() {
            let lookup = Ctx {
                ctx,
                request_headers: Some(headers),
            };
            let vars = Vars {
                request_headers: Some(headers),
                ..base_vars(ctx)
            };
            header_ops(side, &lookup, &vars)
        } else {
            HeaderOps::new()
        };
        if side.body.is_some() && has_body(&ctx.method, headers) {
            ops.need_body()
        } else {
            ops.proceed()
        }
    }

    fn on_request_body(
        &self,
        ctx: &RequestContext,
        headers: &Headers,
        body: Vec<u8>,
    ) -> BodyAction {
        let Some(expr) = &self.config.request.body else {
            return BodyAction::Continue;
        };
        if body.is_empty() {
            return BodyAction::Continue;
        }
        let text = String::from_utf8_lossy(&body);
        let vars = Vars {
            request_headers: Some(headers),
            request_body: Some(&text),
            ..base_vars(ctx)
        };
        match expr.eval_bytes(&vars) {
            // Nothing changed (the guide's filter on a body without the
            // key): no copy back, no new `content-length`.
            Ok(out) if out == body => BodyAction::Continue,
            Ok(out) => BodyAction::Replace(out),
            Err(e) => failed("request", &e),
        }
    }

    fn on_response_headers(
        &self,
        ctx: &RequestContext,
        status: u16,
        headers: &Headers,
    ) -> ResponseHeadersAction {
        if self.response_body_needs_headers {
            let pairs = expr::merge_headers(headers);
            if let Ok(text) = serde_json::to_string(&pairs) {
                host::set_attr(ATTR_RESP_HEADERS, &text);
            }
        }
        let side = &self.config.response;
        if !side.has_header_edits() {
            return HeaderOps::new().proceed_response();
        }
        let lookup = Ctx {
            ctx,
            request_headers: None,
        };
        let vars = Vars {
            response_status: Some(status),
            response_headers: Some(headers),
            ..base_vars(ctx)
        };
        header_ops(side, &lookup, &vars).proceed_response()
    }

    fn on_response_body(&self, ctx: &RequestContext, status: u16, body: Vec<u8>) -> BodyAction {
        let Some(expr) = &self.config.response.body else {
            return BodyAction::Continue;
        };
        let text = String::from_utf8_lossy(&body);
        let response_headers = host::get_attr(ATTR_RESP_HEADERS)
            .and_then(|t| serde_json::from_str::<Vec<(String, String)>>(&t).ok())
            .unwrap_or_default();
        let vars = Vars {
            response_status: Some(status),
            response_headers: Some(&response_headers),
            response_body: Some(&text),
            ..base_vars(ctx)
        };
        match expr.eval_bytes(&vars) {
            Ok(out) if out == body => BodyAction::Continue,
            Ok(out) => BodyAction::Replace(out),
            Err(e) => failed("response", &e),
        }
    }
}

sluice_sdk::export_policy!(Transform);

/// Whether a request may carry a body worth reading: a non-zero
/// `content-length`, a `transfer-encoding`, or, when the host shows neither,
/// any method but the bodiless ones. Empty bodies are skipped later anyway.
fn has_body(method: &str, headers: &Headers) -> bool {
    match header(headers, "content-length") {
        Some(n) => n.trim() != "0",
        None => {
            header(headers, "transfer-encoding").is_some()
                || !matches!(
                    method.to_ascii_uppercase().as_str(),
                    "GET" | "HEAD" | "OPTIONS" | "DELETE" | "TRACE"
                )
        }
    }
}

fn truncate(s: &str) -> &str {
    if s.len() <= MAX_REASON {
        return s;
    }
    let mut end = MAX_REASON;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The 500 for a failed body expression (see the crate doc).
fn failed(which: &str, reason: &str) -> BodyAction {
    let reason = truncate(reason);
    host::warn(&format!("{which} body transformation failed: {reason}"));
    host::metric_counter("transform_failures", 1);
    Respond::status(500)
        .message(format!("transformation failed: {reason}"))
        .error_type("api_error")
        .into()
}

/// Variables every expression sees, from the request context and attributes.
fn base_vars(ctx: &RequestContext) -> Vars<'_> {
    Vars {
        request_id: &ctx.request_id,
        method: &ctx.method,
        path: &ctx.path,
        claims: host::get_attr("auth.claims"),
        sub: host::get_attr("auth.sub"),
        route: &ctx.route,
        backend: &ctx.backend,
        ..Vars::default()
    }
}

/// Template lookups for one hook call.
struct Ctx<'a> {
    ctx: &'a RequestContext,
    /// The request headers when called on the request side; on the response
    /// side they come from attributes saved on the way in.
    request_headers: Option<&'a Headers>,
}

impl Lookup for Ctx<'_> {
    fn get(&self, var: &Var) -> Option<String> {
        match var {
            Var::RequestId => Some(self.ctx.request_id.clone()),
            Var::RequestPath => Some(self.ctx.path.clone()),
            Var::RequestMethod => Some(self.ctx.method.clone()),
            Var::RouteName => Some(self.ctx.route.clone()),
            Var::BackendName => Some(self.ctx.backend.clone()),
            Var::RequestHeader(h) => match self.request_headers {
                Some(headers) => header(headers, h).map(str::to_owned),
                None => host::get_attr(&format!("{ATTR_REQ_HEADER}{h}")),
            },
            Var::Claim(c) => host::get_attr(&format!("auth.claims.{c}")),
            Var::Sub => host::get_attr("auth.sub"),
        }
    }
}

/// A header value safe to send.
fn safe(name: &str, v: String) -> Option<String> {
    if v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        host::warn(&format!(
            "not setting header {name}: value contains CR/LF/NUL"
        ));
        None
    } else {
        Some(v)
    }
}

/// The header edits of one side: removals, then template and CEL sets/adds
/// (the host applies them in the order remove, set, add).
fn header_ops(side: &Side, lookup: &dyn Lookup, vars: &Vars<'_>) -> HeaderOps {
    let mut ops = HeaderOps::new();
    for name in &side.templates.remove {
        ops = ops.remove(name.clone());
    }
    let cel = |name: &str, e: &expr::Expression| match e.eval_string(vars) {
        Ok(v) => v.and_then(|v| safe(name, v)),
        Err(err) => {
            host::debug(&format!("header {name} not set: {}", truncate(&err)));
            None
        }
    };
    for (name, t) in &side.templates.set {
        if let Some(v) = t.render(lookup).and_then(|v| safe(name, v)) {
            ops = ops.set(name.clone(), v);
        }
    }
    for (name, e) in &side.cel.set {
        if let Some(v) = cel(name, e) {
            ops = ops.set(name.clone(), v);
        }
    }
    for (name, t) in &side.templates.add {
        if let Some(v) = t.render(lookup).and_then(|v| safe(name, v)) {
            ops = ops.add(name.clone(), v);
        }
    }
    for (name, e) in &side.cel.add {
        if let Some(v) = cel(name, e) {
            ops = ops.add(name.clone(), v);
        }
    }
    ops
}

#[cfg(test)]
mod tests;
