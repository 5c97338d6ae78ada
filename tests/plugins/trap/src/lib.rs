//! Test fixture: panics (traps) in on-request-headers unless the path is `/ok`.
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
}

sluice_sdk::export_policy!(Trap);
