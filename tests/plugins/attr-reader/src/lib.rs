//! Test fixture: copies attribute `key` into request header `header`
//! (`<absent>` when unset), and the `order` attribute into response header
//! `order_header` (default `x-order`).
use serde::Deserialize;
use sluice_sdk::prelude::*;

#[derive(Deserialize)]
pub struct Config {
    key: String,
    header: String,
    #[serde(default = "default_order_header")]
    order_header: String,
}

fn default_order_header() -> String {
    "x-order".into()
}

pub struct Reader(Config);

impl Policy for Reader {
    type Config = Config;
    fn new(c: Config) -> Result<Self, String> {
        Ok(Reader(c))
    }
    fn hooks(&self) -> Hooks {
        Hooks::REQUEST_HEADERS | Hooks::RESPONSE_HEADERS
    }
    fn on_request_headers(&self, _ctx: &RequestContext, _h: &Headers) -> HeadersAction {
        let v = host::get_attr(&self.0.key).unwrap_or_else(|| "<absent>".into());
        HeaderOps::new().set(self.0.header.clone(), v).proceed()
    }
    fn on_response_headers(
        &self,
        _c: &RequestContext,
        _s: u16,
        _h: &Headers,
    ) -> ResponseHeadersAction {
        let order = host::get_attr("order").unwrap_or_default();
        HeaderOps::new()
            .set(self.0.order_header.clone(), order)
            .proceed_response()
    }
}

sluice_sdk::export_policy!(Reader);
