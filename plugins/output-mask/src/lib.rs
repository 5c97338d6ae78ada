//! `output-mask`: masks PII in AI responses before they reach the client, and
//! optionally in prompts before they leave.
//!
//! Attached by the guide's `outputFilter` (`maskPatterns: [email, phone, ssn]`)
//! and by agentgateway's `ai.promptGuard` regex guards (see [`config`]).
//! Masks read `<EMAIL>`, `<PHONE>`, `<SSN>`, `<CREDIT_CARD>`, `<IP_ADDRESS>`.
//!
//! - JSON responses (`on_response_body`): every text the client receives,
//!   through the SDK walker ([`json`]): answer text, thinking, tool-use
//!   input values, tool-call arguments, refusals, Responses output items and
//!   reasoning summaries. Ids, signatures and encrypted reasoning stay the
//!   same values; error or non-JSON bodies pass unchanged.
//! - SSE streams (`on_response_event`/`on_response_end`): text, thinking,
//!   refusal and tool-argument deltas of all three formats are masked as
//!   they go, holding back only a tail that could still grow into a match,
//!   so a secret split across deltas is still caught ([`masker`],
//!   [`stream`]); streamed tool-argument JSON is masked inside its strings
//!   without breaking its escapes ([`jsonstr`]).
//! - Requests (`maskRequest: true`, or a promptGuard `request` mask guard):
//!   prompt texts are masked before the body goes upstream.

pub mod config;
pub mod json;
pub mod jsonstr;
pub mod masker;
pub mod stream;

use sluice_sdk::prelude::*;

use config::{Config, Plan, Specs};

pub struct OutputMask {
    plan: Plan,
}

impl Policy for OutputMask {
    type Config = Config;

    fn validate(config: &Config) -> Result<(), String> {
        Specs::parse(config)?.compile().map(|_| ())
    }

    fn new(config: Config) -> Result<Self, String> {
        Ok(OutputMask {
            plan: Specs::parse(&config)?.compile()?,
        })
    }

    fn hooks(&self) -> Hooks {
        let mut hooks = Hooks::empty();
        if self.plan.response.is_some() {
            hooks |= Hooks::RESPONSE_BODY | Hooks::RESPONSE_EVENTS;
        }
        if self.plan.request.is_some() {
            hooks |= Hooks::REQUEST_HEADERS | Hooks::REQUEST_BODY;
        }
        hooks
    }

    /// Masking reads bodies and events, never a header.
    fn reads_headers(&self) -> Option<Vec<String>> {
        Some(Vec::new())
    }

    fn on_request_headers(&self, ctx: &RequestContext, _headers: &Headers) -> HeadersAction {
        // Only requests that carry a prompt have a body worth reading.
        if self.plan.request.is_some() && matches!(ctx.method.as_str(), "POST" | "PUT" | "PATCH") {
            HeaderOps::new().need_body()
        } else {
            HeaderOps::new().proceed()
        }
    }

    fn on_request_body(
        &self,
        _ctx: &RequestContext,
        _headers: &Headers,
        body: Vec<u8>,
    ) -> BodyAction {
        let Some(m) = &self.plan.request else {
            return BodyAction::Continue;
        };
        match json::rewrite(&body, m) {
            Some(new) => {
                host::metric_counter("output_mask_requests_masked", 1);
                BodyAction::Replace(new)
            }
            None => BodyAction::Continue,
        }
    }

    fn on_response_body(&self, _ctx: &RequestContext, status: u16, body: Vec<u8>) -> BodyAction {
        if !(200..300).contains(&status) {
            return BodyAction::Continue;
        }
        if let Some((r, rejection)) = &self.plan.reject {
            if json::any_text(&body, r) {
                host::metric_counter("output_mask_responses_rejected", 1);
                let mut resp = Respond::status(rejection.status)
                    .message("The response was rejected due to inappropriate content")
                    .error_type("permission_error");
                for (k, v) in &rejection.headers {
                    resp = resp.header(k.clone(), v.clone());
                }
                if let Some(b) = &rejection.body {
                    resp = resp.body(b.clone().into_bytes());
                }
                return resp.into();
            }
        }
        let Some(m) = &self.plan.response else {
            return BodyAction::Continue;
        };
        match json::rewrite(&body, m) {
            Some(new) => {
                host::metric_counter("output_mask_responses_masked", 1);
                BodyAction::Replace(new)
            }
            None => BodyAction::Continue,
        }
    }

    fn on_response_event(&self, _ctx: &RequestContext, event: SseEvent) -> Vec<SseEvent> {
        match &self.plan.response {
            Some(m) => stream::on_event(m, event),
            None => vec![event],
        }
    }

    fn on_response_end(&self, _ctx: &RequestContext) -> Vec<SseEvent> {
        match &self.plan.response {
            Some(m) => stream::on_end(m),
            None => Vec::new(),
        }
    }
}

sluice_sdk::export_policy!(OutputMask);

#[cfg(test)]
mod tests;
