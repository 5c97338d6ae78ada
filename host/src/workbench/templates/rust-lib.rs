//! `{{name}}`: a Sluice policy. It sets `x-{{name}}: <value>` on every request
//! that goes upstream (config: `value`, default `{{name}}`).
//!
//! The bindings come from `wit/policy.wit`, the gateway's contract. Build with
//! `./build.sh`, test with `./test.sh` (see README.md).

use std::cell::RefCell;

wit_bindgen::generate!({ world: "policy-plugin", path: "wit" });

use exports::sluice::policy::policy::{Guest, InitResult};
use sluice::policy::host;
use sluice::policy::types::{
    BodyAction, Completion, HeaderOps, HeadersAction, Hooks, RequestContext,
    ResponseHeadersAction, SseEvent,
};

const HEADER: &str = "x-{{name}}";

thread_local! {
    /// This instance's config (set by `init`; instances are reused, requests are not).
    static VALUE: RefCell<String> = RefCell::new(String::new());
}

/// The config, or a message naming the bad key.
fn parse(config: &str) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_str(config).map_err(|e| format!("config is not JSON: {e}"))?;
    let obj = v.as_object().ok_or("config: expected a map")?;
    if let Some(k) = obj.keys().find(|k| *k != "value") {
        return Err(format!("unknown key `{k}` (expected: value)"));
    }
    match obj.get("value") {
        None => Ok("{{name}}".into()),
        Some(serde_json::Value::String(s)) if !s.is_empty() && !s.contains(['\r', '\n']) => {
            Ok(s.clone())
        }
        Some(_) => Err("value: expected a non-empty, single-line string".into()),
    }
}

fn no_ops() -> HeaderOps {
    HeaderOps {
        set: vec![],
        add: vec![],
        remove: vec![],
    }
}

struct Plugin;

impl Guest for Plugin {
    fn validate(config: String) -> Result<(), String> {
        parse(&config).map(|_| ())
    }

    fn init(config: String) -> Result<InitResult, String> {
        let value = parse(&config)?;
        VALUE.with(|v| *v.borrow_mut() = value);
        Ok(InitResult {
            hooks: Hooks::REQUEST_HEADERS,
            fetch_hosts: vec![],
        })
    }

    fn on_request_headers(_ctx: RequestContext, _headers: Vec<(String, String)>) -> HeadersAction {
        let value = VALUE.with(|v| v.borrow().clone());
        host::log(host::Level::Debug, &format!("setting {HEADER}: {value}"));
        HeadersAction::Continue(HeaderOps {
            set: vec![(HEADER.into(), value)],
            ..no_ops()
        })
    }

    fn on_request_body(
        _ctx: RequestContext,
        _headers: Vec<(String, String)>,
        _body: Vec<u8>,
    ) -> BodyAction {
        BodyAction::Continue
    }

    fn on_response_headers(
        _ctx: RequestContext,
        _status: u16,
        _headers: Vec<(String, String)>,
    ) -> ResponseHeadersAction {
        ResponseHeadersAction::Continue(no_ops())
    }

    fn on_response_body(_ctx: RequestContext, _status: u16, _body: Vec<u8>) -> BodyAction {
        BodyAction::Continue
    }

    fn on_response_event(_ctx: RequestContext, event: SseEvent) -> Vec<SseEvent> {
        vec![event]
    }

    fn on_response_end(_ctx: RequestContext) -> Vec<SseEvent> {
        vec![]
    }

    fn on_complete(_ctx: RequestContext, _summary: Completion) {}
}

export!(Plugin);
