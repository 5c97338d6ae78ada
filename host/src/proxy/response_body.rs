//! The body sent back to the client, and the response-body phase.
//!
//! Bytes flow through as they arrive: nothing is held back unless a policy
//! rewrites events, and then only until an event is whole. On the side, the
//! body reads usage (decoding a compressed copy when it must), hands whole SSE
//! events to the policy chain, and runs the logging phase exactly once: at the
//! end of the stream, on an upstream error, or when the client goes away.

use super::errors::{error_body, ErrorShape};
use super::session::{Outcome, Session};
use crate::policy::SseEvent;
use crate::provider::Transcode;
use crate::stream::decode::Decoder;
use crate::stream::sse::{self, Framer};
use crate::stream::usage::UsageReader;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Most JSON a usage reader keeps to parse at the end; bigger bodies go unread.
const MAX_JSON_FOR_USAGE: usize = 16 << 20;

enum Source {
    Upstream(Incoming),
    Full(Option<Bytes>),
}

/// What the body does with bytes on their way through.
pub enum Mode {
    /// Forward untouched; read nothing.
    Pass,
    /// Forward untouched; read usage from whole SSE events (decoding a copy if compressed).
    ObserveSse { decoder: Option<Decoder> },
    /// Forward untouched; read usage from the JSON at the end.
    ObserveJson { decoder: Option<Decoder> },
    /// Decode, frame and pass every event through the policy chain.
    Events { decoder: Option<Decoder> },
}

pub struct ResponseBody {
    source: Source,
    mode: Mode,
    framer: Framer,
    json: Vec<u8>,
    usage: UsageReader,
    out: VecDeque<Bytes>,
    session: Option<Box<Session>>,
    error: Option<String>,
    bytes: u64,
    /// Bytes still expected from a body with a known length. hyper stops
    /// polling once it has written `content-length` bytes, so the end of such
    /// a body is noticed by counting, not by waiting for `None`.
    remaining: Option<u64>,
    done: bool,
    /// The answer as the client gets it, for `gen_ai.output.messages`;
    /// `None` unless the trace records content.
    content: Option<crate::otel::content::Tap>,
    content_sse: bool,
    /// Turns the upstream's framing into the client's before anything else
    /// reads it (the provider's, e.g. Bedrock's event-stream into SSE).
    transcode: Option<Box<dyn Transcode>>,
}

impl ResponseBody {
    /// A body that is already complete (errors, policy responses, rewritten JSON).
    pub fn full(body: Bytes, session: Session) -> Self {
        Self::new(Source::Full(Some(body)), Mode::Pass, session)
    }

    /// A complete body whose usage was already read.
    pub fn full_with_usage(body: Bytes, session: Session, usage: UsageReader) -> Self {
        let mut b = Self::full(body, session);
        b.usage = usage;
        b
    }

    /// The upstream's body, streamed.
    pub fn upstream(
        body: Incoming,
        mode: Mode,
        session: Session,
        transcode: Option<Box<dyn Transcode>>,
    ) -> Self {
        // A transcoded body's length is not the upstream's.
        let remaining = match transcode {
            None => body.size_hint().exact(),
            Some(_) => None,
        };
        // A compressed answer passed through untouched goes out compressed:
        // its content is not recorded (a masking route decodes it).
        let (sse, plain) = match &mode {
            Mode::Pass => (false, false),
            Mode::Events { .. } => (true, true),
            Mode::ObserveSse { decoder } => (true, decoder.is_none()),
            Mode::ObserveJson { decoder } => (false, decoder.is_none()),
        };
        let mut b = Self::new(Source::Upstream(body), mode, session);
        b.remaining = remaining;
        b.transcode = transcode;
        b.content_sse = sse;
        if !plain {
            b.content = None;
        }
        b
    }

    fn new(source: Source, mode: Mode, session: Session) -> Self {
        let content = session
            .trace
            .as_ref()
            .is_some_and(|t| t.records_content())
            .then(crate::otel::content::Tap::default);
        ResponseBody {
            source,
            mode,
            framer: Framer::new(),
            json: Vec::new(),
            usage: UsageReader::new(),
            out: VecDeque::new(),
            session: Some(Box::new(session)),
            error: None,
            bytes: 0,
            remaining: None,
            done: false,
            content,
            content_sse: false,
            transcode: None,
        }
    }

    /// Handle one chunk from upstream.
    fn on_data(&mut self, data: Bytes) {
        match &mut self.mode {
            Mode::Pass => self.out.push_back(data),
            Mode::ObserveSse { decoder } => {
                let plain = decode(decoder, &data, &mut self.error);
                self.framer.push(plain.as_deref().unwrap_or(&data));
                while let Some(ev) = self.framer.next_event() {
                    self.usage.on_event(&ev);
                }
                if self.framer.overflowed() {
                    // Only observing: keep forwarding, stop buffering.
                    tracing::warn!("upstream SSE event over the size cap; usage not read");
                    self.framer.reset();
                }
                self.out.push_back(data);
            }
            Mode::ObserveJson { decoder } => {
                let plain = decode(decoder, &data, &mut self.error);
                if self.json.len() < MAX_JSON_FOR_USAGE {
                    self.json
                        .extend_from_slice(plain.as_deref().unwrap_or(&data));
                }
                self.out.push_back(data);
            }
            Mode::Events { decoder } => {
                let plain = decode(decoder, &data, &mut self.error);
                self.framer.push(plain.as_deref().unwrap_or(&data));
                while let Some(ev) = self.framer.next_event() {
                    self.filter_event(ev);
                }
                if self.framer.overflowed() && !self.done {
                    self.framer.reset();
                    self.end_with_error(&format!(
                        "upstream event larger than {} bytes",
                        sse::MAX_PENDING_EVENT
                    ));
                }
            }
        }
    }

    /// End a stream the gateway cannot continue with an error event.
    fn end_with_error(&mut self, message: &str) {
        tracing::warn!(%message, "ending the stream");
        let data = serde_json::json!({
            "type": "error",
            "error": {"type": "api_error", "message": message},
        })
        .to_string();
        self.out.push_back(sse::encode(Some("error"), &data, None));
        self.error = Some(message.to_string());
        self.done = true;
        self.source = Source::Full(None);
    }

    /// Pass one whole event through the chain and queue what comes out.
    fn filter_event(&mut self, ev: sse::Event) {
        self.usage.on_event(&ev);
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let input = SseEvent {
            event: ev.event.clone(),
            data: ev.data.clone(),
            id: ev.id.clone(),
        };
        match session.chain.response_event(&mut session.scope, input) {
            Ok(outs) => self.queue_events(outs, Some(&ev)),
            Err(f) => self.fail_stream(f),
        }
    }

    fn queue_events(&mut self, outs: Vec<SseEvent>, original: Option<&sse::Event>) {
        for o in outs {
            match original {
                // Unchanged: send the provider's own bytes.
                Some(orig) if orig.same_fields(&o.event, &o.data, &o.id) => {
                    self.out.push_back(orig.raw.clone())
                }
                _ => self
                    .out
                    .push_back(sse::encode(o.event.as_deref(), &o.data, o.id.as_deref())),
            }
        }
    }

    /// A fail-closed policy failure mid-stream: the status is gone already, so
    /// end the stream with an error event the client's SDK understands.
    ///
    /// The event is the provider's own: Anthropic's `event: error` with
    /// `{"type":"error","error":{..}}`; for OpenAI, the `{"error":{..}}`
    /// envelope its SDKs raise on, unnamed in a Chat Completions stream (whose
    /// events have no names) and `event: error` in a Responses stream.
    fn fail_stream(&mut self, f: crate::policy::PolicyFailure) {
        tracing::warn!(plugin = %f.plugin, reason = %f.reason, "policy failed closed mid-stream");
        self.error_event(f.status, &f.client_message());
        self.error = Some(format!("policy {} failed: {}", f.plugin, f.reason));
    }

    /// End the stream with the provider's error event (see [`Self::fail_stream`]).
    fn error_event(&mut self, status: u16, message: &str) {
        let (shape, kind) = self
            .session
            .as_ref()
            .map(|s| (s.shape, s.scope.ctx.kind))
            .unwrap_or((ErrorShape::Anthropic, crate::policy::AiKind::Messages));
        let data = error_body(shape, status, "", message);
        let name = match (shape, kind) {
            (ErrorShape::OpenAi, crate::policy::AiKind::Completions) => None,
            _ => Some("error"),
        };
        self.out
            .push_back(sse::encode(name, &String::from_utf8_lossy(&data), None));
        self.done = true;
        self.source = Source::Full(None);
    }

    /// The upstream body ended cleanly.
    fn on_end(&mut self) {
        let mode = std::mem::replace(&mut self.mode, Mode::Pass);
        match mode {
            Mode::Pass => {}
            Mode::ObserveSse { decoder } => {
                if let Some(rest) = finish_decoder(decoder, &mut self.error) {
                    self.framer.push(&rest);
                }
                while let Some(ev) = self.framer.next_event() {
                    self.usage.on_event(&ev);
                }
                if let Some(ev) = self.framer.finish() {
                    self.usage.on_event(&ev);
                }
            }
            Mode::ObserveJson { decoder } => {
                if let Some(rest) = finish_decoder(decoder, &mut self.error) {
                    self.json.extend_from_slice(&rest);
                }
                self.usage.on_json(&self.json);
                self.json = Vec::new();
            }
            Mode::Events { decoder } => {
                if let Some(rest) = finish_decoder(decoder, &mut self.error) {
                    self.framer.push(&rest);
                }
                while let Some(ev) = self.framer.next_event() {
                    self.filter_event(ev);
                }
                if let Some(ev) = self.framer.finish() {
                    self.filter_event(ev);
                }
                if let Some(session) = self.session.as_mut() {
                    match session.chain.response_end(&mut session.scope) {
                        Ok(outs) => self.queue_events(outs, None),
                        Err(f) => self.fail_stream(f),
                    }
                }
            }
        }
    }

    /// The logging phase, once.
    fn finish(&mut self) {
        if let Some(mut session) = self.session.take() {
            if let (Some(tap), Some(t)) = (self.content.take(), session.trace.as_mut()) {
                t.set_output(tap, self.content_sse);
            }
            session.finish(Outcome {
                usage: self.usage.usage(),
                model: self.usage.model().map(str::to_string),
                response_id: self.usage.response_id().map(str::to_string),
                finish_reasons: self.usage.finish_reasons().to_vec(),
                error: self.error.take(),
                bytes: self.bytes,
            });
        }
    }

    fn emit(&mut self, b: Bytes) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(s) = self.session.as_mut() {
            s.first_byte.get_or_insert_with(Instant::now);
        }
        self.bytes += b.len() as u64;
        if let Some(tap) = self.content.as_mut() {
            tap.push(&b);
        }
        Poll::Ready(Some(Ok(Frame::data(b))))
    }
}

fn decode(
    decoder: &mut Option<Decoder>,
    data: &[u8],
    error: &mut Option<String>,
) -> Option<Vec<u8>> {
    let d = decoder.as_mut()?;
    match d.push(data) {
        Ok(plain) => Some(plain),
        Err(e) => {
            error.get_or_insert_with(|| format!("cannot decode response body: {e}"));
            *decoder = None;
            Some(Vec::new())
        }
    }
}

fn finish_decoder(decoder: Option<Decoder>, error: &mut Option<String>) -> Option<Vec<u8>> {
    match decoder?.finish() {
        Ok(rest) => Some(rest),
        Err(e) => {
            error.get_or_insert_with(|| format!("cannot decode response body: {e}"));
            None
        }
    }
}

impl ResponseBody {
    /// The upstream's framing could not be read: the answer ends here with
    /// an error, which the client sees as a cut stream and the log records.
    fn transcode_failed(
        &mut self,
        e: crate::provider::TranscodeError,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        tracing::warn!(error = %e, "upstream answer not readable");
        self.error = Some(e.to_string());
        self.done = true;
        self.finish();
        Poll::Ready(Some(Err(Box::new(e))))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        loop {
            if let Some(b) = this.out.pop_front() {
                return this.emit(b);
            }
            if this.done {
                this.finish();
                return Poll::Ready(None);
            }
            match &mut this.source {
                Source::Full(b) => match b.take() {
                    Some(b) => {
                        this.done = true;
                        this.out.push_back(b);
                    }
                    None => this.done = true,
                },
                Source::Upstream(inc) => match Pin::new(inc).poll_frame(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => {
                            let n = data.len() as u64;
                            match this.transcode.as_mut().map(|t| t.push(&data)) {
                                None => this.on_data(data),
                                Some(Ok(out)) if out.is_empty() => {}
                                Some(Ok(out)) => this.on_data(Bytes::from(out)),
                                Some(Err(e)) => return this.transcode_failed(e),
                            }
                            if let Some(r) = this.remaining.as_mut() {
                                *r = r.saturating_sub(n);
                                if *r == 0 {
                                    this.on_end();
                                    this.done = true;
                                }
                            }
                        }
                        Err(frame) => return Poll::Ready(Some(Ok(frame))),
                    },
                    Poll::Ready(Some(Err(e))) => {
                        this.error = Some(format!("upstream body error: {e}"));
                        if matches!(this.mode, Mode::ObserveSse { .. } | Mode::Events { .. }) {
                            // The answer's head is out: it is never replayed
                            // on another backend. An event stream ends with
                            // the provider's error event, which SDKs raise.
                            tracing::warn!(error = %e, "upstream stream broke mid-answer");
                            this.error_event(
                                502,
                                "the upstream stream broke before the answer ended",
                            );
                            continue;
                        }
                        this.done = true;
                        this.finish();
                        return Poll::Ready(Some(Err(Box::new(e))));
                    }
                    Poll::Ready(None) => {
                        if let Some(t) = this.transcode.as_mut() {
                            match t.finish() {
                                Ok(out) if out.is_empty() => {}
                                Ok(out) => this.on_data(Bytes::from(out)),
                                Err(e) => return this.transcode_failed(e),
                            }
                        }
                        this.on_end();
                        this.done = true;
                    }
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.out.is_empty() && self.session.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.source, &self.mode) {
            (Source::Full(Some(b)), _) if self.out.is_empty() => {
                SizeHint::with_exact(b.len() as u64)
            }
            (
                Source::Upstream(inc),
                Mode::Pass | Mode::ObserveJson { .. } | Mode::ObserveSse { .. },
            ) if self.out.is_empty() && self.transcode.is_none() => inc.size_hint(),
            _ => SizeHint::default(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if self.session.is_some() {
            if !self.done {
                self.error
                    .get_or_insert_with(|| "client went away".to_string());
            }
            self.finish();
        }
    }
}
