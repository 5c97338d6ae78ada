//! One sampled request's trace: the server span, the client span of each
//! upstream attempt and the policy spans, assembled when the request ends.
//!
//! Exists apart from the pipeline so the pipeline only calls a handful of
//! methods, each a no-op there when the request is not traced (`None`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use parking_lot::Mutex;

use super::content::{self, Tap};
use super::peek::{RequestParams, Scanner};
use super::propagate::{self, hex, SpanId, TraceId};
use super::span::{wall, Kind, PolicyOutcome, PolicySpans, SpanData, Value};
use super::Tracer;
use crate::config::{FieldExpr, FieldVar};
use crate::stream::usage::Usage;
use crate::trace_cel::Scalar;

/// A traced request in flight.
pub struct RequestTrace {
    tracer: Arc<Tracer>,
    pub trace_id: TraceId,
    pub span_id: SpanId,
    parent: Option<SpanId>,
    tracestate: Option<HeaderValue>,
    anchor: (Instant, SystemTime),
    server: Vec<(&'static str, Value)>,
    method: String,
    route: String,
    /// Request headers `fields.add` names, captured at the start.
    headers: Vec<(String, String)>,
    client_ip: String,
    upstream: Option<Upstream>,
    /// Attempts before the one that answered (retries, failovers), each
    /// with the moment the next one replaced it.
    earlier: Vec<(Upstream, Instant)>,
    /// Content is recorded for this request (`config.tracing.content`, and
    /// its route masks answers or `allowUnmasked` is set).
    content: bool,
    /// The answer as the client received it: bytes, and whether SSE.
    output: Option<(Tap, bool)>,
}

struct Upstream {
    span_id: SpanId,
    start: Instant,
    address: String,
    port: u16,
    status: Option<u16>,
    error_type: Option<&'static str>,
    params: Option<Arc<Mutex<Scanner>>>,
    /// The request body as sent upstream, when content is recorded.
    input: Option<Arc<Mutex<Tap>>>,
}

/// Where a request arrived and what it asked, for the server span.
pub struct Start<'a> {
    pub started: Instant,
    pub listener: &'a str,
    pub route: &'a str,
    pub request_id: &'a str,
    pub peer: SocketAddr,
    pub method: &'a str,
    pub path: &'a str,
}

/// How the request ended, for every span.
pub struct Finish<'a> {
    pub status: u16,
    /// `anthropic`, `openai` or `none`.
    pub provider: &'static str,
    /// The GenAI operation (`chat`, `embeddings`), `None` for other calls.
    pub operation: Option<&'static str>,
    /// The model the client's body named, when a policy read it.
    pub request_model: Option<&'a str>,
    pub response_model: Option<&'a str>,
    /// The provider's id of the answer (`gen_ai.response.id`).
    pub response_id: Option<&'a str>,
    /// `gen_ai.response.finish_reasons`, one per choice.
    pub finish_reasons: &'a [String],
    pub streaming: bool,
    pub usage: Option<Usage>,
    pub error: Option<&'a str>,
    pub first_byte: Option<Instant>,
    pub policy: Option<Box<PolicySpans>>,
    /// Request attributes policies set (`auth.sub`, `auth.claims.*`).
    pub attrs: &'a HashMap<String, String>,
    /// The request's price (`config.modelCatalog`), when its model is priced.
    pub cost_usd: Option<f64>,
}

impl RequestTrace {
    pub(super) fn new(
        tracer: Arc<Tracer>,
        trace_id: TraceId,
        span_id: SpanId,
        parent: Option<(SpanId, Option<HeaderValue>)>,
        headers: &HeaderMap,
        s: Start<'_>,
    ) -> Self {
        let captured = if tracer.all_headers {
            headers
                .iter()
                .filter(|(n, _)| !crate::config::is_credential_header(n.as_str()))
                .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect()
        } else {
            tracer
                .header_fields
                .iter()
                .filter_map(|h| {
                    headers
                        .get(h.as_str())
                        .and_then(|v| v.to_str().ok())
                        .map(|v| (h.clone(), v.to_string()))
                })
                .collect()
        };
        let (parent, tracestate) = match parent {
            Some((p, ts)) => (Some(p), ts),
            None => (None, None),
        };
        RequestTrace {
            tracer,
            trace_id,
            span_id,
            parent,
            tracestate,
            anchor: (s.started, SystemTime::now() - s.started.elapsed()),
            server: vec![
                ("http.request.method", Value::Str(s.method.to_string())),
                ("url.path", Value::Str(s.path.to_string())),
                ("client.address", Value::Str(s.peer.ip().to_string())),
                ("client.port", Value::Int(s.peer.port().into())),
                ("sluice.route", Value::Str(s.route.to_string())),
                ("sluice.listener", Value::Str(s.listener.to_string())),
                ("sluice.request_id", Value::Str(s.request_id.to_string())),
            ],
            method: s.method.to_string(),
            route: s.route.to_string(),
            headers: captured,
            client_ip: s.peer.ip().to_string(),
            upstream: None,
            earlier: Vec::new(),
            content: false,
            output: None,
        }
    }

    /// Decide whether this request's content is recorded: only when
    /// `content` is on and the request's policies mask answers (`masked`),
    /// or the operator allowed unmasked content.
    pub fn content_for(&mut self, masked: bool) {
        let allow = self.tracer.content == Some(true);
        self.content =
            (self.tracer.content.is_some() || self.tracer.content_fields) && (allow || masked);
    }

    /// The answer is captured for `gen_ai.output.messages`.
    pub fn records_content(&self) -> bool {
        self.content
    }

    /// The answer as it left the response filters.
    pub fn set_output(&mut self, tap: Tap, sse: bool) {
        if self.content {
            self.output = Some((tap, sse));
        }
    }

    /// The policy scope's recorder for this request.
    pub fn policy_spans(&self) -> Box<PolicySpans> {
        Box::default()
    }

    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }

    /// An upstream attempt starts: a client span, whose context goes
    /// upstream in `traceparent` (and the caller's `tracestate`).
    pub fn upstream_start(&mut self, headers: &mut HeaderMap, authority: &str, https: bool) {
        let span_id = self.tracer.ids.span_id();
        propagate::inject(
            headers,
            &self.trace_id,
            &span_id,
            true,
            self.tracestate.as_ref(),
        );
        let (address, port) = match authority.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => (h.to_string(), p.parse().unwrap_or(0)),
            _ => (authority.to_string(), if https { 443 } else { 80 }),
        };
        if let Some(prev) = self.upstream.take() {
            self.earlier.push((prev, Instant::now()));
        }
        self.upstream = Some(Upstream {
            span_id,
            start: Instant::now(),
            address: address
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            status: None,
            error_type: None,
            params: None,
            input: None,
        });
    }

    /// Read the GenAI parameters off the request body on its way upstream.
    pub fn peek_body<B>(&mut self, body: B) -> PeekBody<B> {
        let scanner = Arc::new(Mutex::new(Scanner::default()));
        let input = self.content.then(|| Arc::new(Mutex::new(Tap::default())));
        if let Some(u) = self.upstream.as_mut() {
            u.params = Some(scanner.clone());
            u.input = input.clone();
        }
        PeekBody {
            inner: body,
            scanner,
            input,
        }
    }

    pub fn upstream_failed(&mut self, error_type: &'static str) {
        if let Some(u) = self.upstream.as_mut() {
            u.error_type = Some(error_type);
        }
    }

    pub fn upstream_status(&mut self, status: u16) {
        if let Some(u) = self.upstream.as_mut() {
            u.status = Some(status);
        }
    }

    /// The request is over: build its spans and queue them for export.
    pub fn finish(self, f: Finish<'_>) {
        let end = SystemTime::now();
        let mut spans = Vec::with_capacity(2 + f.policy.as_ref().map_or(0, |p| p.calls.len()));
        let params = self
            .upstream
            .as_ref()
            .and_then(|u| u.params.as_ref())
            .map(|p| p.lock().params.clone())
            .unwrap_or_default();
        let request_model = params.model.clone().or(f.request_model.map(str::to_string));

        // The server span.
        let mut server = SpanData {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent: self.parent,
            tracestate: self
                .tracestate
                .as_ref()
                .and_then(|t| t.to_str().ok())
                .map(str::to_string),
            name: format!("{} {}", self.method, self.route),
            kind: Kind::Server,
            start: self.anchor.1,
            end,
            attrs: self
                .server
                .iter()
                .map(|(k, v)| ((*k).into(), v.clone()))
                .collect(),
            error: None,
        };
        server.set("http.response.status_code", Value::Int(f.status.into()));
        if f.status >= 500 {
            server.set("error.type", Value::Str(f.status.to_string()));
            server.error = Some(f.error.unwrap_or("server error").to_string());
        }
        // The JWT subject, else the API key's `user` (apiKey metadata).
        if let Some(user) = f
            .attrs
            .get("auth.sub")
            .or_else(|| f.attrs.get("apiKey.user"))
        {
            server.set("enduser.id", Value::Str(user.clone()));
        }
        if let Some(team) = f.attrs.get("apiKey.team") {
            server.set("sluice.team", Value::Str(team.clone()));
        }
        if let Some(cost) = f.cost_usd {
            server.set("sluice.cost_usd", Value::Float(cost));
        }
        let mut cel_vars = None;
        for (name, expr) in &self.tracer.fields.add {
            if let FieldExpr::Cel(c) = expr {
                let vars = cel_vars.get_or_insert_with(|| self.cel_vars(&f, &params));
                let named: Vec<(&str, &serde_json::Value)> =
                    vars.iter().map(|(k, v)| (*k, v)).collect();
                let Some(v) = c.0.eval(&named) else {
                    continue;
                };
                let mut attrs = Vec::new();
                crate::trace_cel::attributes(name, &v, &mut attrs);
                for (k, a) in attrs {
                    let v = match a {
                        Scalar::Str(s) => Value::Str(s),
                        Scalar::Int(i) => Value::Int(i),
                        Scalar::Float(x) => Value::Float(x),
                        Scalar::Bool(b) => Value::Bool(b),
                    };
                    if k == "span.name" {
                        if let Value::Str(s) = v {
                            server.name = s;
                        }
                        continue;
                    }
                    server.set(k, v);
                }
                continue;
            }
            let Some(v) = self.eval(expr, &f, &params) else {
                continue;
            };
            if name == "span.name" {
                if let Value::Str(s) = &v {
                    server.name = s.clone();
                }
                continue;
            }
            server.set(name.clone(), v);
        }

        // A client span for each attempt that did not answer: where it went,
        // how it failed.
        for (u, ended) in &self.earlier {
            let mut c = SpanData {
                trace_id: self.trace_id,
                span_id: u.span_id,
                parent: Some(self.span_id),
                tracestate: None,
                name: self.method.clone(),
                kind: Kind::Client,
                start: wall(self.anchor, u.start),
                end: wall(self.anchor, *ended),
                attrs: Vec::with_capacity(6),
                error: None,
            };
            c.set("server.address", Value::Str(u.address.clone()));
            c.set("server.port", Value::Int(u.port.into()));
            c.set("http.request.method", Value::Str(self.method.clone()));
            if let Some(s) = u.status {
                c.set("http.response.status_code", Value::Int(s.into()));
            }
            let error_type = u
                .error_type
                .map(str::to_string)
                .or_else(|| u.status.filter(|s| *s >= 400).map(|s| s.to_string()));
            if let Some(e) = error_type {
                c.error = Some(e.clone());
                c.set("error.type", Value::Str(e));
            }
            spans.push(c);
        }

        // The client span of the upstream attempt that answered.
        if let Some(u) = &self.upstream {
            let mut c = SpanData {
                trace_id: self.trace_id,
                span_id: u.span_id,
                parent: Some(self.span_id),
                tracestate: None,
                name: match (f.operation, &request_model) {
                    (Some(op), Some(m)) => format!("{op} {m}"),
                    (Some(op), None) => op.to_string(),
                    (None, _) => self.method.clone(),
                },
                kind: Kind::Client,
                start: wall(self.anchor, u.start),
                end,
                attrs: Vec::with_capacity(24),
                error: None,
            };
            c.set("server.address", Value::Str(u.address.clone()));
            c.set("server.port", Value::Int(u.port.into()));
            c.set("http.request.method", Value::Str(self.method.clone()));
            if let Some(s) = u.status {
                c.set("http.response.status_code", Value::Int(s.into()));
            }
            if let Some(op) = f.operation {
                c.set("gen_ai.operation.name", Value::Str(op.into()));
                c.set("gen_ai.provider.name", Value::Str(f.provider.into()));
                if let Some(m) = &request_model {
                    c.set("gen_ai.request.model", Value::Str(m.clone()));
                }
                if let Some(m) = f.response_model {
                    c.set("gen_ai.response.model", Value::Str(m.to_string()));
                }
                if let Some(id) = f.response_id {
                    c.set("gen_ai.response.id", Value::Str(id.to_string()));
                }
                if !f.finish_reasons.is_empty() {
                    c.set(
                        "gen_ai.response.finish_reasons",
                        Value::StrList(f.finish_reasons.to_vec()),
                    );
                }
                if let Some(n) = params.max_tokens {
                    c.set("gen_ai.request.max_tokens", Value::Int(n));
                }
                if let Some(t) = params.temperature {
                    c.set("gen_ai.request.temperature", Value::Float(t));
                }
                let stream = params.stream.unwrap_or(f.streaming);
                c.set("gen_ai.request.stream", Value::Bool(stream));
                if let Some(u) = f.usage {
                    c.set(
                        "gen_ai.usage.input_tokens",
                        Value::Int(u.all_input() as i64),
                    );
                    c.set(
                        "gen_ai.usage.output_tokens",
                        Value::Int(u.output_tokens as i64),
                    );
                    c.set(
                        "gen_ai.usage.cache_read.input_tokens",
                        Value::Int(u.cache_read_tokens as i64),
                    );
                    c.set(
                        "gen_ai.usage.cache_creation.input_tokens",
                        Value::Int(u.cache_write_tokens as i64),
                    );
                    if u.reasoning_tokens > 0 {
                        c.set(
                            "gen_ai.usage.reasoning.output_tokens",
                            Value::Int(u.reasoning_tokens as i64),
                        );
                    }
                }
            }
            if let Some(input) = u.input.as_ref().filter(|_| self.tracer.content.is_some()) {
                let t = input.lock();
                c.set(
                    "gen_ai.input.messages",
                    Value::Str(content::input_messages(&t)),
                );
                if t.truncated() {
                    c.set("sluice.content.truncated", Value::Bool(true));
                }
            }
            if let Some((tap, sse)) = self
                .output
                .as_ref()
                .filter(|_| self.tracer.content.is_some())
            {
                c.set(
                    "gen_ai.output.messages",
                    Value::Str(content::output_messages(
                        tap,
                        *sse,
                        f.finish_reasons.first().map(String::as_str),
                    )),
                );
                if tap.truncated() {
                    c.set("sluice.content.truncated", Value::Bool(true));
                }
            }
            if let Some(fb) = f.first_byte.filter(|fb| *fb >= u.start) {
                c.set(
                    "gen_ai.response.time_to_first_chunk",
                    Value::Float((fb - u.start).as_secs_f64()),
                );
            }
            let error_type = u.error_type.map(str::to_string).or_else(|| {
                u.status
                    .filter(|s| *s >= 400)
                    .map(|s| s.to_string())
                    .or_else(|| f.error.map(|_| "stream_error".to_string()))
            });
            if let Some(e) = error_type {
                c.error = Some(f.error.unwrap_or(&e).to_string());
                c.set("error.type", Value::Str(e));
            }
            spans.push(c);
        }

        // One span per policy hook call.
        for call in f.policy.map(|p| p.calls).unwrap_or_default() {
            let mut p = SpanData {
                trace_id: self.trace_id,
                span_id: self.tracer.ids.span_id(),
                parent: Some(self.span_id),
                tracestate: None,
                name: format!("policy {} {}", call.plugin, call.hook),
                kind: Kind::Internal,
                start: call.start,
                end: call.start + call.duration,
                attrs: Vec::with_capacity(7),
                error: None,
            };
            // A fresh span: its keys are distinct, so they are pushed
            // without `set`'s lookup; names and hashes are shared, not copied.
            let guest = call.duration.saturating_sub(call.host_wait);
            let outcome = match call.outcome {
                PolicyOutcome::Continue => "continue",
                PolicyOutcome::Respond(_) => "respond",
                PolicyOutcome::Failed(_) => "failed",
            };
            p.attrs.extend([
                (
                    "sluice.policy.plugin".into(),
                    Value::Shared(call.plugin.clone()),
                ),
                (
                    "sluice.policy.hash".into(),
                    Value::Shared(call.hash.clone()),
                ),
                ("sluice.policy.hook".into(), Value::Static(call.hook)),
                (
                    "sluice.policy.guest_us".into(),
                    Value::Int(guest.as_micros() as i64),
                ),
                (
                    "sluice.policy.host_wait_us".into(),
                    Value::Int(call.host_wait.as_micros() as i64),
                ),
                ("sluice.policy.outcome".into(), Value::Static(outcome)),
            ]);
            match call.outcome {
                PolicyOutcome::Continue => {}
                PolicyOutcome::Respond(status) => {
                    p.attrs
                        .push(("sluice.policy.status".into(), Value::Int(status.into())));
                }
                PolicyOutcome::Failed(kind) => {
                    p.attrs.push(("error.type".into(), Value::Static(kind)));
                    p.error = Some(format!("policy {kind}"));
                }
            }
            spans.push(p);
        }
        spans.insert(0, server);
        if !self.tracer.fields.remove.is_empty() {
            for s in &mut spans {
                s.attrs
                    .retain(|(k, _)| !self.tracer.fields.remove.iter().any(|r| r == k));
            }
        }
        self.tracer.submit(spans);
    }

    /// The variables a compiled `fields.add` expression reads, with
    /// agentgateway's names. The prompt and the answer are there only when
    /// this request records content (the masking rule of `content`).
    fn cel_vars(
        &self,
        f: &Finish<'_>,
        params: &RequestParams,
    ) -> Vec<(&'static str, serde_json::Value)> {
        use serde_json::{json, Map, Value as J};
        let mut llm = Map::new();
        llm.insert("provider".into(), f.provider.into());
        if let Some(m) = params.model.as_deref().or(f.request_model) {
            llm.insert("requestModel".into(), m.into());
        }
        if let Some(m) = f.response_model {
            llm.insert("responseModel".into(), m.into());
        }
        llm.insert(
            "streaming".into(),
            params.stream.unwrap_or(f.streaming).into(),
        );
        if let Some(u) = f.usage {
            for (k, n) in [
                ("inputTokens", u.all_input()),
                ("outputTokens", u.output_tokens),
                ("totalTokens", u.all_input() + u.output_tokens),
                ("cachedInputTokens", u.cache_read_tokens),
                ("cacheCreationInputTokens", u.cache_write_tokens),
                ("reasoningTokens", u.reasoning_tokens),
            ] {
                llm.insert(k.into(), n.into());
            }
        }
        if self.content {
            if let Some(input) = self.upstream.as_ref().and_then(|u| u.input.as_ref()) {
                llm.insert("prompt".into(), content::prompt(&input.lock()));
            }
            if let Some((tap, sse)) = &self.output {
                llm.insert("completion".into(), content::completion(tap, *sse));
            }
        }
        let path = self
            .server
            .iter()
            .find(|(k, _)| *k == "url.path")
            .and_then(|(_, v)| match v {
                Value::Str(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let headers: Map<String, J> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), J::String(v.clone())))
            .collect();
        let claims: Map<String, J> = f
            .attrs
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("auth.claims.")
                    .map(|c| (c.to_string(), J::String(v.clone())))
            })
            .collect();
        vec![
            ("llm", J::Object(llm)),
            (
                "request",
                json!({"method": self.method, "path": path, "headers": headers}),
            ),
            ("response", json!({"code": f.status})),
            ("source", json!({"address": self.client_ip})),
            ("jwt", J::Object(claims)),
        ]
    }

    fn eval(&self, e: &FieldExpr, f: &Finish<'_>, params: &RequestParams) -> Option<Value> {
        let int = |n: u64| Some(Value::Int(n as i64));
        Some(match e {
            FieldExpr::Str(s) => Value::Str(s.clone()),
            FieldExpr::Int(i) => Value::Int(*i),
            FieldExpr::Float(x) => Value::Float(*x),
            FieldExpr::Bool(b) => Value::Bool(*b),
            // Evaluated with its variables in `finish`.
            FieldExpr::Cel(_) => return None,
            FieldExpr::Var(v) => match v {
                FieldVar::LlmProvider => Value::Str(f.provider.into()),
                FieldVar::LlmRequestModel => Value::Str(
                    params
                        .model
                        .clone()
                        .or(f.request_model.map(str::to_string))?,
                ),
                FieldVar::LlmResponseModel => Value::Str(f.response_model?.to_string()),
                FieldVar::LlmStreaming => Value::Bool(params.stream.unwrap_or(f.streaming)),
                FieldVar::LlmInputTokens => return int(f.usage?.all_input()),
                FieldVar::LlmOutputTokens => return int(f.usage?.output_tokens),
                FieldVar::LlmTotalTokens => {
                    let u = f.usage?;
                    return int(u.all_input() + u.output_tokens);
                }
                FieldVar::LlmCachedInputTokens => return int(f.usage?.cache_read_tokens),
                FieldVar::LlmCacheCreationInputTokens => return int(f.usage?.cache_write_tokens),
                FieldVar::LlmReasoningTokens => return int(f.usage?.reasoning_tokens),
                FieldVar::RequestMethod => Value::Str(self.method.clone()),
                FieldVar::RequestPath => match self.server.iter().find(|(k, _)| *k == "url.path") {
                    Some((_, v)) => v.clone(),
                    None => return None,
                },
                FieldVar::RequestHeader(h) => Value::Str(
                    self.headers
                        .iter()
                        .find(|(n, _)| n == h)
                        .map(|(_, v)| v.clone())?,
                ),
                FieldVar::SourceAddress => Value::Str(self.client_ip.clone()),
                FieldVar::JwtClaim(c) => {
                    Value::Str(f.attrs.get(&format!("auth.claims.{c}"))?.clone())
                }
            },
        })
    }
}

/// A request body that feeds the GenAI parameter scanner on its way through.
pub struct PeekBody<B> {
    inner: B,
    scanner: Arc<Mutex<Scanner>>,
    input: Option<Arc<Mutex<Tap>>>,
}

impl<B> http_body::Body for PeekBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = std::pin::Pin::new(&mut this.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(d) = frame.data_ref() {
                this.scanner.lock().push(d);
                if let Some(t) = &this.input {
                    t.lock().push(d);
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
