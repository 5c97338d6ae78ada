//! Test fixture: reports which headers its hooks are handed. Declares
//! `reads` with `read-headers` in `init` (absent: every header); sets
//! `x-seen` on the upstream request and `x-seen-response` on the response
//! to the names it saw, and removes `remove` from the request. `widen`:
//! also calls `read-headers` from the hook, which the host must ignore.
//! `body`: also declares `request-body` but never asks for it (`continue`
//! at the headers); if the host calls it anyway, it answers 418.
use serde::Deserialize;
use sluice_sdk::prelude::*;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Config {
    reads: Option<Vec<String>>,
    remove: Vec<String>,
    widen: bool,
    body: bool,
}

pub struct View(Config);

fn names(h: &Headers) -> String {
    let mut n: Vec<&str> = h.iter().map(|(k, _)| k.as_str()).collect();
    n.sort_unstable();
    n.join(",")
}

impl Policy for View {
    type Config = Config;
    fn new(c: Config) -> Result<Self, String> {
        Ok(View(c))
    }
    fn hooks(&self) -> Hooks {
        let h = Hooks::REQUEST_HEADERS | Hooks::RESPONSE_HEADERS;
        if self.0.body {
            h | Hooks::REQUEST_BODY
        } else {
            h
        }
    }
    fn reads_headers(&self) -> Option<Vec<String>> {
        self.0.reads.clone()
    }
    fn on_request_headers(&self, _ctx: &RequestContext, h: &Headers) -> HeadersAction {
        if self.0.widen {
            sluice_sdk::host::read_headers(&["x-secret".to_owned()]);
        }
        let mut ops = HeaderOps::new().set("x-seen", names(h));
        for r in &self.0.remove {
            ops = ops.remove(r.clone());
        }
        ops.proceed()
    }
    fn on_request_body(&self, _c: &RequestContext, _h: &Headers, _b: Vec<u8>) -> BodyAction {
        Respond::status(418)
            .message("on-request-body called without need-body")
            .into()
    }
    fn on_response_headers(
        &self,
        _c: &RequestContext,
        _s: u16,
        h: &Headers,
    ) -> ResponseHeadersAction {
        HeaderOps::new()
            .set("x-seen-response", names(h))
            .proceed_response()
    }
}

sluice_sdk::export_policy!(View);
