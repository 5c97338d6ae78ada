//! `authorization`: agentgateway's CEL authorization policy, as a Sluice
//! policy. Requests are allowed or refused by rules over the request, the
//! verified JWT claims and the model the body asks for:
//!
//! ```yaml
//! policies:
//!   jwtAuth: {...}            # publishes the claims `jwt.*` reads
//!   authorization:
//!     rules:
//!     - allow: 'llm.requestModel.startsWith("claude-haiku")'
//!     - allow: 'jwt.team == "research"'
//!     - deny: 'llm.requestModel == "claude-opus-4-1"'
//! ```
//!
//! - The config is agentgateway's, key for key ([`config`]); what a rule
//!   reads is checked when the config loads ([`check`]).
//! - Semantics are agentgateway's (deny wins, every require must hold, an
//!   allow list refuses what it does not allow), except that a `deny` rule
//!   that fails to evaluate refuses ([`rule::decide`]).
//! - Rules that read no body are decided on the request headers. Rules that
//!   read `llm` or `llmRequest` make the policy ask for the body, which the
//!   host hands over decoded (`Content-Encoding` undone) and, on JSON kinds,
//!   checked as strict JSON; the decision is then taken on the body.
//! - A refusal is **403** in the client's provider error shape (Anthropic
//!   `permission_error`, OpenAI `permission_denied`) with agentgateway's
//!   message, "authorization failed"; nothing goes upstream. Which rule
//!   refused is logged (index and mode, never the request's values).
//! - `jwt` reads the `auth.claims` attribute, so the JWT policy must run
//!   first: a policy layer, or an earlier key in the same `policies`.

pub mod body;
pub mod check;
pub mod config;
pub mod rule;
pub mod vars;

use sluice_sdk::prelude::*;
use sluice_sdk::text::truncate;

use config::Config;
use rule::{decide, Verdict};
use vars::{Vars, CLAIMS_ATTR};

/// agentgateway's `ProxyError::AuthorizationFailed` text.
pub const REFUSAL: &str = "authorization failed";

pub struct Authorization {
    config: Config,
}

impl Policy for Authorization {
    /// Parsed by hand ([`config::parse`]) to name the exact offending key.
    type Config = serde_json::Value;

    fn validate(config: &serde_json::Value) -> Result<(), String> {
        config::parse(config).map(|_| ()).map_err(|e| e.to_string())
    }

    fn new(config: serde_json::Value) -> Result<Self, String> {
        let config = config::parse(&config).map_err(|e| e.to_string())?;
        Ok(Authorization { config })
    }

    fn hooks(&self) -> Hooks {
        if self.config.rules.is_empty() {
            return Hooks::empty();
        }
        let mut h = Hooks::REQUEST_HEADERS;
        if self.config.needs_body() {
            h |= Hooks::REQUEST_BODY;
        }
        h
    }

    /// Only the headers a rule names: `host` for `request.host`, all of
    /// them once a rule reads `request.headers` (any name may be indexed).
    fn reads_headers(&self) -> Option<Vec<String>> {
        let rules = &self.config.rules;
        if rules.iter().any(|r| r.uses.headers) {
            return None;
        }
        Some(if rules.iter().any(|r| r.uses.host) {
            vec!["host".to_owned()]
        } else {
            Vec::new()
        })
    }

    fn on_request_headers(&self, ctx: &RequestContext, headers: &Headers) -> HeadersAction {
        if self.config.needs_body() {
            // The headers are what the body hook is handed too.
            return HeaderOps::new().need_body();
        }
        let vars = Vars::new(ctx, headers, host::get_attr(CLAIMS_ATTR).as_deref());
        match self.verdict(&vars) {
            Verdict::Allowed => HeaderOps::new().proceed(),
            Verdict::Refused(why) => refuse(ctx, &why).into(),
        }
    }

    fn on_request_body(
        &self,
        ctx: &RequestContext,
        headers: &Headers,
        body: Vec<u8>,
    ) -> BodyAction {
        let mut read = body::read(&body);
        if !self.config.needs_llm_request() {
            read.request = None;
        }
        let vars =
            Vars::new(ctx, headers, host::get_attr(CLAIMS_ATTR).as_deref()).with_body(ctx, read);
        match self.verdict(&vars) {
            Verdict::Allowed => BodyAction::Continue,
            Verdict::Refused(why) => refuse(ctx, &why).into(),
        }
    }
}

impl Authorization {
    fn verdict(&self, vars: &Vars) -> Verdict {
        let cel = vars.context();
        decide(&self.config.rules, |r| r.eval(&cel))
    }
}

sluice_sdk::export_policy!(Authorization);

/// The 403, logged and counted; the host wraps the message in the
/// provider's error JSON and derives the error type from the status.
fn refuse(ctx: &RequestContext, why: &str) -> Respond {
    host::info(&format!(
        "refused {} {}: {why}",
        ctx.method,
        truncate(&ctx.path, 200)
    ));
    host::metric_counter("authorization_refusals", 1);
    Respond::status(403).message(REFUSAL)
}

#[cfg(test)]
mod tests;
