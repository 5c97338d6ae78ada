//! The fake provider behind every proxy under test: an Anthropic
//! `/v1/messages` endpoint that answers JSON, or 16 SSE events when the body
//! asks for `"stream":true`. With `x-bench-hold: 1` it sends the first
//! event, then holds the stream open until [`Upstream::release`] (the
//! memory scenario's thousand open streams).
//!
//! Lean on purpose (nothing recorded): its CPU is not measured, but it
//! shares a core with the load generator.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::watch;

pub const REPLY: &str = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Hello! Reach me at the usual place."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":11,"output_tokens":7}}"#;

/// The same answer as Chat Completions JSON (the translated route's backend).
pub const CHAT_REPLY: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-5","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! Reach me at the usual place."},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}"#;

/// Events per stream, as in the issue's measurements.
pub const SSE_EVENTS: usize = 16;

/// The 16 events of one streamed answer: start, block start, 11 text
/// deltas, block stop, message delta (usage), stop.
pub fn sse_events() -> Vec<Bytes> {
    let mut out = vec![
        r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":11,"cache_read_input_tokens":0,"output_tokens":1}}}

"#
        .to_string(),
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n".to_string(),
    ];
    for i in 0..(SSE_EVENTS - 5) {
        out.push(format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"word {i} of a streamed answer \"}}}}\n\n"
        ));
    }
    out.push(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n".into(),
    );
    out.push("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":40}}\n\n".into());
    out.push("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".into());
    assert_eq!(out.len(), SSE_EVENTS);
    out.into_iter().map(Bytes::from).collect()
}

/// The same streamed answer as Chat Completions chunks: a role chunk, the
/// 11 text deltas, the finish chunk, the usage chunk (`include_usage`) and
/// `[DONE]`, so a translated stream carries as many text events.
pub fn chat_events() -> Vec<Bytes> {
    let chunk = |delta: &str, finish: &str, usage: &str| {
        format!(
            "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-5\",\"choices\":[{{\"index\":0,\"delta\":{{{delta}}},\"finish_reason\":{finish}}}]{usage}}}\n\n"
        )
    };
    let mut out = vec![chunk("\"role\":\"assistant\",\"content\":\"\"", "null", "")];
    for i in 0..(SSE_EVENTS - 5) {
        out.push(chunk(
            &format!("\"content\":\"word {i} of a streamed answer \""),
            "null",
            "",
        ));
    }
    out.push(chunk("", "\"stop\"", ""));
    out.push("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-5\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":40,\"total_tokens\":51}}\n\n".into());
    out.push("data: [DONE]\n\n".into());
    out.into_iter().map(Bytes::from).collect()
}

pub struct Upstream {
    pub addr: SocketAddr,
    release: watch::Sender<u64>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (release, rx) = watch::channel(0u64);
        let events = (sse_events(), chat_events());
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else { return };
                let _ = s.set_nodelay(true);
                let (rx, events) = (rx.clone(), events.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (rx, events) = (rx.clone(), events.clone());
                        async move { Ok::<_, Infallible>(answer(req, rx, events).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        Upstream { addr, release }
    }

    /// Let every held stream finish.
    pub fn release(&self) {
        self.release.send_modify(|n| *n += 1);
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn answer(
    req: Request<Incoming>,
    mut rx: watch::Receiver<u64>,
    (messages, chat): (Vec<Bytes>, Vec<Bytes>),
) -> Response<Body> {
    let hold = req.headers().contains_key("x-bench-hold");
    let is_chat = req.uri().path().ends_with("/chat/completions");
    let (reply, events) = if is_chat {
        (CHAT_REPLY, chat)
    } else {
        (REPLY, messages)
    };
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let streaming = memchr_stream(&body);
    if !streaming {
        let mut r =
            Response::new(http_body_util::Full::new(Bytes::from_static(reply.as_bytes())).boxed());
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        return r;
    }
    let seen = *rx.borrow_and_update();
    let (tx, chunks) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    tokio::spawn(async move {
        for (i, e) in events.into_iter().enumerate() {
            if hold && i == 1 {
                while *rx.borrow_and_update() == seen {
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            }
            if tx.send(Ok(Frame::data(e))).await.is_err() {
                return;
            }
            // One event per write, as a provider produces them.
            tokio::task::yield_now().await;
        }
    });
    let stream = tokio_stream_from(chunks);
    let mut r = Response::new(StreamBody::new(stream).boxed());
    r.headers_mut()
        .insert("content-type", "text/event-stream".parse().unwrap());
    r.headers_mut()
        .insert("cache-control", "no-cache".parse().unwrap());
    r
}

fn memchr_stream(body: &[u8]) -> bool {
    body.windows(13).any(|w| w == b"\"stream\":true")
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
