//! Test fixture: uppercases `delta.text` of Anthropic `content_block_delta`
//! events; drops `ping` events; splits events whose text contains `|` into one
//! event per piece; emits a final `event: tail` at stream end.
use serde::Deserialize;
use serde_json::Value;
use sluice_sdk::prelude::*;
use sluice_sdk::sse;

#[derive(Deserialize)]
pub struct Config {}

pub struct Upper;

impl Policy for Upper {
    type Config = Config;
    fn new(_: Config) -> Result<Self, String> {
        Ok(Upper)
    }
    fn hooks(&self) -> Hooks {
        Hooks::RESPONSE_EVENTS
    }
    fn on_response_event(&self, _ctx: &RequestContext, ev: SseEvent) -> Vec<SseEvent> {
        if ev.kind().as_deref() == Some("ping") {
            return vec![];
        }
        if ev.kind().as_deref() != Some("content_block_delta") {
            return vec![ev];
        }
        let Some(mut v) = ev.json() else {
            return vec![ev];
        };
        let Some(text) = v
            .pointer("/delta/text")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return vec![ev];
        };
        text.split('|')
            .map(|piece| {
                v["delta"]["text"] = Value::String(piece.to_uppercase());
                ev.clone().with_json(&v)
            })
            .collect()
    }
    fn on_response_end(&self, _ctx: &RequestContext) -> Vec<SseEvent> {
        vec![sse::event(
            Some("tail"),
            &serde_json::json!({"type": "tail"}),
        )]
    }
}

sluice_sdk::export_policy!(Upper);
