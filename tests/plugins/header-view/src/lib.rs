//! Test fixture: reports which headers its hooks are handed. Declares
//! `reads` with `read-headers` in `init` (absent: every header); sets
//! `x-seen` on the upstream request and `x-seen-response` on the response
//! to the names it saw, and removes `remove` from the request. `widen`:
//! also calls `read-headers` from the hook, which the host must ignore.
use serde::Deserialize;
use sluice_sdk::prelude::*;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Config {
    reads: Option<Vec<String>>,
    remove: Vec<String>,
    widen: bool,
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
        Hooks::REQUEST_HEADERS | Hooks::RESPONSE_HEADERS
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
