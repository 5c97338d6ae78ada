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
//! See [`config`] for every accepted form, the template-vs-CEL rule and
//! `onMissing`, [`sluice_sdk::template`] for templates, and [`json`] for how
//! `json`/`toJson`/`filterKeys` keep key order.
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
//! - The set rule ([`sluice_sdk::header_set`]): a header this policy `set`s
//!   never keeps the value the client (or, on responses, the upstream)
//!   sent. When the value cannot be computed (a template variable missing
//!   or empty, a CEL expression that fails or yields `null`, a value with
//!   CR/LF, other control or non-ASCII characters) the header is removed
//!   (logged at debug), and an `add` adds nothing; with `onMissing: reject`
//!   the request is refused with 403 (a response is replaced by a 502).
//!   `request.headers["x"]` on a request without `x` is the common case.
//!   Header expressions cannot see bodies (headers are edited before the
//!   body is read).
//! - Response bodies are transformed for non-streaming responses only.

pub mod config;
pub mod expr;
pub mod json;

use sluice_sdk::header_set::{NoValue, Unset};
use sluice_sdk::prelude::*;
use sluice_sdk::template::{claim, value_text, Lookup, Var};

use config::{Config, Edit, Side};
use expr::Vars;

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
            .flat_map(|e| e.value.headers())
            .map(str::to_owned)
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
                .map(|e| &e.value)
                .chain(&side.body)
                .any(|e| e.source().contains("headers") || e.source().contains('['))
        });
        if open_ended {
            return None;
        }
        let mut names = vec!["content-length".to_owned(), "transfer-encoding".to_owned()];
        for side in sides {
            for e in side.templates.set.iter().chain(&side.templates.add) {
                names.extend(e.value.headers().map(str::to_owned));
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
            match header_ops(side, &lookup, &vars) {
                Ok(ops) => ops,
                Err(unset) => return refused(&unset).refuse_request().into(),
            }
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
        match header_ops(side, &lookup, &vars) {
            Ok(ops) => ops.proceed_response(),
            Err(unset) => refused(&unset).refuse_response().into(),
        }
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
    sluice_sdk::text::truncate(s, MAX_REASON)
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
            Var::Claim(c) => host::get_attr(&format!("auth.claims.{c}")).or_else(|| {
                // A nested claim (`org.id`): jwt-auth keeps per-claim
                // attributes for top-level names only.
                let all = host::get_attr("auth.claims").filter(|_| c.contains('.'))?;
                let all = serde_json::from_str::<serde_json::Value>(&all).ok()?;
                claim(all.as_object()?, c).map(value_text)
            }),
            Var::Claims => host::get_attr("auth.claims"),
            Var::Sub => host::get_attr("auth.sub"),
            Var::Iss => host::get_attr("auth.iss"),
            Var::ApiKey(n) => host::get_attr(&format!("apiKey.{n}")),
        }
    }
}

/// Log and count a refusal under `onMissing: reject` (never the value).
fn refused(unset: &Unset) -> &Unset {
    host::warn(&format!("refusing: {}", truncate(&unset.to_string())));
    host::metric_counter("transform_header_refusals", 1);
    unset
}

/// The value of one CEL edit: `null` is missing, a failure is [`NoValue::Failed`].
fn cel_value(e: &expr::Expression, vars: &Vars<'_>) -> Result<String, NoValue> {
    match e.eval_string(vars) {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(NoValue::Missing(truncate(e.source()).to_owned())),
        Err(err) => Err(NoValue::Failed(truncate(&err).to_owned())),
    }
}

/// Apply one edit through the SDK's set rule, logging a value that could
/// not be computed (the reason, never the value).
fn apply<V>(
    ops: HeaderOps,
    set: bool,
    edit: &Edit<V>,
    value: Result<String, NoValue>,
) -> Result<HeaderOps, Unset> {
    if let Err(why) = &value {
        let what = if set { "removed" } else { "not added" };
        host::debug(&format!("header {} {what}: {why}", edit.name));
    }
    if set {
        ops.set_value(edit.name.clone(), value, edit.on_missing)
    } else {
        ops.add_value(edit.name.clone(), value, edit.on_missing)
    }
}

/// The header edits of one side: removals, then template and CEL sets/adds
/// (the host applies them in the order remove, set, add). A `set` whose
/// value cannot be computed removes the header; under `onMissing: reject`
/// the first such edit is returned instead.
fn header_ops(side: &Side, lookup: &dyn Lookup, vars: &Vars<'_>) -> Result<HeaderOps, Unset> {
    let mut ops = HeaderOps::new();
    for name in &side.templates.remove {
        ops = ops.remove(name.clone());
    }
    for e in &side.templates.set {
        ops = apply(ops, true, e, e.value.render(lookup))?;
    }
    for e in &side.cel.set {
        ops = apply(ops, true, e, cel_value(&e.value, vars))?;
    }
    for e in &side.templates.add {
        ops = apply(ops, false, e, e.value.render(lookup))?;
    }
    for e in &side.cel.add {
        ops = apply(ops, false, e, cel_value(&e.value, vars))?;
    }
    Ok(ops)
}

#[cfg(test)]
mod tests;
