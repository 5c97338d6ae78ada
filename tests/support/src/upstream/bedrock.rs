//! A fake AWS Bedrock runtime: a real hyper 1 server on loopback that
//! checks every request's SigV4 signature with the test's keys and answers
//! InvokeModel, InvokeModelWithResponseStream (real AWS event-stream binary
//! frames) and CountTokens the way Bedrock does for Anthropic models.
//!
//! The signature is recomputed with `aws-sigv4` (the crate AWS's Rust SDK
//! signs with) from what arrived: method, path and query, the headers the
//! `Authorization` header lists as signed, and the body. A mismatch is
//! answered as Bedrock answers it (403 `InvalidSignatureException`) and
//! recorded, so a test can assert both the client's view and the cause.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4::SigningParams;
use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

type Body = BoxBody<Bytes, std::io::Error>;

/// Bedrock's answer to a request whose signature does not verify.
pub const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the \
signature you provided. Check your AWS Secret Access Key and signing method. Consult the service \
documentation for details.";

/// What the fake answers. Plain data with chained setters, like
/// [`super::Script`].
#[derive(Debug, Clone)]
pub struct BedrockScript {
    /// Text deltas of the reply (the non-streamed reply is their concatenation).
    pub deltas: Vec<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_creation_input_tokens: u64,
    /// CountTokens' `inputTokens`.
    pub count_tokens: u64,
    /// Pause between two event-stream frames.
    pub event_delay: Duration,
    /// After this many events, send an exception frame
    /// `(count, :exception-type, message)` and end the stream.
    pub exception_after: Option<(usize, String, String)>,
    /// Answer every request with `(status, x-amzn-errortype name, message)`.
    pub error: Option<(u16, String, String)>,
    /// Stream exactly these Anthropic events instead of the generated ones.
    pub events: Option<Vec<Value>>,
    /// Add `amazon-bedrock-invocationMetrics` to the last streamed event, as Bedrock does.
    pub invocation_metrics: bool,
    /// Refuse (400 `invalid beta flag`, as Bedrock does) any `anthropic_beta`
    /// value not in this list; `None` accepts any.
    pub allowed_betas: Option<Vec<String>>,
}

impl Default for BedrockScript {
    fn default() -> Self {
        BedrockScript {
            deltas: vec!["Hello".into(), " from".into(), " Bedrock.".into()],
            input_tokens: 21,
            output_tokens: 9,
            cache_read_input_tokens: 13,
            cache_creation_input_tokens: 0,
            count_tokens: 42,
            event_delay: Duration::ZERO,
            exception_after: None,
            error: None,
            events: None,
            invocation_metrics: true,
            allowed_betas: None,
        }
    }
}

impl BedrockScript {
    pub fn deltas<S: Into<String>>(mut self, deltas: impl IntoIterator<Item = S>) -> Self {
        self.deltas = deltas.into_iter().map(Into::into).collect();
        self
    }

    pub fn tokens(mut self, input: u64, output: u64) -> Self {
        self.input_tokens = input;
        self.output_tokens = output;
        self
    }

    pub fn cache_tokens(mut self, read: u64, creation: u64) -> Self {
        self.cache_read_input_tokens = read;
        self.cache_creation_input_tokens = creation;
        self
    }

    pub fn count_tokens(mut self, n: u64) -> Self {
        self.count_tokens = n;
        self
    }

    pub fn event_delay(mut self, d: Duration) -> Self {
        self.event_delay = d;
        self
    }

    /// A mid-stream exception frame after `events` events (e.g.
    /// `"throttlingException"`, `"modelStreamErrorException"`).
    pub fn exception_after(
        mut self,
        events: usize,
        exception_type: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        self.exception_after = Some((events, exception_type.into(), message.into()));
        self
    }

    /// Every request answered with an error (`name` goes in `x-amzn-errortype`).
    pub fn error(
        mut self,
        status: u16,
        name: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        self.error = Some((status, name.into(), message.into()));
        self
    }

    /// 429 `ThrottlingException`, Bedrock's rate limit answer.
    pub fn throttle(self) -> Self {
        self.error(
            429,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        )
    }

    pub fn events(mut self, events: Vec<Value>) -> Self {
        self.events = Some(events);
        self
    }

    /// Accept only these beta flags (see [`BedrockScript::allowed_betas`]).
    pub fn only_betas<S: Into<String>>(mut self, betas: impl IntoIterator<Item = S>) -> Self {
        self.allowed_betas = Some(betas.into_iter().map(Into::into).collect());
        self
    }

    pub fn without_invocation_metrics(mut self) -> Self {
        self.invocation_metrics = false;
        self
    }

    pub fn text(&self) -> String {
        self.deltas.concat()
    }

    /// The Anthropic message InvokeModel answers with.
    pub fn message_json(&self, model: &str, seq: usize) -> Value {
        json!({
            "id": format!("msg_bdrk_{seq}"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": self.text()}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": self.usage(),
        })
    }

    fn usage(&self) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "output_tokens": self.output_tokens,
        })
    }

    /// The Anthropic events the stream carries, one per chunk frame.
    pub fn stream_events(&self, model: &str, seq: usize) -> Vec<Value> {
        if let Some(e) = &self.events {
            return e.clone();
        }
        let mut usage = self.usage();
        usage["output_tokens"] = json!(1);
        let mut out = vec![
            json!({"type": "message_start", "message": {
                "id": format!("msg_bdrk_{seq}"), "type": "message", "role": "assistant",
                "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": usage}}),
            json!({"type": "content_block_start", "index": 0,
                   "content_block": {"type": "text", "text": ""}}),
        ];
        for d in &self.deltas {
            out.push(json!({"type": "content_block_delta", "index": 0,
                            "delta": {"type": "text_delta", "text": d}}));
        }
        out.push(json!({"type": "content_block_stop", "index": 0}));
        out.push(json!({"type": "message_delta",
                        "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                        "usage": {"output_tokens": self.output_tokens}}));
        let mut stop = json!({"type": "message_stop"});
        if self.invocation_metrics {
            stop["amazon-bedrock-invocationMetrics"] = json!({
                "inputTokenCount": self.input_tokens,
                "outputTokenCount": self.output_tokens,
                "invocationLatency": 321,
                "firstByteLatency": 123,
            });
        }
        out.push(stop);
        out
    }
}

/// How to start a [`FakeBedrock`].
#[derive(Clone)]
pub struct BedrockOptions {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// When set, requests must carry (and sign) this `x-amz-security-token`.
    pub session_token: Option<String>,
    /// Serve TLS with this config (e.g. `pki.server_config(&["bedrock-runtime.us-east-1.amazonaws.com"])`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub script: BedrockScript,
}

impl BedrockOptions {
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        BedrockOptions {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
            tls: None,
            script: BedrockScript::default(),
        }
    }

    pub fn session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }

    pub fn tls(mut self, cfg: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(cfg);
        self
    }

    pub fn script(mut self, script: BedrockScript) -> Self {
        self.script = script;
        self
    }
}

/// The Bedrock operations the fake knows, from the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BedrockOp {
    Invoke,
    InvokeStream,
    CountTokens,
    Unknown,
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct BedrockRequest {
    /// 0-based arrival order.
    pub index: usize,
    pub method: String,
    /// Path as sent (still percent-encoded), without the query.
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub at: Instant,
    pub op: BedrockOp,
    /// The model id from the path, percent-decoded.
    pub model_id: Option<String>,
    /// Whether the SigV4 signature verified; why not otherwise.
    pub signature: Result<(), SigV4Error>,
}

impl BedrockRequest {
    pub fn signature_ok(&self) -> bool {
        self.signature.is_ok()
    }

    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Value::Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The Anthropic body Bedrock would run: the body itself for invoke, the
    /// base64 `input.invokeModel.body` decoded for count-tokens.
    pub fn anthropic_body(&self) -> Value {
        let v = self.json();
        if self.op != BedrockOp::CountTokens {
            return v;
        }
        v["input"]["invokeModel"]["body"]
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    }
}

/// One event-stream frame the fake handed to the connection.
#[derive(Debug, Clone)]
pub struct SentFrame {
    pub request_index: usize,
    /// `chunk` or the exception type.
    pub kind: String,
    /// The Anthropic event JSON (chunk) or the exception message.
    pub data: String,
    pub at: Instant,
}

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    #[error("no Authorization header")]
    Missing,
    #[error("malformed Authorization header: {0}")]
    Malformed(&'static str),
    #[error("unknown access key id {0}")]
    UnknownKey(String),
    #[error("x-amz-date missing or not YYYYMMDDTHHMMSSZ")]
    BadDate,
    #[error("the session token is missing or wrong")]
    BadToken,
    #[error("signed header {0} is not in the request")]
    MissingSignedHeader(String),
    #[error("host and x-amz-date must be signed")]
    UnsignedRequired,
    #[error("signature mismatch")]
    Mismatch,
    #[error("cannot recompute: {0}")]
    Recompute(String),
}

/// A wait that timed out.
#[derive(Debug, thiserror::Error)]
#[error("fake bedrock: wanted {wanted} requests within {timeout:?}, got {got}")]
pub struct WaitError {
    pub wanted: usize,
    pub got: usize,
    pub timeout: Duration,
}

struct State {
    keys: (String, String, Option<String>),
    script: Mutex<BedrockScript>,
    queued: Mutex<VecDeque<BedrockScript>>,
    requests: Mutex<Vec<BedrockRequest>>,
    frames: Mutex<Vec<SentFrame>>,
    notify: Notify,
}

/// The running fake. Dropping it stops the server.
pub struct FakeBedrock {
    addr: SocketAddr,
    tls: bool,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
}

impl FakeBedrock {
    /// Plain HTTP (HTTP/1.1 and h2c) on 127.0.0.1:0, verifying signatures
    /// made with these keys, with the default script.
    pub async fn start(access_key_id: &str, secret_access_key: &str) -> FakeBedrock {
        Self::start_with(BedrockOptions::new(access_key_id, secret_access_key)).await
    }

    pub async fn start_with(opts: BedrockOptions) -> FakeBedrock {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake bedrock");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State {
            keys: (
                opts.access_key_id,
                opts.secret_access_key,
                opts.session_token,
            ),
            script: Mutex::new(opts.script),
            queued: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            frames: Mutex::new(Vec::new()),
            notify: Notify::new(),
        });
        let (shutdown, rx) = watch::channel(false);
        let tls = opts.tls.is_some();
        tokio::spawn(accept_loop(listener, opts.tls, state.clone(), rx));
        FakeBedrock {
            addr,
            tls,
            state,
            shutdown,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (or `https://`), no trailing slash.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Replaces the script for every later request (queued scripts go first).
    pub fn set_script(&self, script: BedrockScript) {
        *self.state.script.lock().unwrap() = script;
    }

    /// A script for exactly one later request (FIFO), e.g. a throttle before a success.
    pub fn queue_script(&self, script: BedrockScript) {
        self.state.queued.lock().unwrap().push_back(script);
    }

    pub fn requests(&self) -> Vec<BedrockRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn last_request(&self) -> Option<BedrockRequest> {
        self.state.requests.lock().unwrap().last().cloned()
    }

    /// Every event-stream frame written, over all requests.
    pub fn sent_frames(&self) -> Vec<SentFrame> {
        self.state.frames.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived.
    pub async fn wait_for_requests(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<BedrockRequest>, WaitError> {
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
                return Err(WaitError {
                    wanted: n,
                    got: reqs.len(),
                    timeout,
                });
            }
        }
    }
}

impl Drop for FakeBedrock {
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
        let state = state.clone();
        let acceptor = acceptor.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let serve = async move {
                match acceptor {
                    Some(acc) => {
                        if let Ok(stream) = acc.accept(tcp).await {
                            serve_conn(TokioIo::new(stream), state).await;
                        }
                    }
                    None => serve_conn(TokioIo::new(tcp), state).await,
                }
            };
            tokio::select! {
                _ = serve => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

async fn serve_conn<I>(io: I, state: Arc<State>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| handle(state.clone(), req));
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(io, svc)
        .await;
}

/// The operation and decoded model id of a Bedrock runtime path.
pub fn parse_path(path: &str) -> (BedrockOp, Option<String>) {
    let Some(rest) = path.strip_prefix("/model/") else {
        return (BedrockOp::Unknown, None);
    };
    let Some((model, action)) = rest.split_once('/') else {
        return (BedrockOp::Unknown, None);
    };
    let op = match action {
        "invoke" => BedrockOp::Invoke,
        "invoke-with-response-stream" => BedrockOp::InvokeStream,
        "count-tokens" => BedrockOp::CountTokens,
        _ => BedrockOp::Unknown,
    };
    (op, Some(percent_decode(model)))
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn full(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(
            Full::new(body.into())
                .map_err(|never: Infallible| match never {})
                .boxed(),
        )
        .expect("response")
}

fn aws_error(status: u16, name: &str, message: &str) -> Response<Body> {
    let mut r = full(status, json!({ "message": message }).to_string());
    r.headers_mut().insert(
        "x-amzn-errortype",
        format!("{name}:http://internal.amazon.com/coral/com.amazon.bedrock/")
            .parse()
            .expect("errortype"),
    );
    r
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
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
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let (akid, secret, token) = &state.keys;
    let signature = verify_sigv4(
        parts.method.as_str(),
        path_and_query,
        &headers,
        &body,
        akid,
        secret,
        token.as_deref(),
    );
    let (op, model_id) = parse_path(parts.uri.path());
    let script = {
        let queued = state.queued.lock().unwrap().pop_front();
        queued.unwrap_or_else(|| state.script.lock().unwrap().clone())
    };
    let rec = {
        let mut reqs = state.requests.lock().unwrap();
        let rec = BedrockRequest {
            index: reqs.len(),
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().map(str::to_string),
            headers,
            body,
            at,
            op,
            model_id,
            signature,
        };
        reqs.push(rec.clone());
        rec
    };
    state.notify.notify_waiters();
    let mut resp = respond(&state, &rec, &script);
    resp.headers_mut().insert(
        "x-amzn-requestid",
        format!("bdrk-req-{}", rec.index)
            .parse()
            .expect("request id"),
    );
    Ok(resp)
}

fn respond(state: &Arc<State>, rec: &BedrockRequest, script: &BedrockScript) -> Response<Body> {
    match &rec.signature {
        Ok(()) => {}
        Err(SigV4Error::Missing) => {
            return aws_error(
                403,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            )
        }
        Err(SigV4Error::UnknownKey(_)) | Err(SigV4Error::BadToken) => {
            return aws_error(
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        }
        Err(_) => return aws_error(403, "InvalidSignatureException", SIGNATURE_MISMATCH),
    }
    if let Some((status, name, message)) = &script.error {
        return aws_error(*status, name, message);
    }
    let model = rec.model_id.clone().unwrap_or_default();
    if rec.method != "POST" || rec.op == BedrockOp::Unknown {
        return aws_error(404, "UnknownOperationException", "Unknown operation");
    }
    let anthropic = rec.anthropic_body();
    if let Err(msg) = check_anthropic_body(&anthropic, script.allowed_betas.as_deref()) {
        return aws_error(400, "ValidationException", &msg);
    }
    match rec.op {
        BedrockOp::Invoke => {
            let mut r = full(200, script.message_json(&model, rec.index).to_string());
            let h = r.headers_mut();
            h.insert(
                "x-amzn-bedrock-input-token-count",
                script.input_tokens.into(),
            );
            h.insert(
                "x-amzn-bedrock-output-token-count",
                script.output_tokens.into(),
            );
            h.insert("x-amzn-bedrock-invocation-latency", 321u32.into());
            r
        }
        BedrockOp::CountTokens => {
            full(200, json!({"inputTokens": script.count_tokens}).to_string())
        }
        BedrockOp::InvokeStream => stream_response(state.clone(), rec.index, &model, script),
        BedrockOp::Unknown => unreachable!("handled above"),
    }
}

/// What Bedrock itself refuses in an Anthropic body: a missing or foreign
/// `anthropic_version`, and the members that belong in the URL (`model`,
/// `stream`).
fn check_anthropic_body(v: &Value, allowed_betas: Option<&[String]>) -> Result<(), String> {
    let Some(obj) = v.as_object() else {
        return Err("Malformed input request, please reformat your input and try again.".into());
    };
    if obj.get("anthropic_version").and_then(Value::as_str) != Some("bedrock-2023-05-31") {
        return Err("Invalid API version, expected bedrock-2023-05-31".into());
    }
    for k in ["model", "stream"] {
        if obj.contains_key(k) {
            return Err(format!(
                "extraneous key [{k}] is not permitted, please reformat your input and try again."
            ));
        }
    }
    if let Some(b) = obj.get("anthropic_beta") {
        let Some(betas) = b.as_array().filter(|a| a.iter().all(Value::is_string)) else {
            return Err("anthropic_beta must be an array of strings".into());
        };
        if let Some(allowed) = allowed_betas {
            if betas
                .iter()
                .any(|b| !allowed.iter().any(|a| Some(a.as_str()) == b.as_str()))
            {
                return Err("invalid beta flag".into());
            }
        }
    }
    Ok(())
}

/// One `chunk` frame carrying `event_json`, as Bedrock frames it (with the
/// `p` padding member it adds against length analysis).
pub fn encode_chunk(event_json: &str) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(event_json);
    let payload = json!({"bytes": b64, "p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"}).to_string();
    encode_frame(
        &[
            (":event-type", "chunk"),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.as_bytes(),
    )
}

/// An exception frame (`throttlingException`, `modelStreamErrorException`, ...).
pub fn encode_exception(exception_type: &str, message: &str) -> Vec<u8> {
    encode_frame(
        &[
            (":exception-type", exception_type),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        json!({ "message": message }).to_string().as_bytes(),
    )
}

/// Any frame with string headers, encoded with `aws-smithy-eventstream`.
pub fn encode_frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut m = Message::new(payload.to_vec());
    for (n, v) in headers {
        m = m.add_header(Header::new(
            n.to_string(),
            HeaderValue::String(v.to_string().into()),
        ));
    }
    let mut out = Vec::new();
    write_message_to(&m, &mut out).expect("encode event-stream frame");
    out
}

fn stream_response(
    state: Arc<State>,
    request_index: usize,
    model: &str,
    script: &BedrockScript,
) -> Response<Body> {
    let mut frames: VecDeque<(String, String, Vec<u8>)> = VecDeque::new();
    for (i, e) in script
        .stream_events(model, request_index)
        .into_iter()
        .enumerate()
    {
        if let Some((after, name, message)) = &script.exception_after {
            if i == *after {
                frames.push_back((
                    name.clone(),
                    message.clone(),
                    encode_exception(name, message),
                ));
                break;
            }
        }
        let data = e.to_string();
        let bytes = encode_chunk(&data);
        frames.push_back(("chunk".into(), data, bytes));
    }
    let delay = script.event_delay;
    let stream = futures_util::stream::unfold((frames, 0usize), move |(mut frames, sent)| {
        let state = state.clone();
        async move {
            let (kind, data, bytes) = frames.pop_front()?;
            if sent > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            state.frames.lock().unwrap().push(SentFrame {
                request_index,
                kind,
                data,
                at: Instant::now(),
            });
            Some((
                Ok::<_, std::io::Error>(Bytes::from(bytes)),
                (frames, sent + 1),
            ))
        }
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/vnd.amazon.eventstream")
        .header("x-amzn-bedrock-content-type", "application/json")
        .body(BodyExt::boxed(StreamBody::new(
            stream.map(|r| r.map(Frame::data)),
        )))
        .expect("stream response")
}

/// Verifies a SigV4 `Authorization` header against the expected keys by
/// recomputing it with `aws-sigv4` from what arrived. `headers` are the
/// received headers (lower-case names). `session_token`, when `Some`, must
/// be the request's `x-amz-security-token`.
pub fn verify_sigv4(
    method: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    body: &[u8],
    access_key_id: &str,
    secret_access_key: &str,
    session_token: Option<&str>,
) -> Result<(), SigV4Error> {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let auth = get("authorization").ok_or(SigV4Error::Missing)?;
    let fields = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or(SigV4Error::Malformed("not AWS4-HMAC-SHA256"))?;
    let field = |key: &str| {
        fields
            .split(',')
            .map(str::trim)
            .find_map(|f| f.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
    };
    let credential = field("Credential").ok_or(SigV4Error::Malformed("no Credential"))?;
    let signed = field("SignedHeaders").ok_or(SigV4Error::Malformed("no SignedHeaders"))?;
    field("Signature").ok_or(SigV4Error::Malformed("no Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [akid, _date, region, service, "aws4_request"] = scope[..] else {
        return Err(SigV4Error::Malformed("credential scope"));
    };
    if akid != access_key_id {
        return Err(SigV4Error::UnknownKey(akid.to_string()));
    }
    let token = get("x-amz-security-token");
    if let Some(want) = session_token {
        if token != Some(want) {
            return Err(SigV4Error::BadToken);
        }
    }
    let at = parse_amz_date(get("x-amz-date").ok_or(SigV4Error::BadDate)?)?;
    let signed: Vec<&str> = signed.split(';').collect();
    if !signed.contains(&"host") || !signed.contains(&"x-amz-date") {
        return Err(SigV4Error::UnsignedRequired);
    }
    let mut to_sign: Vec<(&str, &str)> = Vec::new();
    for name in &signed {
        let mut found = false;
        for (n, v) in headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)) {
            to_sign.push((n.as_str(), v.as_str()));
            found = true;
        }
        if !found {
            return Err(SigV4Error::MissingSignedHeader(name.to_string()));
        }
    }
    let creds = aws_credential_types::Credentials::new(
        access_key_id,
        secret_access_key,
        token.map(str::to_string),
        None,
        "fake-bedrock",
    );
    let identity = creds.into();
    let params: aws_sigv4::http_request::SigningParams<'_> = SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| SigV4Error::Recompute(e.to_string()))?
        .into();
    let request = SignableRequest::new(
        method,
        path_and_query,
        to_sign.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| SigV4Error::Recompute(e.to_string()))?;
    let (instructions, _) = aws_sigv4::http_request::sign(request, &params)
        .map_err(|e| SigV4Error::Recompute(e.to_string()))?
        .into_parts();
    let expected = instructions
        .headers()
        .find(|(n, _)| *n == "authorization")
        .map(|(_, v)| v.to_string())
        .ok_or(SigV4Error::Recompute("no authorization produced".into()))?;
    if expected == auth {
        Ok(())
    } else {
        Err(SigV4Error::Mismatch)
    }
}

fn parse_amz_date(s: &str) -> Result<SystemTime, SigV4Error> {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let dt = time::PrimitiveDateTime::parse(s, &fmt).map_err(|_| SigV4Error::BadDate)?;
    Ok(dt.assume_utc().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_and_decode() {
        assert_eq!(
            parse_path(
                "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.x%3A0/invoke"
            ),
            (
                BedrockOp::Invoke,
                Some("arn:aws:bedrock:us-east-1:1:inference-profile/us.x:0".into())
            )
        );
        assert_eq!(
            parse_path("/model/m/count-tokens").0,
            BedrockOp::CountTokens
        );
        assert_eq!(
            parse_path("/model/m/invoke-with-response-stream").0,
            BedrockOp::InvokeStream
        );
        assert_eq!(parse_path("/v1/messages").0, BedrockOp::Unknown);
        assert_eq!(percent_decode("a%2"), "a%2");
    }

    #[test]
    fn amz_dates_parse() {
        let t = parse_amz_date("20150830T123600Z").unwrap();
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
            1_440_938_160
        );
        assert_eq!(parse_amz_date("2015-08-30"), Err(SigV4Error::BadDate));
    }

    /// AWS's published `get-vanilla` vector verifies; any change breaks it.
    #[test]
    fn verifies_aws_test_vector() {
        let h = |auth: &str| {
            vec![
                ("host".to_string(), "example.amazonaws.com".to_string()),
                ("x-amz-date".to_string(), "20150830T123600Z".to_string()),
                ("authorization".to_string(), auth.to_string()),
            ]
        };
        let good = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        assert_eq!(
            verify_sigv4("GET", "/", &h(good), b"", "AKIDEXAMPLE", secret, None),
            Ok(())
        );
        let bad = good.replace("5fa00f", "5fa00e");
        assert_eq!(
            verify_sigv4("GET", "/", &h(&bad), b"", "AKIDEXAMPLE", secret, None),
            Err(SigV4Error::Mismatch)
        );
        assert_eq!(
            verify_sigv4("POST", "/", &h(good), b"", "AKIDEXAMPLE", secret, None),
            Err(SigV4Error::Mismatch)
        );
        assert_eq!(
            verify_sigv4("GET", "/", &h(good), b"x", "AKIDEXAMPLE", secret, None),
            Err(SigV4Error::Mismatch)
        );
        assert_eq!(
            verify_sigv4("GET", "/", &h(good), b"", "AKIDEXAMPLE", "other", None),
            Err(SigV4Error::Mismatch)
        );
        assert!(matches!(
            verify_sigv4("GET", "/", &h(good), b"", "AKIDOTHER", secret, None),
            Err(SigV4Error::UnknownKey(_))
        ));
        assert_eq!(
            verify_sigv4("GET", "/", &h(good), b"", "AKIDEXAMPLE", secret, Some("t")),
            Err(SigV4Error::BadToken)
        );
    }

    #[test]
    fn stream_events_are_complete() {
        let e = BedrockScript::default().stream_events("m", 0);
        let types: Vec<&str> = e.iter().map(|v| v["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(e[0]["message"]["usage"]["cache_read_input_tokens"], 13);
        assert!(e[7]["amazon-bedrock-invocationMetrics"].is_object());
    }

    /// TLS works (a leaf for Bedrock's host name), and an unsigned request
    /// is refused as Bedrock refuses it, and recorded.
    #[tokio::test]
    async fn tls_and_unsigned_requests() {
        let host = "bedrock-runtime.us-east-1.amazonaws.com";
        let pki = crate::TestPki::new();
        let fake = FakeBedrock::start_with(
            BedrockOptions::new("AKID", "secret").tls(pki.server_config(&[host])),
        )
        .await;
        assert!(fake.url().starts_with("https://"));
        let ca = reqwest::Certificate::from_pem(pki.ca_pem().as_bytes()).unwrap();
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(ca)
            .resolve(host, fake.addr())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let url = format!("https://{host}:{}/model/m/invoke", fake.addr().port());
        let resp = client.post(url).body("{}").send().await.unwrap();
        assert_eq!(resp.status(), 403);
        assert_eq!(
            resp.headers()["x-amzn-errortype"]
                .to_str()
                .unwrap()
                .split(':')
                .next(),
            Some("MissingAuthenticationTokenException")
        );
        let rec = fake
            .wait_for_requests(1, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(rec[0].signature, Err(SigV4Error::Missing));
        assert_eq!(rec[0].op, BedrockOp::Invoke);
    }
}
