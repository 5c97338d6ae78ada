//! Test fixture: on every request runs the configured state calls (counter
//! increments, KV reads, KV writes, in that order) and reports the answers in
//! response headers `x-<tag>-incr` (totals, comma-separated) and
//! `x-<tag>-get-<i>` (value, or `<none>`). Used to try reaching another
//! plugin's keys.
use std::time::Duration;

use serde::Deserialize;
use sluice_sdk::prelude::*;

#[derive(Deserialize)]
pub struct Incr {
    key: String,
    delta: i64,
    #[serde(default = "hour")]
    window_ms: u64,
}

fn hour() -> u64 {
    3_600_000
}

#[derive(Deserialize)]
pub struct Config {
    tag: String,
    #[serde(default)]
    incr: Vec<Incr>,
    #[serde(default)]
    set: Vec<(String, String)>,
    #[serde(default)]
    get: Vec<String>,
}

pub struct Probe(Config);

impl Probe {
    fn attr(&self, what: &str) -> String {
        format!("probe.{}.{what}", self.0.tag)
    }
}

impl Policy for Probe {
    type Config = Config;
    fn new(c: Config) -> Result<Self, String> {
        Ok(Probe(c))
    }
    fn hooks(&self) -> Hooks {
        Hooks::REQUEST_HEADERS | Hooks::RESPONSE_HEADERS
    }
    fn on_request_headers(&self, _ctx: &RequestContext, _h: &Headers) -> HeadersAction {
        let totals: Vec<String> = self
            .0
            .incr
            .iter()
            .map(|i| {
                host::incr_counter(&i.key, i.delta, Duration::from_millis(i.window_ms))
                    .total
                    .to_string()
            })
            .collect();
        host::set_attr(&self.attr("incr"), &totals.join(","));
        for (i, k) in self.0.get.iter().enumerate() {
            let v = host::kv_get(k)
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or_else(|| "<none>".into());
            host::set_attr(&self.attr(&format!("get-{i}")), &v);
        }
        for (k, v) in &self.0.set {
            host::kv_set(k, v.as_bytes(), Duration::ZERO);
        }
        HeaderOps::new().proceed()
    }
    fn on_response_headers(
        &self,
        _c: &RequestContext,
        _s: u16,
        _h: &Headers,
    ) -> ResponseHeadersAction {
        let tag = &self.0.tag;
        let mut ops = HeaderOps::new().set(
            format!("x-{tag}-incr"),
            host::get_attr(&self.attr("incr")).unwrap_or_default(),
        );
        for i in 0..self.0.get.len() {
            ops = ops.set(
                format!("x-{tag}-get-{i}"),
                host::get_attr(&self.attr(&format!("get-{i}"))).unwrap_or_default(),
            );
        }
        ops.proceed_response()
    }
}

sluice_sdk::export_policy!(Probe);
