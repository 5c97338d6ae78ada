//! TEMPORARY stand-in for the Wasm policy runtime (being written on another
//! branch): the API the pipeline calls, with an always-empty chain.
#![allow(dead_code)]
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hooks {
    pub request_headers: bool,
    pub request_body: bool,
    pub response_headers: bool,
    pub response_body: bool,
    pub response_events: bool,
    pub complete: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Anthropic,
    Openai,
    None,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AiKind {
    Messages,
    AnthropicTokenCount,
    Completions,
    Responses,
    Embeddings,
    Models,
    Passthrough,
}

#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub route: String,
    pub backend: String,
    pub provider: Provider,
    pub kind: AiKind,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub client_ip: String,
    pub model: Option<String>,
    pub streaming: bool,
}

#[derive(Debug)]
pub struct RequestScope {
    pub ctx: RequestContext,
    pub attrs: HashMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct ImmediateResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub message: String,
    pub error_type: String,
    pub body: Option<bytes::Bytes>,
}

#[derive(Debug, Clone)]
pub struct PolicyFailure {
    pub plugin: String,
    pub reason: String,
}

pub enum HeadersOutcome {
    Continue { need_body: bool },
    Respond(ImmediateResponse),
}

#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
    pub id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

#[derive(Debug, Clone)]
pub struct Completion {
    pub status: u16,
    pub usage: Option<Usage>,
    pub ttfb_ms: u64,
    pub duration_ms: u64,
    pub short_circuited: bool,
    pub error: Option<String>,
}

#[derive(Default)]
pub struct Chain {}

impl Chain {
    pub fn wants(&self) -> Hooks {
        Hooks::default()
    }
    pub fn request_headers(
        &self,
        _s: &mut RequestScope,
        _h: &mut http::HeaderMap,
    ) -> Result<HeadersOutcome, PolicyFailure> {
        Ok(HeadersOutcome::Continue { need_body: false })
    }
    pub fn request_body(
        &self,
        _s: &mut RequestScope,
        _h: &mut http::HeaderMap,
        _b: &mut bytes::Bytes,
    ) -> Result<Option<ImmediateResponse>, PolicyFailure> {
        Ok(None)
    }
    pub fn response_headers(
        &self,
        _s: &mut RequestScope,
        _status: u16,
        _h: &mut http::HeaderMap,
    ) -> Result<Option<ImmediateResponse>, PolicyFailure> {
        Ok(None)
    }
    pub fn response_body(
        &self,
        _s: &mut RequestScope,
        _status: u16,
        _b: &mut bytes::Bytes,
    ) -> Result<Option<ImmediateResponse>, PolicyFailure> {
        Ok(None)
    }
    pub fn response_event(
        &self,
        _s: &mut RequestScope,
        ev: SseEvent,
    ) -> Result<Vec<SseEvent>, PolicyFailure> {
        Ok(vec![ev])
    }
    pub fn response_end(&self, _s: &mut RequestScope) -> Result<Vec<SseEvent>, PolicyFailure> {
        Ok(vec![])
    }
    pub fn complete(&self, _s: &mut RequestScope, _c: &Completion) {}
}

/// An attached plugin (plugin + config).
#[derive(Debug)]
pub struct Attachment {}

impl Chain {
    pub fn new(_a: Vec<std::sync::Arc<Attachment>>) -> Self {
        Chain {}
    }
}
