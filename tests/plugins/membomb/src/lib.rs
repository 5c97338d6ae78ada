//! Test fixture: allocates (and touches) memory until the cap traps it,
//! unless the path is `/ok`.
use serde::Deserialize;
use sluice_sdk::prelude::*;

#[derive(Deserialize)]
pub struct Config {}

pub struct Bomb;

impl Policy for Bomb {
    type Config = Config;
    fn new(_: Config) -> Result<Self, String> {
        Ok(Bomb)
    }
    fn hooks(&self) -> Hooks {
        Hooks::REQUEST_HEADERS
    }
    fn on_request_headers(&self, ctx: &RequestContext, _h: &Headers) -> HeadersAction {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        while std::hint::black_box(ctx.path.as_str()) != "/ok" {
            hoard.push(vec![1u8; 1 << 20]);
            std::hint::black_box(&hoard);
        }
        HeaderOps::new()
            .set("x-bomb", hoard.len().to_string())
            .proceed()
    }
}

sluice_sdk::export_policy!(Bomb);
