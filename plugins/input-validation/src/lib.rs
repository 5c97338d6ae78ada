//! `input-validation`: body size limits and prompt block patterns.
//!
//! ```yaml
//! policies:
//!   inputValidation:                 # the guide's form
//!     maxRequestBodySize: 1MB        # sluice_sdk::units: 1MB = 1,000,000 bytes, 1MiB = 1,048,576
//!     blockPatterns:                 # case-insensitive phrases in the prompt text
//!     - "ignore previous instructions"
//!     - regex: "disregard\\s+all"    # or a regex (case-insensitive)
//!     blockRegex: ["jail ?break"]    # more regexes
//!     status: 400                    # refusal status (also `errorCode`)
//!   ai:
//!     promptGuard:                   # agentgateway's form (request side only)
//!       request:
//!       - regex:
//!           action: mask             # or reject
//!           rules:
//!           - builtin: email         # email, phone, ssn, creditCard, caSin
//!           - pattern: "key-[0-9]+"
//!         rejection: {status: 403, body: "..."}
//! ```
//!
//! Size: a `Content-Length` over the limit is refused with 413 at the request
//! headers, without reading the body; without one, the body is read and its
//! length checked. Patterns are matched against every string the model
//! reads (`sluice_sdk::ai::walk`: tool definitions, tool inputs and
//! results, documents, system prompts, Responses items of every type),
//! decoded and normalised (`sluice_sdk::ai::normalize`: NFKC, case folded,
//! format characters removed, whitespace collapsed), never the raw JSON, so
//! escapes (`\u0069`), fullwidth letters and zero-width characters cannot
//! hide a phrase. A body on an AI route that is not valid JSON is refused
//! (400): there is no raw-text fallback for what claims to be JSON. Only on
//! non-AI routes is a non-JSON body matched as (normalised) text.
//! Refusals name the rule, never the matched text.

pub mod rules;

use serde_json::Value;
use sluice_sdk::ai;
use sluice_sdk::prelude::*;

use rules::{Action, Prepared, Rejection, Rule, Settings};

pub struct InputValidation {
    settings: Settings,
}

fn too_large(ctx: &RequestContext, limit: u64, got: u64) -> Respond {
    let error_type = match ctx.provider {
        Provider::Anthropic => "request_too_large",
        _ => "invalid_request_error",
    };
    Respond::status(413)
        .message(format!(
            "request body is {got} bytes, over the limit of {limit} bytes"
        ))
        .error_type(error_type)
}

fn reject(rule: &Rule) -> Respond {
    host::metric_counter("input_blocked", 1);
    host::info(&format!("blocked by {}", rule.label));
    let r: &Rejection = &rule.rejection;
    let mut resp = Respond::status(r.status)
        .message(
            r.message
                .clone()
                .unwrap_or_else(|| format!("blocked by {}", rule.label)),
        )
        .error_type("invalid_request_error");
    if let Some(body) = &r.body {
        resp = resp
            .body(body.clone().into_bytes())
            .header("content-type", "application/json");
    }
    for (k, v) in &r.headers {
        resp = resp.header(k.clone(), v.clone());
    }
    resp
}

impl InputValidation {
    /// Run the rules in config order; masks rewrite the texts later rules see.
    fn check_json(&self, doc: &mut Value) -> Result<bool, Respond> {
        let mut texts = ai::texts(doc);
        let mut prepared = Prepared::new(&texts);
        let mut changed = false;
        for rule in &self.settings.rules {
            match rule.action {
                Action::Reject => {
                    if rule.matches(&texts, &prepared) {
                        return Err(reject(rule));
                    }
                }
                Action::Mask => {
                    let mut hit = false;
                    ai::for_each_text_mut(doc, &mut |s| {
                        if let Some(masked) = rule.mask(s) {
                            *s = masked;
                            hit = true;
                        }
                    });
                    if hit {
                        host::metric_counter("input_masked", 1);
                        host::debug(&format!("masked by {}", rule.label));
                        changed = true;
                        texts = ai::texts(doc);
                        prepared = Prepared::new(&texts);
                    }
                }
            }
        }
        Ok(changed)
    }
}

impl Policy for InputValidation {
    type Config = Value;

    fn validate(config: &Value) -> Result<(), String> {
        rules::parse(config).map(|_| ())
    }

    fn new(config: Value) -> Result<Self, String> {
        Ok(InputValidation {
            settings: rules::parse(&config)?,
        })
    }

    fn hooks(&self) -> Hooks {
        if self.settings.max_body.is_none() && self.settings.rules.is_empty() {
            // e.g. a promptGuard with only a `response` section.
            return Hooks::empty();
        }
        Hooks::REQUEST_HEADERS | Hooks::REQUEST_BODY
    }

    /// The size check reads `content-length`; the rules read the body.
    fn reads_headers(&self) -> Option<Vec<String>> {
        Some(vec!["content-length".into()])
    }

    fn on_request_headers(&self, ctx: &RequestContext, headers: &Headers) -> HeadersAction {
        let length = header(headers, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
        if let (Some(max), Some(len)) = (self.settings.max_body, length) {
            if len > max {
                return too_large(ctx, max, len).into();
            }
        }
        let size_unknown = self.settings.max_body.is_some() && length.is_none();
        let need_rules = !self.settings.rules.is_empty() && length != Some(0);
        if size_unknown || need_rules {
            HeaderOps::new().need_body()
        } else {
            HeaderOps::new().proceed()
        }
    }

    fn on_request_body(
        &self,
        ctx: &RequestContext,
        _headers: &Headers,
        body: Vec<u8>,
    ) -> BodyAction {
        if let Some(max) = self.settings.max_body {
            if body.len() as u64 > max {
                return too_large(ctx, max, body.len() as u64).into();
            }
        }
        if self.settings.rules.is_empty() || body.is_empty() {
            return BodyAction::Continue;
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(mut doc) => match self.check_json(&mut doc) {
                Err(r) => r.into(),
                Ok(true) => BodyAction::Replace(serde_json::to_vec(&doc).unwrap_or(body)),
                Ok(false) => BodyAction::Continue,
            },
            Err(_) if ai::kind_carries_json(ctx.kind) => {
                // What the provider would parse differently is refused, never
                // guessed at (the host already refuses most of it).
                host::info("refused a request body that is not valid JSON");
                Respond::status(400)
                    .message("request body is not valid JSON")
                    .error_type("invalid_request_error")
                    .into()
            }
            Err(_) => {
                // Not JSON on a non-AI route: match the (normalised) text as
                // is; masking needs structure.
                let text = String::from_utf8_lossy(&body);
                let texts = [text.as_ref()];
                let prepared = Prepared::new(&texts);
                for rule in &self.settings.rules {
                    if rule.action == Action::Reject && rule.matches(&texts, &prepared) {
                        return reject(rule).into();
                    }
                }
                BodyAction::Continue
            }
        }
    }
}

sluice_sdk::export_policy!(InputValidation);

#[cfg(test)]
mod tests;
