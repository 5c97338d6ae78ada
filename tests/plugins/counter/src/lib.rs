//! Test fixture: increments shared counter `key` (window 60 s) on every
//! request and puts the total in response header `x-count`; also bumps a
//! plugin metric and round-trips the KV store.
use std::time::Duration;

use serde::Deserialize;
use sluice_sdk::prelude::*;

#[derive(Deserialize)]
pub struct Config {
    key: String,
}

pub struct Counter(Config);

impl Policy for Counter {
    type Config = Config;
    fn new(c: Config) -> Result<Self, String> {
        Ok(Counter(c))
    }
    fn hooks(&self) -> Hooks {
        Hooks::REQUEST_HEADERS | Hooks::RESPONSE_HEADERS
    }
    fn on_request_headers(&self, _ctx: &RequestContext, _h: &Headers) -> HeadersAction {
        let c = host::incr_counter(&self.0.key, 1, Duration::from_secs(60));
        host::set_attr("count", &c.total.to_string());
        host::metric_counter("requests", 1);
        host::kv_set("last", c.total.to_string().as_bytes(), Duration::ZERO);
        HeaderOps::new().proceed()
    }
    fn on_response_headers(
        &self,
        _c: &RequestContext,
        _s: u16,
        _h: &Headers,
    ) -> ResponseHeadersAction {
        let total = host::get_attr("count").unwrap_or_default();
        let last = host::kv_get("last").map(|v| String::from_utf8_lossy(&v).into_owned());
        HeaderOps::new()
            .set("x-count", total)
            .set("x-last", last.unwrap_or_default())
            .proceed_response()
    }
}

sluice_sdk::export_policy!(Counter);
