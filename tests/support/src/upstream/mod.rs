//! The fake provider: a real hyper 1 server on loopback speaking Anthropic's and OpenAI's wire
//! formats.
//!
//! The gateway under test forwards to it exactly as it would to `api.anthropic.com` or
//! `api.openai.com` (plain HTTP/1.1 + h2c, or TLS with ALPN `h2`/`http/1.1` under a
//! [`TestPki`]). Tests script its answers with [`Script`] and then assert on what arrived
//! ([`RecordedRequest`]) and when each SSE event left ([`SentEvent`]).

pub mod bedrock;
pub mod script;
pub mod wire;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

pub use bedrock::{BedrockOptions, BedrockRequest, BedrockScript, FakeBedrock};
pub use script::Script;
pub use wire::{Endpoint, Flavor};

use crate::pki::{TestPki, PROVIDER_NAMES};
use crate::sse::format_event;

type Body = BoxBody<Bytes, std::io::Error>;

/// Checks a recorded request before the script answers it: `Some((status, body))` refuses it
/// with that JSON body (a fake provider's credential check, e.g. [`crate::gcp::FakeVertex`]).
pub type Guard = Arc<dyn Fn(&RecordedRequest) -> Option<(u16, String)> + Send + Sync>;

/// How to start a [`FakeUpstream`].
#[derive(Clone, Default)]
pub struct UpstreamOptions {
    /// Serve TLS with this config; plain HTTP (HTTP/1.1 and h2c) when `None`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The initial script.
    pub script: Script,
    /// Refuses requests before the script answers (requests are still recorded).
    pub guard: Option<Guard>,
}

impl UpstreamOptions {
    /// Plain HTTP/1.1 + h2c.
    pub fn plain() -> Self {
        Self::default()
    }

    /// TLS with a leaf for [`PROVIDER_NAMES`] issued by `pki`.
    pub fn tls(pki: &TestPki) -> Self {
        UpstreamOptions {
            tls: Some(pki.server_config(PROVIDER_NAMES)),
            script: Script::default(),
            guard: None,
        }
    }

    pub fn script(mut self, script: Script) -> Self {
        self.script = script;
        self
    }

    pub fn guard(mut self, guard: Guard) -> Self {
        self.guard = Some(guard);
        self
    }
}

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// 0-based arrival order.
    pub index: usize,
    pub method: String,
    /// Path without the query.
    pub path: String,
    pub query: Option<String>,
    /// `"HTTP/1.1"` or `"HTTP/2.0"`.
    pub version: String,
    /// Headers in the order hyper's `HeaderMap` iterates them (names lower-case, repeated names
    /// kept as separate entries).
    pub headers: Vec<(String, String)>,
    /// The body exactly as received (still compressed if the client compressed it).
    pub body: Bytes,
    /// When the request head arrived.
    pub at: Instant,
    /// TLS SNI the client sent, if TLS.
    pub sni: Option<String>,
}

impl RecordedRequest {
    /// Path plus `?query` if any.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{}", self.path, q),
            None => self.path.clone(),
        }
    }

    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of header `name`.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body decoded (gzip if `content-encoding: gzip`) as text.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.decoded_body()).into_owned()
    }

    /// The body with a gzip `content-encoding` undone.
    pub fn decoded_body(&self) -> Vec<u8> {
        if self.header("content-encoding") == Some("gzip") {
            let mut out = Vec::new();
            if std::io::Read::read_to_end(
                &mut flate2::read::GzDecoder::new(&self.body[..]),
                &mut out,
            )
            .is_ok()
            {
                return out;
            }
        }
        self.body.to_vec()
    }

    /// The body as JSON (`Value::Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.decoded_body()).unwrap_or(Value::Null)
    }
}

/// One SSE event the upstream handed to the connection.
#[derive(Debug, Clone)]
pub struct SentEvent {
    /// Index of the request it answers.
    pub request_index: usize,
    pub event: Option<String>,
    pub data: String,
    pub at: Instant,
}

#[derive(Default)]
struct State {
    script: Mutex<Script>,
    queued: Mutex<VecDeque<Script>>,
    requests: Mutex<Vec<RecordedRequest>>,
    events: Mutex<Vec<SentEvent>>,
    connections: Mutex<usize>,
    notify: Notify,
    guard: Option<Guard>,
}

/// The running fake provider. Dropping it stops the server and closes its connections.
pub struct FakeUpstream {
    addr: SocketAddr,
    tls: bool,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
}

impl FakeUpstream {
    /// Binds 127.0.0.1:0 and serves until dropped.
    pub async fn start(opts: UpstreamOptions) -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake upstream");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State {
            script: Mutex::new(opts.script),
            guard: opts.guard.clone(),
            ..State::default()
        });
        let (shutdown, rx) = watch::channel(false);
        let tls = opts.tls.clone();
        tokio::spawn(accept_loop(listener, tls, state.clone(), rx));
        FakeUpstream {
            addr,
            tls: opts.tls.is_some(),
            state,
            shutdown,
        }
    }

    /// Plain HTTP with the default script.
    pub async fn plain() -> FakeUpstream {
        Self::start(UpstreamOptions::plain()).await
    }

    /// TLS (leaf for [`PROVIDER_NAMES`]) with the default script.
    pub async fn tls(pki: &TestPki) -> FakeUpstream {
        Self::start(UpstreamOptions::tls(pki)).await
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Replaces the script used by every later request (queued scripts go first).
    pub fn set_script(&self, script: Script) {
        *self.state.script.lock().unwrap() = script;
    }

    /// Queues a script for exactly one later request (FIFO), e.g. a 529 before a success.
    pub fn queue_script(&self, script: Script) {
        self.state.queued.lock().unwrap().push_back(script);
    }

    /// All requests so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.state.requests.lock().unwrap().last().cloned()
    }

    /// Waits until at least `n` requests arrived; returns them, or an error on timeout.
    pub async fn wait_for_requests(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedRequest>, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.state.notify.notified();
            let reqs = self.requests();
            if reqs.len() >= n {
                return Ok(reqs);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let reqs = self.requests();
                if reqs.len() >= n {
                    return Ok(reqs);
                }
                return Err(format!(
                    "fake upstream: wanted {n} requests within {timeout:?}, got {}",
                    reqs.len()
                ));
            }
        }
    }

    /// When each SSE event was handed to the connection, over all requests.
    pub fn event_send_times(&self) -> Vec<Instant> {
        self.sent_events().iter().map(|e| e.at).collect()
    }

    /// Every SSE event written, over all requests.
    pub fn sent_events(&self) -> Vec<SentEvent> {
        self.state.events.lock().unwrap().clone()
    }

    /// How many TCP connections were accepted (for pooling/reuse assertions).
    pub fn connection_count(&self) -> usize {
        *self.state.connections.lock().unwrap()
    }

    /// Forgets recorded requests and events.
    pub fn clear(&self) {
        self.state.requests.lock().unwrap().clear();
        self.state.events.lock().unwrap().clear();
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(_) => continue,
            },
            _ = shutdown.changed() => return,
        };
        *state.connections.lock().unwrap() += 1;
        let state = state.clone();
        let acceptor = acceptor.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let serve = async move {
                match acceptor {
                    Some(acc) => {
                        let Ok(stream) = acc.accept(tcp).await else {
                            return;
                        };
                        let sni = stream.get_ref().1.server_name().map(str::to_string);
                        serve_conn(TokioIo::new(stream), state, sni).await;
                    }
                    None => serve_conn(TokioIo::new(tcp), state, None).await,
                }
            };
            tokio::select! {
                _ = serve => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

async fn serve_conn<I>(io: I, state: Arc<State>, sni: Option<String>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| handle(state.clone(), sni.clone(), req));
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(io, svc)
        .await;
}

fn full(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(
            Full::new(body.into())
                .map_err(|never: Infallible| match never {})
                .boxed(),
        )
        .expect("response")
}

async fn handle(
    state: Arc<State>,
    sni: Option<String>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let at = Instant::now();
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let script = {
        let queued = state.queued.lock().unwrap().pop_front();
        queued.unwrap_or_else(|| state.script.lock().unwrap().clone())
    };
    let rec = {
        let mut reqs = state.requests.lock().unwrap();
        let rec = RecordedRequest {
            index: reqs.len(),
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().map(str::to_string),
            version: format!("{:?}", parts.version),
            headers,
            body,
            at,
            sni,
        };
        reqs.push(rec.clone());
        rec
    };
    state.notify.notify_waiters();

    if let Some((status, body)) = state.guard.as_ref().and_then(|g| g(&rec)) {
        return Ok(full(status, "application/json", body));
    }
    if script.hang {
        std::future::pending::<()>().await;
    }
    if !script.response_delay.is_zero() {
        tokio::time::sleep(script.response_delay).await;
    }
    let mut resp = respond(&state, &rec, &script);
    for (n, v) in &script.headers {
        if let (Ok(n), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(n.as_bytes()),
            hyper::header::HeaderValue::from_str(v),
        ) {
            resp.headers_mut().append(n, v);
        }
    }
    resp.headers_mut().insert(
        "request-id",
        hyper::header::HeaderValue::from_str(&format!("req_test_{}", rec.index)).unwrap(),
    );
    Ok(resp)
}

fn flavor_of(rec: &RecordedRequest, endpoint: Endpoint) -> Flavor {
    match endpoint {
        Endpoint::Messages | Endpoint::CountTokens => Flavor::Anthropic,
        Endpoint::ChatCompletions | Endpoint::Responses | Endpoint::Embeddings => Flavor::OpenAi,
        Endpoint::Models | Endpoint::NotFound => {
            if rec.header("anthropic-version").is_some() || rec.header("x-api-key").is_some() {
                Flavor::Anthropic
            } else {
                Flavor::OpenAi
            }
        }
    }
}

fn accepts_gzip(rec: &RecordedRequest) -> bool {
    rec.header_all("accept-encoding").iter().any(|v| {
        v.split(',').any(|t| {
            let mut it = t.trim().split(';');
            let name = it.next().unwrap_or("").trim();
            let q0 = it.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    == Some(0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !q0
        })
    })
}

fn gzip_all(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

fn respond(state: &Arc<State>, rec: &RecordedRequest, script: &Script) -> Response<Body> {
    let endpoint = wire::route(&rec.method, &rec.path);
    let flavor = flavor_of(rec, endpoint);
    let gzip = script.gzip && accepts_gzip(rec);
    let json_resp = |status: u16, body: Vec<u8>| {
        if gzip {
            let mut r = full(status, "application/json", gzip_all(&body));
            r.headers_mut()
                .insert("content-encoding", "gzip".parse().unwrap());
            r
        } else {
            full(status, "application/json", body)
        }
    };
    if let Some((status, body)) = &script.status_override {
        return json_resp(*status, body.clone().into_bytes());
    }
    if let Some(events) = &script.sse_events {
        return sse_response(state.clone(), rec.index, events.clone(), script, gzip);
    }
    let body = rec.json();
    let ctx = wire::Ctx {
        body: &body,
        seq: rec.index,
        flavor,
        script,
        path_model: wire::vertex_model(&rec.path),
    };
    // Vertex picks streaming by method (`:streamRawPredict`), not by the body.
    let stream = wire::vertex_streams(&rec.path)
        .unwrap_or(body.get("stream").and_then(Value::as_bool) == Some(true));
    let (json, events) = match endpoint {
        Endpoint::NotFound => {
            let msg = format!("Not found: {} {}", rec.method, rec.path);
            let b = wire::error_body(flavor, 404, &msg);
            return json_resp(404, b.to_string().into_bytes());
        }
        Endpoint::Messages if stream => (None, Some(wire::anthropic_events(&ctx))),
        Endpoint::Messages => (Some(wire::anthropic_json(&ctx)), None),
        Endpoint::CountTokens => (Some(wire::count_tokens(&ctx)), None),
        Endpoint::ChatCompletions if stream => (None, Some(wire::chat_events(&ctx))),
        Endpoint::ChatCompletions => (Some(wire::chat_json(&ctx)), None),
        Endpoint::Responses if stream => (None, Some(wire::responses_events(&ctx))),
        Endpoint::Responses => (Some(wire::responses_json(&ctx)), None),
        Endpoint::Embeddings => (Some(wire::embeddings_json(&ctx)), None),
        Endpoint::Models => (Some(wire::models_json(&ctx)), None),
    };
    if let Some(j) = json {
        return json_resp(200, j.to_string().into_bytes());
    }
    let events = events.unwrap_or_default();
    sse_response(state.clone(), rec.index, events, script, gzip)
}

struct StreamState {
    state: Arc<State>,
    request_index: usize,
    events: VecDeque<wire::Event>,
    sent: usize,
    delay: Duration,
    drop_after: Option<usize>,
    gz: Option<flate2::write::GzEncoder<Vec<u8>>>,
    done: bool,
}

impl StreamState {
    fn encode(&mut self, data: &[u8]) -> Bytes {
        match &mut self.gz {
            Some(enc) => {
                enc.write_all(data).expect("gzip");
                enc.flush().expect("gzip flush");
                Bytes::from(std::mem::take(enc.get_mut()))
            }
            None => Bytes::copy_from_slice(data),
        }
    }
}

fn sse_response(
    state: Arc<State>,
    request_index: usize,
    events: Vec<wire::Event>,
    script: &Script,
    gzip: bool,
) -> Response<Body> {
    let st = StreamState {
        state,
        request_index,
        events: events.into(),
        sent: 0,
        delay: script.event_delay,
        drop_after: script.drop_after_events,
        gz: gzip.then(|| flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default())),
        done: false,
    };
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        if st.drop_after.is_some_and(|n| st.sent >= n) {
            st.done = true;
            // Let the connection flush what was sent first, so the drop is truly mid-stream.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let err = std::io::Error::other("fake upstream: scripted mid-stream drop");
            return Some((Err(err), st));
        }
        match st.events.pop_front() {
            Some((name, data)) => {
                if st.sent > 0 && !st.delay.is_zero() {
                    tokio::time::sleep(st.delay).await;
                }
                let bytes = st.encode(format_event(name.as_deref(), &data).as_bytes());
                st.sent += 1;
                st.state.events.lock().unwrap().push(SentEvent {
                    request_index: st.request_index,
                    event: name,
                    data,
                    at: Instant::now(),
                });
                Some((Ok(bytes), st))
            }
            None => {
                st.done = true;
                let enc = st.gz.take()?;
                let tail = enc.finish().expect("gzip finish");
                Some((Ok(Bytes::from(tail)), st))
            }
        }
    });
    let body = BodyExt::boxed(StreamBody::new(stream.map(|r| r.map(Frame::data))));
    let mut resp = Response::builder()
        .status(200)
        .header("content-type", "text/event-stream; charset=utf-8")
        .header("cache-control", "no-cache")
        .body(body)
        .expect("sse response");
    if gzip {
        resp.headers_mut()
            .insert("content-encoding", "gzip".parse().unwrap());
    }
    resp
}
