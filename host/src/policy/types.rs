//! The request-side types the pipeline hands to the chain.
//!
//! WIT records are re-exported from the bindings as-is (no conversion on the
//! hot path); only [`ImmediateResponse`] and [`RequestScope`] are our own.

use std::collections::HashMap;

use bytes::Bytes;

use super::bindings::types as wit;

pub use wit::{AiKind, Completion, Hooks, Provider, RequestContext, SseEvent, TokenUsage, Usage};

/// Per-request state carried through every hook of one exchange.
///
/// `attrs` is moved into the instance's store for the duration of each hook
/// call and moved back afterwards, so plugins of one request share it and
/// nothing crosses requests.
#[derive(Debug, Clone)]
pub struct RequestScope {
    pub ctx: RequestContext,
    pub attrs: HashMap<String, String>,
    /// The token split, once the response is over (`host.usage-details`).
    pub usage: Option<TokenUsage>,
    /// Which attachments (by chain index) asked for the body with
    /// `need-body` in this request's headers phase.
    pub asked_body: AskedBody,
    /// Policy hook calls, recorded only when the request is traced.
    pub policy_spans: Option<Box<crate::otel::PolicySpans>>,
}

impl RequestScope {
    pub fn new(ctx: RequestContext) -> Self {
        RequestScope {
            ctx,
            attrs: HashMap::new(),
            usage: None,
            asked_body: AskedBody::default(),
            policy_spans: None,
        }
    }

    /// The hook call just made answered the client (for its policy span).
    pub fn note_respond(&mut self, status: u16) {
        if let Some(p) = self.policy_spans.as_mut() {
            p.responded(status);
        }
    }
}

/// A set of chain indexes, without an allocation per request. Indexes past
/// the first 128 always count as asked: a chain that long is called as
/// before, never skipped by mistake.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AskedBody(u128);

impl AskedBody {
    const BITS: usize = 128;

    pub fn ask(&mut self, index: usize) {
        if index < Self::BITS {
            self.0 |= 1 << index;
        }
    }

    pub fn asked(&self, index: usize) -> bool {
        index >= Self::BITS || self.0 & (1 << index) != 0
    }
}

/// A response a policy sends instead of forwarding. The pipeline wraps
/// `message` into the provider's error JSON unless `body` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImmediateResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub message: String,
    pub error_type: String,
    pub body: Option<Bytes>,
}

impl From<wit::ImmediateResponse> for ImmediateResponse {
    fn from(r: wit::ImmediateResponse) -> Self {
        ImmediateResponse {
            status: r.status,
            headers: r.headers,
            message: r.message,
            error_type: r.error_type,
            body: r.body.map(Bytes::from),
        }
    }
}

/// A bare context, handy for tests and benches.
pub fn test_context(path: &str) -> RequestContext {
    RequestContext {
        request_id: "test-request".into(),
        route: "test-route".into(),
        backend: "test-backend".into(),
        provider: Provider::Anthropic,
        kind: AiKind::Messages,
        method: "POST".into(),
        path: path.into(),
        query: None,
        client_ip: "127.0.0.1".into(),
        model: None,
        streaming: false,
    }
}
