//! A fake OpenTelemetry collector: a real OTLP receiver on loopback.
//!
//! It accepts OTLP/HTTP (`POST /v1/traces`, protobuf) and OTLP/gRPC
//! (`TraceService/Export` over h2c), decodes the bodies with the
//! `opentelemetry-proto` types and records every span, so tests assert on
//! what a real collector would have received. [`Collector::fail_with`]
//! makes it answer errors (e.g. 503) while still counting the attempts.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

/// An attribute value as received.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    List(Vec<Attr>),
    Other,
}

impl Attr {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Attr::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Attr::Int(i) => Some(*i),
            _ => None,
        }
    }
}

/// One received span, ids as lower-case hex.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub trace_state: String,
    pub name: String,
    /// OTLP `SpanKind` (1 internal, 2 server, 3 client).
    pub kind: i32,
    pub attrs: HashMap<String, Attr>,
    /// OTLP status code (2 = error).
    pub status_code: i32,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    /// Resource attributes of the batch it came in.
    pub resource: HashMap<String, Attr>,
    /// `http` or `grpc`.
    pub transport: &'static str,
}

impl ReceivedSpan {
    pub fn attr(&self, key: &str) -> Option<&Attr> {
        self.attrs.get(key)
    }
    pub fn str(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).and_then(Attr::as_str)
    }
    pub fn int(&self, key: &str) -> Option<i64> {
        self.attrs.get(key).and_then(Attr::as_int)
    }
}

#[derive(Default)]
struct State {
    spans: Mutex<Vec<ReceivedSpan>>,
    /// Export requests received (accepted or not).
    exports: Mutex<usize>,
    /// Headers of the last export request.
    last_headers: Mutex<Vec<(String, String)>>,
    fail: Mutex<Option<u16>>,
    notify: Notify,
}

/// The running fake collector; stops when dropped.
pub struct Collector {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
}

impl Collector {
    /// Binds 127.0.0.1:0; serves HTTP/1.1 and h2c.
    pub async fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake collector");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State::default());
        let (shutdown, rx) = watch::channel(false);
        tokio::spawn(accept(listener, state.clone(), rx));
        Collector {
            addr,
            state,
            shutdown,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answer every export with `status` (HTTP), or accept them again (`None`).
    pub fn fail_with(&self, status: Option<u16>) {
        *self.state.fail.lock().unwrap() = status;
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.state.spans.lock().unwrap().clone()
    }

    /// Forget the spans received so far (a long benchmark keeps memory flat).
    pub fn clear(&self) {
        self.state.spans.lock().unwrap().clear();
    }

    pub fn exports(&self) -> usize {
        *self.state.exports.lock().unwrap()
    }

    pub fn last_headers(&self) -> Vec<(String, String)> {
        self.state.last_headers.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for the spans received; returns them.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Result<Vec<ReceivedSpan>, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.state.notify.notified();
            let spans = self.spans();
            if pred(&spans) {
                return Ok(spans);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let spans = self.spans();
                if pred(&spans) {
                    return Ok(spans);
                }
                return Err(format!(
                    "fake collector: {what} not seen within {timeout:?}; got {} span(s): {:?}",
                    spans.len(),
                    spans.iter().map(|s| &s.name).collect::<Vec<_>>()
                ));
            }
        }
    }

    /// Waits until at least `n` export requests arrived.
    pub async fn wait_for_exports(&self, n: usize, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.state.notify.notified();
            if self.exports() >= n {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(format!(
                    "fake collector: wanted {n} export requests within {timeout:?}, got {}",
                    self.exports()
                ));
            }
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

async fn accept(listener: TcpListener, state: Arc<State>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r { Ok(c) => c, Err(_) => continue },
            _ = shutdown.changed() => return,
        };
        let state = state.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(state.clone(), req));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(tcp), svc);
            tokio::select! {
                _ = conn => {}
                _ = stop.changed() => {}
            }
        });
    }
}

type Body = BoxBody<Bytes, Infallible>;

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let grpc = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let path = req.uri().path().to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    *state.last_headers.lock().unwrap() = headers;
    *state.exports.lock().unwrap() += 1;
    let fail = *state.fail.lock().unwrap();
    let resp = match fail {
        Some(status) => {
            state.notify.notify_waiters();
            Response::builder()
                .status(status)
                .body(Full::new(Bytes::new()).boxed())
                .unwrap()
        }
        None => {
            let msg = if grpc {
                let mut b = body.clone();
                if b.len() < 5 {
                    Bytes::new()
                } else {
                    b.advance(1);
                    let n = b.get_u32() as usize;
                    b.slice(..n.min(b.len()))
                }
            } else {
                body.clone()
            };
            let ok = (path.ends_with("/v1/traces") || path.ends_with("TraceService/Export"))
                && record(&state, &msg, if grpc { "grpc" } else { "http" });
            state.notify.notify_waiters();
            if grpc {
                let frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
                    Ok(Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0]))),
                    Ok(Frame::trailers({
                        let mut t = hyper::HeaderMap::new();
                        t.insert("grpc-status", if ok { "0" } else { "3" }.parse().unwrap());
                        t
                    })),
                ];
                Response::builder()
                    .header("content-type", "application/grpc")
                    .body(StreamBody::new(futures_util::stream::iter(frames)).boxed())
                    .unwrap()
            } else {
                Response::builder()
                    .status(if ok { 200 } else { 400 })
                    .header("content-type", "application/x-protobuf")
                    .body(Full::new(Bytes::new()).boxed())
                    .unwrap()
            }
        }
    };
    Ok(resp)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn attr(v: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> Attr {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => Attr::Str(s.clone()),
        Some(any_value::Value::IntValue(i)) => Attr::Int(*i),
        Some(any_value::Value::DoubleValue(f)) => Attr::Float(*f),
        Some(any_value::Value::BoolValue(b)) => Attr::Bool(*b),
        Some(any_value::Value::ArrayValue(a)) => {
            Attr::List(a.values.iter().map(|v| attr(Some(v))).collect())
        }
        _ => Attr::Other,
    }
}

fn attrs(kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> HashMap<String, Attr> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), attr(kv.value.as_ref())))
        .collect()
}

fn record(state: &State, msg: &[u8], transport: &'static str) -> bool {
    let Ok(req) = ExportTraceServiceRequest::decode(msg) else {
        return false;
    };
    let mut out = state.spans.lock().unwrap();
    for rs in req.resource_spans {
        let resource = rs
            .resource
            .as_ref()
            .map(|r| attrs(&r.attributes))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                out.push(ReceivedSpan {
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    trace_state: s.trace_state.clone(),
                    name: s.name.clone(),
                    kind: s.kind,
                    attrs: attrs(&s.attributes),
                    status_code: s.status.as_ref().map_or(0, |st| st.code),
                    start_unix_nano: s.start_time_unix_nano,
                    end_unix_nano: s.end_time_unix_nano,
                    resource: resource.clone(),
                    transport,
                });
            }
        }
    }
    true
}
