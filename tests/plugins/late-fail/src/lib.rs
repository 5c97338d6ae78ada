//! Test fixture: fails in one response-side hook, chosen by config, so tests
//! can see what a client gets when a policy breaks after the response headers
//! went out.
//!
//! Config: `{hook: event|end|body|complete, after: N, spin: bool}`.
//! - `event`: passes the first `after` SSE events (default 1), then fails on the next;
//! - `end`: passes every event, fails in `on-response-end`;
//! - `body`: fails in `on-response-body` (a non-streaming response);
//! - `complete`: fails in `on-complete` (the logging phase).
//!
//! Failing is a panic (a trap), or with `spin: true` an endless loop (the
//! host's CPU deadline ends it).
use serde::Deserialize;
use sluice_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    hook: String,
    #[serde(default = "one")]
    after: u64,
    #[serde(default)]
    spin: bool,
}

fn one() -> u64 {
    1
}

pub struct LateFail(Config);

impl LateFail {
    fn fail(&self, hook: &str) -> ! {
        if self.0.spin {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        panic!("late-fail fixture: boom in {hook}");
    }
}

impl Policy for LateFail {
    type Config = Config;
    fn validate(c: &Config) -> Result<(), String> {
        match c.hook.as_str() {
            "event" | "end" | "body" | "complete" => Ok(()),
            other => Err(format!(
                "hook must be event, end, body or complete, got {other}"
            )),
        }
    }
    fn new(c: Config) -> Result<Self, String> {
        Ok(LateFail(c))
    }
    fn hooks(&self) -> Hooks {
        match self.0.hook.as_str() {
            "event" | "end" => Hooks::RESPONSE_EVENTS,
            "body" => Hooks::RESPONSE_BODY,
            _ => Hooks::COMPLETE,
        }
    }
    fn on_response_event(&self, _ctx: &RequestContext, ev: SseEvent) -> Vec<SseEvent> {
        if self.0.hook == "event" {
            let seen: u64 = host::get_attr("late-fail.seen")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if seen >= self.0.after {
                self.fail("on-response-event");
            }
            host::set_attr("late-fail.seen", &(seen + 1).to_string());
        }
        vec![ev]
    }
    fn on_response_end(&self, _ctx: &RequestContext) -> Vec<SseEvent> {
        if self.0.hook == "end" {
            self.fail("on-response-end");
        }
        Vec::new()
    }
    fn on_response_body(&self, _ctx: &RequestContext, _status: u16, _body: Vec<u8>) -> BodyAction {
        self.fail("on-response-body");
    }
    fn on_complete(&self, _ctx: &RequestContext, _summary: &Completion) {
        self.fail("on-complete");
    }
}

sluice_sdk::export_policy!(LateFail);
