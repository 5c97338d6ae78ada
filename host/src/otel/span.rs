//! Spans as Sluice records them: plain data, built on the request path only
//! for sampled requests, turned into OTLP by the exporter off that path.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::propagate::{SpanId, TraceId};

/// An attribute value (the OTLP `AnyValue` kinds Sluice uses).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    /// A string shared with the gateway's own data (plugin names, hashes)
    /// or fixed, so a span does not copy it.
    Shared(Arc<str>),
    Static(&'static str),
    Int(i64),
    Float(f64),
    Bool(bool),
    StrList(Vec<String>),
}

pub type Key = Cow<'static, str>;

/// OTLP span kinds Sluice emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Internal,
    Server,
    Client,
}

/// One finished span.
#[derive(Debug, Clone)]
pub struct SpanData {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    pub tracestate: Option<String>,
    pub name: String,
    pub kind: Kind,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attrs: Vec<(Key, Value)>,
    /// Set on failure: the span's status is then ERROR with this message.
    pub error: Option<String>,
}

impl SpanData {
    pub fn set(&mut self, key: impl Into<Key>, value: Value) {
        let key = key.into();
        match self.attrs.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.attrs.push((key, value)),
        }
    }
}

/// How a policy hook call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyOutcome {
    Continue,
    /// The policy answered the client itself, with this status.
    Respond(u16),
    /// Trap, deadline, memory, state, plugin (bad output).
    Failed(&'static str),
}

/// One policy hook call, as measured by the policy pool.
#[derive(Debug, Clone)]
pub struct PolicyCall {
    pub plugin: Arc<str>,
    /// sha256 of the component, hex.
    pub hash: Arc<str>,
    pub hook: &'static str,
    pub start: SystemTime,
    pub duration: Duration,
    /// Wall time blocked in host calls (fetch, shared state).
    pub host_wait: Duration,
    pub outcome: PolicyOutcome,
}

/// The policy calls of one sampled request, carried in its policy scope.
/// `None` in the scope when the request is not traced: nothing recorded.
#[derive(Debug, Clone, Default)]
pub struct PolicySpans {
    pub calls: Vec<PolicyCall>,
}

impl PolicySpans {
    pub fn record(&mut self, call: PolicyCall) {
        // Bounded: a long SSE stream calls event hooks thousands of times.
        if self.calls.len() < MAX_POLICY_SPANS {
            self.calls.push(call);
        }
    }

    /// The last call answered the client itself.
    pub fn responded(&mut self, status: u16) {
        if let Some(c) = self.calls.last_mut() {
            c.outcome = PolicyOutcome::Respond(status);
        }
    }
}

/// Policy spans kept per request; event hooks past it are not recorded.
pub const MAX_POLICY_SPANS: usize = 256;

/// Turn a monotonic instant into wall time, given one pair of both.
pub fn wall(anchor: (Instant, SystemTime), at: Instant) -> SystemTime {
    match at.checked_duration_since(anchor.0) {
        Some(d) => anchor.1 + d,
        None => anchor.1 - anchor.0.duration_since(at),
    }
}
