//! Test fixture: a policy that builds its fetch URL from request data, the
//! case the fetch guard must still hold against.
//!
//! Config `{hosts: [...]}` is what it asks for in `init`'s `fetch-hosts`.
//! On each request it fetches the URL in the `x-fetch` header (if any) and
//! tells the upstream the outcome in `x-fetched`: the status, or
//! `error: <reason>`.
use serde::Deserialize;
use sluice_sdk::prelude::*;
use std::time::Duration;

#[derive(Deserialize)]
pub struct Config {
    #[serde(default)]
    hosts: Vec<String>,
}

pub struct FetchProbe {
    hosts: Vec<String>,
}

impl Policy for FetchProbe {
    type Config = Config;
    fn new(c: Config) -> Result<Self, String> {
        Ok(FetchProbe { hosts: c.hosts })
    }
    fn hooks(&self) -> Hooks {
        Hooks::REQUEST_HEADERS
    }
    fn fetch_hosts(&self) -> Vec<String> {
        self.hosts.clone()
    }
    fn on_request_headers(&self, _ctx: &RequestContext, h: &Headers) -> HeadersAction {
        let Some(url) = h
            .iter()
            .find(|(k, _)| k == "x-fetch")
            .map(|(_, v)| v.clone())
        else {
            return HeaderOps::new().proceed();
        };
        let outcome = match host::fetch(&url, Duration::ZERO) {
            Ok(r) => r.status.to_string(),
            Err(e) => format!("error: {e}"),
        };
        HeaderOps::new()
            .remove("x-fetch")
            .set("x-fetched", outcome)
            .proceed()
    }
}

sluice_sdk::export_policy!(FetchProbe);
