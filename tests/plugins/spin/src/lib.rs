//! Test fixture: loops forever in on-request-headers unless the path is `/ok`.
//!
//! With `hold: <url>` in its config, a request for `/hold` instead blocks in
//! one `host::fetch` of that URL (the host grants the URL's `host:port`), so
//! the instance stays busy exactly until the test's server answers: a test
//! holds the instance, and knows it is held, without timing anything. The
//! answer's status is reported upstream as `x-held`.
use serde::Deserialize;
use sluice_sdk::prelude::*;
use std::time::Duration;

#[derive(Deserialize)]
pub struct Config {
    #[serde(default)]
    hold: Option<String>,
}

pub struct Spin {
    hold: Option<String>,
}

impl Policy for Spin {
    type Config = Config;
    fn new(c: Config) -> Result<Self, String> {
        Ok(Spin { hold: c.hold })
    }
    fn hooks(&self) -> Hooks {
        Hooks::REQUEST_HEADERS
    }
    fn fetch_hosts(&self) -> Vec<String> {
        self.hold
            .as_deref()
            .and_then(|u| u.split_once("://"))
            .map(|(_, rest)| rest.split('/').next().unwrap_or(rest).to_string())
            .into_iter()
            .collect()
    }
    fn on_request_headers(&self, ctx: &RequestContext, _h: &Headers) -> HeadersAction {
        if let (Some(url), "/hold") = (&self.hold, ctx.path.as_str()) {
            let held = match host::fetch(url, Duration::ZERO) {
                Ok(r) => r.status.to_string(),
                Err(e) => format!("error: {e}"),
            };
            return HeaderOps::new()
                .set("x-spin", "held")
                .set("x-held", held)
                .proceed();
        }
        let mut n: u64 = 0;
        while std::hint::black_box(ctx.path.as_str()) != "/ok" {
            n = std::hint::black_box(n.wrapping_add(1));
        }
        HeaderOps::new().set("x-spin", n.to_string()).proceed()
    }
}

sluice_sdk::export_policy!(Spin);
