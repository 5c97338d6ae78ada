//! Test fixture: loops forever in on-request-headers unless the path is `/ok`.
use serde::Deserialize;
use sluice_sdk::prelude::*;

#[derive(Deserialize)]
pub struct Config {}

pub struct Spin;

impl Policy for Spin {
    type Config = Config;
    fn new(_: Config) -> Result<Self, String> {
        Ok(Spin)
    }
    fn hooks(&self) -> Hooks {
        Hooks::REQUEST_HEADERS
    }
    fn on_request_headers(&self, ctx: &RequestContext, _h: &Headers) -> HeadersAction {
        let mut n: u64 = 0;
        while std::hint::black_box(ctx.path.as_str()) != "/ok" {
            n = std::hint::black_box(n.wrapping_add(1));
        }
        HeaderOps::new().set("x-spin", n.to_string()).proceed()
    }
}

sluice_sdk::export_policy!(Spin);
