//! Test fixture: sets/removes request and response headers from config.
use serde::Deserialize;
use sluice_sdk::prelude::*;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Ops {
    set: Vec<(String, String)>,
    add: Vec<(String, String)>,
    remove: Vec<String>,
}

#[derive(Deserialize)]
pub struct Config {
    #[serde(default)]
    request: Ops,
    #[serde(default)]
    response: Ops,
}

pub struct Rewrite(Config);

fn ops(o: &Ops) -> HeaderOps {
    let mut h = HeaderOps::new();
    for (k, v) in &o.set {
        h = h.set(k.clone(), v.clone());
    }
    for (k, v) in &o.add {
        h = h.add(k.clone(), v.clone());
    }
    for k in &o.remove {
        h = h.remove(k.clone());
    }
    h
}

impl Policy for Rewrite {
    type Config = Config;
    fn new(c: Config) -> Result<Self, String> {
        Ok(Rewrite(c))
    }
    fn hooks(&self) -> Hooks {
        Hooks::REQUEST_HEADERS | Hooks::RESPONSE_HEADERS
    }
    fn on_request_headers(&self, _ctx: &RequestContext, _h: &Headers) -> HeadersAction {
        ops(&self.0.request).proceed()
    }
    fn on_response_headers(
        &self,
        _c: &RequestContext,
        _s: u16,
        _h: &Headers,
    ) -> ResponseHeadersAction {
        ops(&self.0.response).proceed_response()
    }
}

sluice_sdk::export_policy!(Rewrite);
