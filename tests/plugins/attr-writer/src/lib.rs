//! Test fixture: sets attribute `key` to `value` (or to the request path when
//! `value` is absent) in on-request-headers, and records response-hook order
//! by appending its `tag` to the `order` attribute.
use serde::Deserialize;
use sluice_sdk::prelude::*;

#[derive(Deserialize)]
pub struct Config {
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    tag: String,
}

pub struct Writer(Config);

impl Policy for Writer {
    type Config = Config;
    fn new(c: Config) -> Result<Self, String> {
        Ok(Writer(c))
    }
    fn hooks(&self) -> Hooks {
        Hooks::REQUEST_HEADERS | Hooks::RESPONSE_HEADERS
    }
    fn on_request_headers(&self, ctx: &RequestContext, _h: &Headers) -> HeadersAction {
        let value = self.0.value.clone().unwrap_or_else(|| ctx.path.clone());
        host::set_attr(&self.0.key, &value);
        HeaderOps::new().proceed()
    }
    fn on_response_headers(
        &self,
        _c: &RequestContext,
        _s: u16,
        _h: &Headers,
    ) -> ResponseHeadersAction {
        let order = host::get_attr("order").unwrap_or_default();
        host::set_attr("order", &format!("{order}{}", self.0.tag));
        HeaderOps::new().proceed_response()
    }
}

sluice_sdk::export_policy!(Writer);
