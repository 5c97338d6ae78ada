//! Proxy behaviour the README promises, through the real binary: OpenAI vs
//! Anthropic error shapes for 404/502/504, credential stripping on OpenAI
//! routes with `backendAuth`, brotli and zstd bodies end to end (with and
//! without a body-reading policy), and a stream that outlives the route's
//! `requestTimeout`.

use crate::common::*;
use crate::coverage_admin::{chat_body, claude_body, poll, route, BINDS};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::{json, Value};
use sluice_testkit::client::TestClient;
use sluice_testkit::sse::parse_all;
use sluice_testkit::{FakeUpstream, Gateway, Resp, Script};
use std::cell::RefCell;
use std::io::{Read as _, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A loopback port that is bound but not listening: connecting to it is
/// refused, and no other test can take it while this is held.
fn closed_port() -> (tokio::net::TcpSocket, SocketAddr) {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = s.local_addr().unwrap();
    (s, addr)
}

/// The OpenAI error envelope, and nothing of Anthropic's.
fn assert_openai_error(v: &Value, ty: &str, what: &str) {
    let e = &v["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {v}"
    );
    assert_eq!(e["type"], ty, "{what}: {v}");
    assert_eq!(e["code"], ty, "{what}: {v}");
    assert!(e.get("param").is_some_and(Value::is_null), "{what}: {v}");
    assert!(
        v.get("type").is_none(),
        "{what}: an OpenAI error has no top-level type: {v}"
    );
}

fn assert_anthropic_error(v: &Value, ty: &str, what: &str) {
    assert_eq!(v["type"], "error", "{what}: {v}");
    assert_eq!(v["error"]["type"], ty, "{what}: {v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: {v}"
    );
    assert!(v["error"].get("code").is_none(), "{what}: {v}");
}

#[tokio::test]
async fn error_shapes_of_404_502_504_follow_the_provider() {
    let slow = FakeUpstream::plain().await;
    slow.set_script(Script::default().hang());
    let (_held, closed) = closed_port();
    let timeout = "    timeout:\n      requestTimeout: 1s\n";
    let cfg_text = format!(
        "{BINDS}routes:\n{}{}{}{}",
        route("claude-down", "anthropic", closed, ""),
        route("codex-down", "openAI", closed, ""),
        route("claude-slow", "anthropic", slow.addr(), timeout),
        route("codex-slow", "openAI", slow.addr(), timeout),
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "shapes.yaml", &cfg_text);
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    let c = TestClient::new();
    let anth = h(&[("x-api-key", "k"), ("anthropic-version", "2023-06-01")]);
    let oai = h(&[("authorization", "Bearer k")]);

    // 404: no route. The shape follows what the client looks like.
    let r = c
        .post_json(&gw.url(4060, "/v1/chat/completions"), &oai, &chat_body())
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_openai_error(&r.json(), "not_found", "404 openai");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/v1/chat/completions"));
    let r = c
        .post_json(
            &gw.url(4060, "/v1/responses"),
            &oai,
            &json!({"model": "gpt-5", "input": "hi"}),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_openai_error(&r.json(), "not_found", "404 openai responses");
    let r = c
        .post_json(&gw.url(4060, "/v1/messages"), &anth, &claude_body())
        .await;
    assert_eq!(r.status, 404);
    assert_anthropic_error(&r.json(), "not_found_error", "404 anthropic");

    // 502: the upstream refuses the connection.
    let r = c
        .post_json(
            &gw.url(4060, "/codex-down/v1/chat/completions"),
            &oai,
            &chat_body(),
        )
        .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_openai_error(&r.json(), "server_error", "502 openai");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("unreachable"));
    let r = c
        .post_json(
            &gw.url(4060, "/claude-down/v1/messages"),
            &anth,
            &claude_body(),
        )
        .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_anthropic_error(&r.json(), "api_error", "502 anthropic");

    // 504: the upstream took the request and never answered.
    let r = c
        .post_json(
            &gw.url(4060, "/codex-slow/v1/chat/completions"),
            &oai,
            &chat_body(),
        )
        .await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert_openai_error(&r.json(), "timeout", "504 openai");
    let r = c
        .post_json(
            &gw.url(4060, "/claude-slow/v1/messages"),
            &anth,
            &claude_body(),
        )
        .await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert_anthropic_error(&r.json(), "timeout_error", "504 anthropic");
    let got = slow.requests();
    assert_eq!(got.len(), 2, "both timed-out requests reached the upstream");
    assert_eq!(got[0].path, "/v1/chat/completions");
    assert_eq!(got[1].path, "/v1/messages");
}

#[tokio::test]
async fn openai_route_with_backend_auth_sends_only_the_gateway_bearer() {
    let p = Provider::tls().await;
    let gw = pattern2(&p).await;
    let c = TestClient::new();
    // Everything a client (or an attacker) might send as a credential,
    // including duplicates, odd case and a Connection header naming them.
    let hostile = h(&[
        ("x-api-key", "sk-ant-client-key-1"),
        ("X-Api-Key", "sk-ant-client-key-2"),
        ("authorization", "Bearer sk-client-token-1"),
        ("Authorization", "Basic Y2xpZW50OnNlY3JldA=="),
        ("proxy-authorization", "Bearer sk-client-proxy"),
        ("connection", "keep-alive, x-api-key"),
    ]);
    let r = c
        .post_json(
            &gw.url(4060, "/codex/v1/chat/completions"),
            &hostile,
            &chat_body(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let u = p.upstream.last_request().unwrap();
    assert_eq!(u.path, "/v1/chat/completions");
    assert_eq!(u.sni.as_deref(), Some("api.openai.com"));
    assert_eq!(
        u.header_all("authorization"),
        vec![format!("Bearer {OPENAI_KEY}").as_str()],
        "{:?}",
        u.headers
    );
    assert!(u.header_all("x-api-key").is_empty(), "{:?}", u.headers);
    assert!(u.header("proxy-authorization").is_none(), "{:?}", u.headers);
    let all = format!("{:?}", u.headers);
    for leaked in ["sk-ant-client", "sk-client", "Y2xpZW50"] {
        assert!(
            !all.contains(leaked),
            "a client credential reached the upstream: {all}"
        );
    }

    // Responses API on the same route, same rule.
    let r = c
        .post_json(
            &gw.url(4060, "/codex/v1/responses"),
            &hostile,
            &json!({"model": "gpt-5", "input": "hi"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let u = p.upstream.last_request().unwrap();
    assert_eq!(u.path, "/v1/responses");
    assert_eq!(
        u.header_all("authorization"),
        vec![format!("Bearer {OPENAI_KEY}").as_str()]
    );
    assert!(u.header_all("x-api-key").is_empty(), "{:?}", u.headers);

    // The Anthropic route does the mirror image: only its x-api-key.
    let r = c
        .post_json(
            &gw.url(4060, "/claude/v1/messages"),
            &hostile,
            &claude_body(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let u = p.upstream.last_request().unwrap();
    assert_eq!(u.header_all("x-api-key"), vec![ANTHROPIC_KEY]);
    assert!(u.header_all("authorization").is_empty(), "{:?}", u.headers);
    assert_eq!(p.upstream.requests().len(), 3);
    assert!(!gw.logs().contains(OPENAI_KEY) && !gw.logs().contains("sk-client-token-1"));
}

// ---------- brotli and zstd ----------

/// A `Write` whose bytes can be taken while the encoder keeps it.
#[derive(Clone, Default)]
struct Sink(Rc<RefCell<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sink {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut self.0.borrow_mut())
    }
}

/// Compress `pieces` as one `enc` stream, flushed after each piece, so
/// each piece's bytes can go out as their own chunk.
fn compress(enc: &str, pieces: &[String]) -> Vec<Vec<u8>> {
    let sink = Sink::default();
    let mut out = Vec::new();
    match enc {
        "br" => {
            let mut w = brotli::CompressorWriter::new(sink.clone(), 4096, 5, 22);
            for p in pieces {
                w.write_all(p.as_bytes()).unwrap();
                w.flush().unwrap();
                out.push(sink.take());
            }
            drop(w.into_inner());
        }
        "zstd" => {
            let mut w = zstd::stream::write::Encoder::new(sink.clone(), 3).unwrap();
            for p in pieces {
                w.write_all(p.as_bytes()).unwrap();
                w.flush().unwrap();
                out.push(sink.take());
            }
            w.finish().unwrap();
        }
        other => panic!("unknown encoding {other}"),
    }
    out.push(sink.take());
    out.retain(|c| !c.is_empty());
    out
}

fn decompress(enc: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match enc {
        "br" => {
            brotli::Decompressor::new(data, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        "zstd" => out = zstd::decode_all(data).unwrap(),
        other => panic!("unknown encoding {other}"),
    }
    out
}

fn sse(name: Option<&str>, data: &Value) -> String {
    sluice_testkit::sse::format_event(name, &data.to_string())
}

/// The pieces of a provider answer: JSON (one piece) or SSE (one per event).
fn answer(path: &str, stream: bool, text: &str, tin: u64, tout: u64) -> Vec<String> {
    let anthropic = path.ends_with("/messages");
    match (anthropic, stream) {
        (true, false) => vec![
            json!({"id": "msg_c", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5", "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": tin, "output_tokens": tout}})
            .to_string(),
        ],
        (true, true) => {
            let (a, b) = text.split_at(text.len() / 2);
            let mut v = vec![sse(
                Some("message_start"),
                &json!({"type": "message_start", "message": {"id": "msg_c", "type": "message",
                    "role": "assistant", "model": "claude-sonnet-4-5", "content": [],
                    "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": tin, "output_tokens": 1}}}),
            )];
            for d in [a, b] {
                v.push(sse(
                    Some("content_block_delta"),
                    &json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": d}}),
                ));
            }
            v.push(sse(
                Some("message_delta"),
                &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": tout}}),
            ));
            v.push(sse(Some("message_stop"), &json!({"type": "message_stop"})));
            v
        }
        (false, false) => vec![json!({"id": "chatcmpl-c", "object": "chat.completion",
            "created": 0, "model": "gpt-5",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                "finish_reason": "stop"}],
            "usage": {"prompt_tokens": tin, "completion_tokens": tout,
                "total_tokens": tin + tout}})
        .to_string()],
        (false, true) => {
            let chunk = |delta: Value, fin: Value| {
                sse(
                    None,
                    &json!({"id": "chatcmpl-c", "object": "chat.completion.chunk",
                    "created": 0, "model": "gpt-5",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": fin}]}),
                )
            };
            vec![
                chunk(json!({"role": "assistant", "content": text}), Value::Null),
                chunk(json!({}), json!("stop")),
                sse(
                    None,
                    &json!({"id": "chatcmpl-c", "object": "chat.completion.chunk",
                    "created": 0, "model": "gpt-5", "choices": [],
                    "usage": {"prompt_tokens": tin, "completion_tokens": tout,
                        "total_tokens": tin + tout}}),
                ),
                "data: [DONE]\n\n".to_string(),
            ]
        }
    }
}

/// What the compressing upstream received and sent, per request.
#[derive(Clone, Debug)]
struct Exchange {
    path: String,
    headers: Vec<(String, String)>,
    sent: Vec<u8>,
}

/// An upstream answering in `x-test-encoding` (br or zstd) with
/// `x-test-in`/`x-test-out` tokens, JSON with a length or SSE chunked.
struct Compressing {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Exchange>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Compressing {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const TEXT: &str = "Write to dev.lead@example.com for the keys.";

impl Compressing {
    async fn start() -> Compressing {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log: Arc<Mutex<Vec<Exchange>>> = Arc::default();
        let log2 = log.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let log = log2.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let log = log.clone();
                            async move {
                                Ok::<_, std::convert::Infallible>(Self::respond(req, log).await)
                            }
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
                });
            }
        });
        Compressing { addr, log, task }
    }

    async fn respond(
        req: hyper::Request<hyper::body::Incoming>,
        log: Arc<Mutex<Vec<Exchange>>>,
    ) -> hyper::Response<http_body_util::combinators::BoxBody<Bytes, std::io::Error>> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let get = |n: &str| {
            parts
                .headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        let enc = get("x-test-encoding").to_string();
        let tin: u64 = get("x-test-in").parse().unwrap_or(1);
        let tout: u64 = get("x-test-out").parse().unwrap_or(1);
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let stream = json["stream"] == true;
        let path = parts.uri.path().to_string();
        let chunks = compress(&enc, &answer(&path, stream, TEXT, tin, tout));
        log.lock().unwrap().push(Exchange {
            path,
            headers,
            sent: chunks.concat(),
        });
        let b = hyper::Response::builder()
            .status(200)
            .header("content-encoding", enc.as_str())
            .header("vary", "accept-encoding");
        if stream {
            let frames = futures_util::stream::iter(
                chunks
                    .into_iter()
                    .map(|c| Ok::<_, std::io::Error>(Frame::data(Bytes::from(c)))),
            );
            b.header("content-type", "text/event-stream")
                .body(BodyExt::boxed(StreamBody::new(frames)))
                .unwrap()
        } else {
            b.header("content-type", "application/json")
                .body(
                    Full::new(Bytes::from(chunks.concat()))
                        .map_err(|never| match never {})
                        .boxed(),
                )
                .unwrap()
        }
    }

    fn exchanges(&self) -> Vec<Exchange> {
        self.log.lock().unwrap().clone()
    }
}

/// Sum of `sluice_tokens_total` for `route` and `direction` in a scrape.
fn tokens_metric(metrics: &str, route: &str, direction: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("sluice_tokens_total{"))
        .filter(|l| l.contains(&format!("route=\"{route}\"")))
        .filter(|l| l.contains(&format!("direction=\"{direction}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The text an answer carries, whatever its shape.
fn answer_text(body: &[u8], stream: bool) -> String {
    if !stream {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        return v["content"][0]["text"]
            .as_str()
            .or(v["choices"][0]["message"]["content"].as_str())
            .unwrap_or_default()
            .to_string();
    }
    parse_all(body)
        .iter()
        .map(|e| {
            let v = e.json();
            v["delta"]["text"]
                .as_str()
                .or(v["choices"][0]["delta"]["content"].as_str())
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn brotli_and_zstd_pass_through_and_usage_is_still_read() {
    let up = Compressing::start().await;
    let masking = "    outputFilter:\n      maskPatterns:\n      - email\n";
    let cfg_text = format!(
        "{BINDS}routes:\n{}{}{}",
        route("claude", "anthropic", up.addr, ""),
        route("codex", "openAI", up.addr, ""),
        route("masked", "anthropic", up.addr, masking),
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "enc.yaml", &cfg_text);
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    let c = TestClient::new();
    let mut expected: std::collections::HashMap<&str, (u64, u64)> = Default::default();
    let mut n = 0u64;
    for (route_name, api) in [
        ("claude", "/v1/messages"),
        ("codex", "/v1/chat/completions"),
        ("masked", "/v1/messages"),
    ] {
        for enc in ["br", "zstd"] {
            for stream in [false, true] {
                n += 1;
                let (tin, tout) = (1000 + n, 2000 + n);
                let what = format!("{route_name} {enc} stream={stream}");
                let mut body = if api == "/v1/messages" {
                    claude_body()
                } else {
                    chat_body()
                };
                body["stream"] = json!(stream);
                if api != "/v1/messages" && stream {
                    body["stream_options"] = json!({"include_usage": true});
                }
                let (tin_s, tout_s) = (tin.to_string(), tout.to_string());
                let headers = h(&[
                    ("x-api-key", "k"),
                    ("authorization", "Bearer k"),
                    ("accept-encoding", enc),
                    ("x-test-encoding", enc),
                    ("x-test-in", tin_s.as_str()),
                    ("x-test-out", tout_s.as_str()),
                ]);
                let r: Resp = c
                    .post_json(
                        &gw.url(4060, &format!("/{route_name}{api}")),
                        &headers,
                        &body,
                    )
                    .await;
                assert_eq!(
                    r.status,
                    200,
                    "{what}: {}",
                    String::from_utf8_lossy(&r.body)
                );
                let ex = up.exchanges().pop().expect("reached the upstream");
                assert_eq!(ex.path, api, "{what}");
                let accept = ex.headers.iter().find(|(k, _)| k == "accept-encoding");
                assert_eq!(accept.map(|(_, v)| v.as_str()), Some(enc), "{what}");
                let plain = if route_name == "masked" {
                    // The filter reads the body: it goes out decoded, masked.
                    assert_eq!(r.header("content-encoding"), None, "{what}");
                    assert_ne!(r.body.to_vec(), ex.sent, "{what}");
                    r.body.to_vec()
                } else {
                    // Nothing rewrites it: the client gets the upstream's bytes.
                    assert_eq!(r.header("content-encoding"), Some(enc), "{what}");
                    assert!(
                        r.body.to_vec() == ex.sent,
                        "{what}: the bytes changed on the way"
                    );
                    decompress(enc, &r.body)
                };
                let text = answer_text(&plain, stream);
                if route_name == "masked" {
                    assert!(!text.contains("example.com"), "{what}: {text}");
                    assert!(text.contains("Write to "), "{what}: {text}");
                } else {
                    assert_eq!(text, TEXT, "{what}");
                }
                if stream {
                    let ct = r.header("content-type").unwrap_or_default();
                    assert!(ct.starts_with("text/event-stream"), "{what}: {ct}");
                }
                // Usage read through the compression into the access log.
                let (tin_l, tout_l) = (
                    format!("input_tokens={tin} "),
                    format!("output_tokens={tout} "),
                );
                poll(
                    &format!("{what}: usage in the access log"),
                    Duration::from_secs(10),
                    || {
                        let logs = gw.logs();
                        let hit = logs.lines().any(|l| {
                            l.contains("sluice::access")
                                && l.contains(&tin_l)
                                && l.contains(&tout_l)
                        });
                        async move { hit.then_some(()) }
                    },
                )
                .await;
                let e = expected.entry(route_name).or_default();
                e.0 += tin;
                e.1 += tout;
            }
        }
    }
    let m = c.get(&gw.admin_url("/metrics")).await.text();
    for (route_name, (tin, tout)) in expected {
        assert_eq!(
            tokens_metric(&m, route_name, "input"),
            tin,
            "{route_name}\n{m}"
        );
        assert_eq!(
            tokens_metric(&m, route_name, "output"),
            tout,
            "{route_name}\n{m}"
        );
    }
}

#[tokio::test]
async fn a_stream_longer_than_request_timeout_is_not_cut() {
    // `requestTimeout` bounds the time to the response headers, not the
    // stream (README: "time to response headers").
    let up = FakeUpstream::plain().await;
    let deltas: Vec<String> = (0..8).map(|i| format!("part{i} ")).collect();
    up.set_script(
        Script::default()
            .deltas(deltas.clone())
            .event_delay(Duration::from_millis(300)),
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "t.yaml",
        &format!(
            "{BINDS}routes:\n{}",
            route(
                "claude",
                "anthropic",
                up.addr(),
                "    timeout:\n      requestTimeout: 1s\n"
            )
        ),
    );
    let gw: Gateway = gateway(&[&cfg], &[4060], &[], &[]).await;
    let mut body = claude_body();
    body["stream"] = json!(true);
    let s = TestClient::new()
        .stream_sse_full(
            &gw.url(4060, "/claude/v1/messages"),
            &h(&[("x-api-key", "k")]),
            &body,
        )
        .await;
    assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.raw));
    assert!(s.error.is_none(), "the stream was cut: {:?}", s.error);
    let text: String = s
        .events
        .iter()
        .filter_map(|(_, e)| e.json()["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, deltas.concat());
    assert_eq!(s.names().last().map(String::as_str), Some("message_stop"));
    // The test means something only if the stream really outlived the timeout.
    let sent = up.event_send_times();
    let req_at = up.last_request().unwrap().at;
    assert!(
        *sent.last().unwrap() - req_at > Duration::from_millis(1500),
        "the scripted stream was shorter than the timeout"
    );
    gw.wait_for_log("output_tokens=7", Duration::from_secs(5))
        .await
        .unwrap();
    let logs = gw.logs();
    let access = logs
        .lines()
        .find(|l| l.contains("sluice::access") && l.contains("route=claude"))
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(access.contains("status=200"), "{access}");
    assert!(!access.contains("error="), "{access}");
}
