//! What a request may cost, from its body, before it goes upstream.
//!
//! - Input tokens: in `strict` mode the body's byte count, an upper bound
//!   (a tokenizer token is at least one byte of text, and the JSON framing
//!   around the prompt is more bytes than the chat template adds in
//!   tokens); in `estimate` mode a quarter of it (the usual ~4 bytes per
//!   token of English text and code).
//! - Output tokens: the request's cap (`max_tokens`,
//!   `max_completion_tokens`, `max_output_tokens`); when it sets none,
//!   `defaultMaxTokens`, which `strict` mode writes into the request so the
//!   provider enforces it.

use serde_json::Value;
use sluice_sdk::{AiKind, TokenUsage};

/// The fields a provider reads its output cap from, by API. Only these are
/// decoded (the rest of the body is skipped, not built into a tree: the
/// hook runs on every request).
#[derive(Debug, Default, serde::Deserialize)]
pub struct Caps {
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    max_output_tokens: Option<u64>,
}

impl Caps {
    /// The request's output cap, if it sets one; `None` also for a body
    /// that is not a JSON object (the provider will refuse it).
    pub fn of(body: &[u8]) -> Option<Caps> {
        serde_json::from_slice(body).ok()
    }
    pub fn cap(&self) -> Option<u64> {
        self.max_tokens
            .or(self.max_completion_tokens)
            .or(self.max_output_tokens)
    }
}

/// `body` with `field: cap` added (a body that is not a JSON object: none).
pub fn with_cap(body: &[u8], field: &str, cap: u64) -> Option<Vec<u8>> {
    let mut json: Value = serde_json::from_slice(body).ok()?;
    json.as_object_mut()?.insert(field.into(), cap.into());
    serde_json::to_vec(&json).ok()
}

/// The field to write a cap into for this API.
pub fn cap_field(kind: AiKind) -> &'static str {
    match kind {
        AiKind::Completions => "max_completion_tokens",
        AiKind::Responses => "max_output_tokens",
        _ => "max_tokens",
    }
}

/// Input tokens the request may use (see the module doc).
pub fn input_tokens(body_len: usize, strict: bool) -> u64 {
    let n = body_len as u64;
    if strict {
        n
    } else {
        n.div_ceil(4)
    }
}

/// The highest price `input` + `output` tokens may have: the input priced
/// as uncached or as cache writes (dearer on Anthropic), the output as
/// plain or as reasoning (dearer where priced apart), whichever is more.
/// `None`: the model has no price.
pub fn worst_price(
    price: impl Fn(TokenUsage) -> Option<f64>,
    input: u64,
    output: u64,
) -> Option<f64> {
    let usage = |input_tokens, cache_write_tokens, reasoning_tokens| TokenUsage {
        input_tokens,
        cache_read_tokens: 0,
        cache_write_tokens,
        output_tokens: output,
        reasoning_tokens,
    };
    let base = price(usage(input, 0, 0))?;
    let dearest = [
        usage(0, input, 0),
        usage(input, 0, output),
        usage(0, input, output),
    ]
    .into_iter()
    .filter_map(&price)
    .fold(base, f64::max);
    Some(dearest)
}

/// Dollars to micro-dollars, rounded up (a reservation never falls short).
pub fn micros_up(usd: f64) -> u64 {
    (usd * 1e6).ceil().max(0.0) as u64
}

/// Dollars to micro-dollars, to the nearest (settled spend).
pub fn micros(usd: f64) -> u64 {
    (usd * 1e6).round().max(0.0) as u64
}

/// Every token of a usage: what `tokens` budgets count.
pub fn all_tokens(u: &TokenUsage) -> u64 {
    u.input_tokens + u.cache_read_tokens + u.cache_write_tokens + u.output_tokens
}
