//! Test fixture: panics (traps) in on-request-headers unless the path is `/ok`.
//!
//! It declares only the request-headers hook and traps in every other one,
//! so a host that calls an undeclared hook fails loudly.
use serde::Deserialize;
use sluice_sdk::prelude::*;

#[derive(Deserialize)]
pub struct Config {}

pub struct Trap;

impl Policy for Trap {
    type Config = Config;
    fn new(_: Config) -> Result<Self, String> {
        Ok(Trap)
    }
    fn hooks(&self) -> Hooks {
        Hooks::REQUEST_HEADERS
    }
    fn on_request_headers(&self, ctx: &RequestContext, _h: &Headers) -> HeadersAction {
        if ctx.path != "/ok" {
            panic!("trap fixture: boom");
        }
        HeaderOps::new().set("x-trap", "survived").proceed()
    }
    fn on_request_body(&self, _: &RequestContext, _: &Headers, _: Vec<u8>) -> BodyAction {
        panic!("trap fixture: undeclared hook on-request-body called")
    }
    fn on_response_headers(
        &self,
        _: &RequestContext,
        _: u16,
        _: &Headers,
    ) -> ResponseHeadersAction {
        panic!("trap fixture: undeclared hook on-response-headers called")
    }
    fn on_response_body(&self, _: &RequestContext, _: u16, _: Vec<u8>) -> BodyAction {
        panic!("trap fixture: undeclared hook on-response-body called")
    }
    fn on_response_event(&self, _: &RequestContext, _: SseEvent) -> Vec<SseEvent> {
        panic!("trap fixture: undeclared hook on-response-event called")
    }
    fn on_response_end(&self, _: &RequestContext) -> Vec<SseEvent> {
        panic!("trap fixture: undeclared hook on-response-end called")
    }
    fn on_complete(&self, _: &RequestContext, _: &Completion) {
        panic!("trap fixture: undeclared hook on-complete called")
    }
}

sluice_sdk::export_policy!(Trap);
