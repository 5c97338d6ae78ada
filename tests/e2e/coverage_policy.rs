//! Policies through the real binary where the README promises more than the
//! other suites show: a plugin failing after the response headers went out,
//! rate limits keyed by JWT claim and by client IP, `localRateLimit` refill,
//! a chunked body over `maxRequestBodySize`, and config reloads under load.

use crate::common::*;
use crate::coverage_admin::{
    admin_get, admin_post, chat, chat_body, claude, claude_body, poll, route, BINDS,
};
use serde_json::{json, Value};
use sluice::policy::testing::fixture;
use sluice_testkit::client::{SseStream, TestClient};
use sluice_testkit::{FakeUpstream, Gateway, Resp, Script};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// ---------- failures after the headers were sent ----------

/// One route per failing hook; `late` traps, `late-spin` loops into its
/// 50 ms CPU deadline. Both fail closed (the default).
fn late_config(up: std::net::SocketAddr) -> String {
    let wasm = fixture("late-fail").display().to_string();
    let att = |plugin: &str, cfg: &str| format!("    {plugin}: {cfg}\n");
    let mut s = format!(
        "{BINDS}plugins:\n- name: late\n  path: {wasm}\n- name: late-spin\n  path: {wasm}\n  deadline: 50ms\nroutes:\n"
    );
    for (name, provider, extra) in [
        ("ev", "anthropic", att("late", "{hook: event, after: 2}")),
        (
            "spin",
            "anthropic",
            att("late-spin", "{hook: event, after: 2, spin: true}"),
        ),
        ("end", "anthropic", att("late", "{hook: end}")),
        ("body", "anthropic", att("late", "{hook: body}")),
        ("complete", "anthropic", att("late", "{hook: complete}")),
        ("evchat", "openAI", att("late", "{hook: event, after: 2}")),
        ("evresp", "openAI", att("late", "{hook: event, after: 2}")),
        ("bodychat", "openAI", att("late", "{hook: body}")),
        ("fine", "anthropic", String::new()),
    ] {
        s.push_str(&route(name, provider, up, &extra));
    }
    s
}

async fn stream(
    c: &TestClient,
    gw: &Gateway,
    path: &str,
    body: Value,
    auth: &[(&str, &str)],
) -> SseStream {
    c.stream_sse_full(&gw.url(4060, path), &h(auth), &body)
        .await
}

fn streaming(mut v: Value) -> Value {
    v["stream"] = json!(true);
    v
}

/// The stream ended cleanly (no transport error) with exactly one error
/// event, last; returns its JSON.
fn ends_with_one_error_event(s: &SseStream, name: Option<&str>, what: &str) -> Value {
    assert_eq!(s.status, 200, "{what}: {}", String::from_utf8_lossy(&s.raw));
    assert!(
        s.header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream")),
        "{what}"
    );
    assert!(
        s.error.is_none(),
        "{what}: the stream broke instead of closing: {:?}",
        s.error
    );
    let errors: Vec<_> = s
        .events
        .iter()
        .filter(|(_, e)| e.json().get("error").is_some())
        .collect();
    assert_eq!(errors.len(), 1, "{what}: {:?}", s.names());
    let (_, last) = s.events.last().expect("events");
    assert_eq!(last.event.as_deref(), name, "{what}: {:?}", s.names());
    let v = last.json();
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("policy late")),
        "{what}: {v}"
    );
    assert!(
        !v.to_string().contains("boom"),
        "{what}: the plugin's panic text leaked: {v}"
    );
    v
}

#[tokio::test]
async fn policy_failures_after_the_headers_end_the_stream_with_a_provider_error_event() {
    let up = FakeUpstream::plain().await;
    up.set_script(Script::default().deltas(["a", "b", "c", "d"]));
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "late.yaml", &late_config(up.addr()));
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    let c = TestClient::new();
    let anth = [("x-api-key", "k"), ("anthropic-version", "2023-06-01")];
    let oai = [("authorization", "Bearer k")];

    // on-response-event, Anthropic: two events pass, then `event: error`.
    for route_name in ["ev", "spin"] {
        let s = stream(
            &c,
            &gw,
            &format!("/{route_name}/v1/messages"),
            streaming(claude_body()),
            &anth,
        )
        .await;
        let v = ends_with_one_error_event(&s, Some("error"), route_name);
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["error"]["type"], "api_error", "{v}");
        assert_eq!(
            s.names()[..2],
            ["message_start", "content_block_start"],
            "{route_name}"
        );
        assert_eq!(s.events.len(), 3, "{route_name}: {:?}", s.names());
    }
    // on-response-end: every event passed, then the error.
    let s = stream(&c, &gw, "/end/v1/messages", streaming(claude_body()), &anth).await;
    ends_with_one_error_event(&s, Some("error"), "end");
    assert!(
        s.names().contains(&"message_stop".to_string()),
        "{:?}",
        s.names()
    );

    // OpenAI Chat Completions: an unnamed `data: {"error": ..}` event, as
    // OpenAI streams errors; no Anthropic envelope.
    let mut body = streaming(chat_body());
    body["stream_options"] = json!({"include_usage": true});
    let s = stream(&c, &gw, "/evchat/v1/chat/completions", body, &oai).await;
    let v = ends_with_one_error_event(&s, None, "evchat");
    assert!(
        v.get("type").is_none(),
        "an OpenAI error event has no top-level type: {v}"
    );
    assert_eq!(v["error"]["type"], "server_error", "{v}");
    assert_eq!(s.events.len(), 3, "{:?}", s.names());
    assert!(!s.events.iter().any(|(_, e)| e.data == "[DONE]"));
    // OpenAI Responses: named `error`, OpenAI envelope.
    let s = stream(
        &c,
        &gw,
        "/evresp/v1/responses",
        json!({"model": "gpt-5", "input": "hi", "stream": true}),
        &oai,
    )
    .await;
    let v = ends_with_one_error_event(&s, Some("error"), "evresp");
    assert!(v.get("type").is_none(), "{v}");
    assert_eq!(v["error"]["type"], "server_error", "{v}");
    assert_eq!(s.names()[..2], ["response.created", "response.in_progress"]);

    // on-response-body (buffered, so the status is still ours): 500 in the
    // route's shape.
    let r = claude(&c, &gw, "body").await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "api_error");
    let r = chat(&c, &gw, "bodychat").await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.json().get("type").is_none(), "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "server_error");

    // on-complete runs after the body: the client already has all of it.
    let s = stream(
        &c,
        &gw,
        "/complete/v1/messages",
        streaming(claude_body()),
        &anth,
    )
    .await;
    assert_eq!(s.status, 200);
    assert!(s.error.is_none(), "{:?}", s.error);
    assert_eq!(s.names().last().map(String::as_str), Some("message_stop"));
    assert!(!s
        .events
        .iter()
        .any(|(_, e)| e.event.as_deref() == Some("error")));
    assert_eq!(claude(&c, &gw, "complete").await.status, 200);

    // Every request reached the upstream exactly once, and the gateway is fine.
    assert_eq!(up.requests().len(), 9);
    assert_eq!(claude(&c, &gw, "fine").await.status, 200);
    assert_eq!(admin_get(&gw, "/healthz").await.status, 200);
    let m = admin_get(&gw, "/metrics").await.text();
    for (plugin, hook, kind) in [
        ("late", "response_event", "trap"),
        ("late-spin", "response_event", "deadline"),
        ("late", "response_end", "trap"),
        ("late", "response_body", "trap"),
        ("late", "complete", "trap"),
    ] {
        assert!(
            m.lines().any(|l| l.starts_with("sluice_policy_traps")
                && l.contains(&format!("plugin=\"{plugin}\""))
                && l.contains(&format!("hook=\"{hook}\""))
                && l.contains(&format!("kind=\"{kind}\""))),
            "no {plugin}/{hook}/{kind} trap counted:\n{m}"
        );
    }
    let logs = gw.logs();
    assert!(logs.contains("policy failed closed mid-stream"), "{logs}");
    // The guest's own panic text is in the trap reason; a host panic names a thread.
    assert!(!logs.contains("thread '"), "the host panicked: {logs}");
}

// ---------- rate-limit keys ----------

const JWT_SECRET: &str = "coverage-hs256-secret-for-rate-limit-keys";

fn hs256(sub: &str, secret: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"iss": "https://auth.test", "aud": "sluice", "sub": sub,
        "iat": now, "exp": now + 600});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn bearer(c: &TestClient, gw: &Gateway, token: &str) -> Resp {
    let auth = format!("Bearer {token}");
    c.post_json(
        &gw.url(4060, "/claude/v1/messages"),
        &h(&[
            ("authorization", auth.as_str()),
            ("anthropic-version", "2023-06-01"),
        ]),
        &claude_body(),
    )
    .await
}

fn assert_rate_limited(r: &Resp, what: &str) {
    assert_eq!(r.status, 429, "{what}: {}", r.text());
    assert!(r.header("retry-after").is_some(), "{what}");
    assert_eq!(r.json()["type"], "error", "{what}");
    assert_eq!(
        r.json()["error"]["type"],
        "rate_limit_error",
        "{what}: {}",
        r.text()
    );
}

#[tokio::test]
async fn rate_limit_keyed_by_jwt_claim_counts_each_subject_apart() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    // jwt-auth in a layer (layers run first), the limit on the route.
    let layer = "- name: auth\n  matches:\n  - path:\n      pathPrefix: /claude\n  policies:\n    jwtAuth:\n      issuer: https://auth.test\n      audiences: [sluice]\n      secret: $JWT_SECRET\n";
    let limit = "    rateLimit:\n      requestsPerHour: 2\n      key:\n        claim: sub\n";
    let cfg = write(
        dir.path(),
        "claims.yaml",
        &format!(
            "{BINDS}routes:\n{layer}{}",
            route("claude", "anthropic", up.addr(), limit)
        ),
    );
    let gw = gateway(&[&cfg], &[4060], &[], &[("JWT_SECRET", JWT_SECRET)]).await;
    let c = TestClient::new();
    let (alice, bob) = (hs256("alice", JWT_SECRET), hs256("bob", JWT_SECRET));
    assert_eq!(bearer(&c, &gw, &alice).await.status, 200);
    assert_eq!(bearer(&c, &gw, &alice).await.status, 200);
    assert_rate_limited(&bearer(&c, &gw, &alice).await, "alice's third");
    // Another subject from the same IP has its own budget.
    let r = bearer(&c, &gw, &bob).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ratelimit-remaining"), Some("1"));
    // A fresh token for alice is still alice.
    assert_rate_limited(
        &bearer(&c, &gw, &hs256("alice", JWT_SECRET)).await,
        "alice again",
    );
    // A forged token for a new subject is refused by auth, not counted.
    let r = bearer(&c, &gw, &hs256("mallory", "not-the-secret")).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "authentication_error");
    let reqs = up.requests();
    assert_eq!(reqs.len(), 3, "only the allowed requests went upstream");
    assert!(
        reqs.iter().all(|r| r.header("authorization").is_none()),
        "the JWT stays at the gateway"
    );
}

/// POST over a fresh HTTP/1.1 connection made from `from` (any 127/8
/// address works on loopback), with `body` as given: a stream body goes out
/// chunked, without Content-Length.
async fn raw_post<B>(
    from: Ipv4Addr,
    to: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: B,
) -> Resp
where
    B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(std::net::SocketAddr::new(IpAddr::V4(from), 0))
        .unwrap();
    let tcp = tokio::time::timeout(Duration::from_secs(10), sock.connect(to))
        .await
        .expect("connect timed out")
        .expect("connect");
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut req = hyper::Request::post(path)
        .header("host", to.to_string())
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = tokio::time::timeout(
        Duration::from_secs(30),
        send.send_request(req.body(body).unwrap()),
    )
    .await
    .expect("response timed out")
    .expect("response");
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    use http_body_util::BodyExt as _;
    let body = tokio::time::timeout(Duration::from_secs(30), resp.into_body().collect())
        .await
        .expect("body timed out")
        .expect("body")
        .to_bytes();
    Resp {
        status,
        headers,
        body,
    }
}

async fn claude_from(ip: Ipv4Addr, gw: &Gateway, extra: &[(&str, &str)]) -> Resp {
    let mut headers = vec![("x-api-key", "k"), ("anthropic-version", "2023-06-01")];
    headers.extend_from_slice(extra);
    let body = http_body_util::Full::new(bytes::Bytes::from(claude_body().to_string()));
    raw_post(ip, gw.addr(4060), "/claude/v1/messages", &headers, body).await
}

#[tokio::test]
async fn rate_limit_keyed_by_ip_counts_each_client_address_apart() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let limit = "    rateLimit:\n      requestsPerHour: 2\n      key: ip\n";
    let cfg = write(
        dir.path(),
        "ip.yaml",
        &format!(
            "{BINDS}routes:\n{}",
            route("claude", "anthropic", up.addr(), limit)
        ),
    );
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    let one = Ipv4Addr::new(127, 0, 0, 1);
    let two = Ipv4Addr::new(127, 0, 0, 2);
    assert_eq!(claude_from(one, &gw, &[]).await.status, 200);
    assert_eq!(claude_from(one, &gw, &[]).await.status, 200);
    assert_rate_limited(&claude_from(one, &gw, &[]).await, "127.0.0.1's third");
    // A client claiming to be someone else via X-Forwarded-For is still itself.
    let spoof = [("x-forwarded-for", "10.9.8.7"), ("x-real-ip", "10.9.8.7")];
    assert_rate_limited(
        &claude_from(one, &gw, &spoof).await,
        "spoofed x-forwarded-for",
    );
    // Another address has its own budget.
    assert_eq!(claude_from(two, &gw, &[]).await.status, 200);
    assert_eq!(claude_from(two, &gw, &[]).await.status, 200);
    assert_rate_limited(&claude_from(two, &gw, &[]).await, "127.0.0.2's third");
    let reqs = up.requests();
    assert_eq!(reqs.len(), 4);
    let xff: Vec<&str> = reqs
        .iter()
        .filter_map(|r| r.header("x-forwarded-for"))
        .collect();
    assert_eq!(xff, ["127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.2"]);
}

#[tokio::test]
async fn local_rate_limit_refills_after_the_fill_interval() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    // 2 tokens, 1 back per second: whether tokens come back one per interval
    // (a bucket) or all at once after refilling from empty (a window of 2 s),
    // a refused client is served again within a few seconds, and never more
    // than 2 × maxTokens pass in a burst.
    let bucket = "    localRateLimit:\n    - maxTokens: 2\n      tokensPerFill: 1\n      fillInterval: 1s\n      type: requests\n";
    let cfg = write(
        dir.path(),
        "bucket.yaml",
        &format!(
            "{BINDS}routes:\n{}",
            route("claude", "anthropic", up.addr(), bucket)
        ),
    );
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    let c = TestClient::new();
    let mut passed = 0;
    let refused = loop {
        let r = claude(&c, &gw, "claude").await;
        if r.status == 429 {
            break r;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        passed += 1;
        assert!(passed <= 4, "the bucket never emptied");
    };
    assert!(passed >= 2, "a full bucket allows maxTokens: {passed}");
    assert_rate_limited(&refused, "empty bucket");
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "retry-after {retry}");
    assert_eq!(up.requests().len(), passed);

    // Refill: poll (generous bound; no timing asserted beyond it).
    let mut refusals = 1;
    poll("the bucket refills", Duration::from_secs(10), || {
        let (c, gw) = (&c, &gw);
        refusals += 1;
        async move {
            let r = claude(c, gw, "claude").await;
            match r.status {
                200 => Some(()),
                429 => None,
                other => panic!("unexpected {other}: {}", r.text()),
            }
        }
    })
    .await;
    assert_eq!(
        up.requests().len(),
        passed + 1,
        "refused requests never go upstream"
    );
    assert!(refusals > 1);
}

// ---------- chunked body over the limit ----------

async fn post_chunked(
    gw: &Gateway,
    path: &str,
    headers: &[(&str, &str)],
    pieces: Vec<Vec<u8>>,
) -> Resp {
    let frames = futures_util::stream::iter(
        pieces
            .into_iter()
            .map(|p| Ok::<_, std::io::Error>(hyper::body::Frame::data(bytes::Bytes::from(p)))),
    );
    let body = http_body_util::StreamBody::new(frames);
    raw_post(Ipv4Addr::LOCALHOST, gw.addr(4060), path, headers, body).await
}

/// A JSON body of about `len` bytes, in 1 KiB pieces.
fn pieces_of(len: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut body = claude_body();
    body["messages"][0]["content"] = json!("x".repeat(len));
    let bytes = body.to_string().into_bytes();
    let pieces = bytes.chunks(1024).map(<[u8]>::to_vec).collect();
    (bytes, pieces)
}

#[tokio::test]
async fn a_chunked_body_over_max_request_body_size_is_413_and_never_sent() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let iv = "    inputValidation:\n      maxRequestBodySize: 4KB\n";
    let cfg = write(
        dir.path(),
        "size.yaml",
        &format!(
            "{BINDS}routes:\n{}{}",
            route("claude", "anthropic", up.addr(), iv),
            route("codex", "openAI", up.addr(), iv)
        ),
    );
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    let anth = [("x-api-key", "k"), ("anthropic-version", "2023-06-01")];

    // Under the limit, chunked: forwarded whole.
    let (small, pieces) = pieces_of(3000);
    let r = post_chunked(&gw, "/claude/v1/messages", &anth, pieces).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let u = up.last_request().unwrap();
    assert_eq!(u.body.to_vec(), small, "the small body arrived intact");

    // Over it, with no Content-Length to refuse early on.
    let (big, pieces) = pieces_of(64 * 1024);
    assert!(big.len() > 4096);
    let r = post_chunked(&gw, "/claude/v1/messages", &anth, pieces).await;
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "request_too_large", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("4000"),
        "{v}"
    );

    let (_, pieces) = pieces_of(64 * 1024);
    let r = post_chunked(
        &gw,
        "/codex/v1/chat/completions",
        &[("authorization", "Bearer k")],
        pieces,
    )
    .await;
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert!(v.get("type").is_none(), "{v}");
    assert!(v["error"]["message"].as_str().is_some(), "{v}");
    assert_eq!(
        up.requests().len(),
        1,
        "nothing over the limit went upstream"
    );
}

// ---------- config reload under load ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_reloads_under_load_fail_no_request() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let text = |extra: bool| {
        let mut s = format!(
            "{BINDS}routes:\n{}{}",
            route("claude", "anthropic", up.addr(), ""),
            route("codex", "openAI", up.addr(), "")
        );
        if extra {
            s.push_str(&route("extra", "anthropic", up.addr(), ""));
        }
        s
    };
    let cfg = write(dir.path(), "sluice.yaml", &text(false));
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    let urls = (
        gw.url(4060, "/claude/v1/messages"),
        gw.url(4060, "/codex/v1/chat/completions"),
    );
    let stop = Arc::new(AtomicBool::new(false));
    // (path, status or None when the request failed)
    type Seen = Vec<(String, Option<u16>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let mut loops = Vec::new();
    for i in 0..4 {
        let (stop, seen, urls) = (stop.clone(), seen.clone(), urls.clone());
        loops.push(tokio::spawn(async move {
            let c = TestClient::new();
            while !stop.load(Ordering::Relaxed) {
                let (what, url, body, auth) = if i % 2 == 0 {
                    ("claude", &urls.0, claude_body(), ("x-api-key", "k"))
                } else {
                    ("codex", &urls.1, chat_body(), ("authorization", "Bearer k"))
                };
                let mut rb = c.reqwest().post(url.as_str()).header(auth.0, auth.1);
                rb = rb
                    .header("content-type", "application/json")
                    .body(body.to_string());
                let st = match rb.send().await {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        r.bytes().await.ok().map(|_| s)
                    }
                    Err(_) => None,
                };
                seen.lock().unwrap().push((what.to_string(), st));
            }
        }));
    }
    poll("the load is running", Duration::from_secs(10), || async {
        (up.requests().len() >= 8).then_some(())
    })
    .await;

    let c = TestClient::new();
    let mut last = 1;
    for round in 0..6 {
        let extra = round % 2 == 0;
        std::fs::write(&cfg, text(extra)).unwrap();
        let r = admin_post(&gw, "/config/reload").await;
        assert_eq!(r.status, 200, "round {round}: {}", r.text());
        assert_eq!(r.json()["result"], "swapped", "round {round}");
        let version = r.json()["version"].as_u64().unwrap();
        assert!(version > last, "round {round}: {version} after {last}");
        last = version;
        // Each reload really changed what serves.
        let st = claude(&c, &gw, "extra").await.status;
        assert_eq!(st, if extra { 200 } else { 404 }, "round {round}");
        // And the load made progress across it.
        let n = seen.lock().unwrap().len();
        poll(
            "requests during the reload",
            Duration::from_secs(10),
            || async { (seen.lock().unwrap().len() >= n + 4).then_some(()) },
        )
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.unwrap();
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let failed: Vec<_> = seen.iter().filter(|(_, s)| *s != Some(200)).collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        seen.len()
    );
    assert!(seen.len() >= 24, "too little load: {}", seen.len());
    assert!(seen.iter().any(|(w, _)| w == "codex") && seen.iter().any(|(w, _)| w == "claude"));
    // Every one of them reached the upstream (plus the 3 extra-route probes).
    assert_eq!(up.requests().len(), seen.len() + 3);
    let m = admin_get(&gw, "/metrics").await.text();
    assert!(
        m.contains(r#"sluice_reloads_total{kind="config",result="swapped"} 6"#),
        "{m}"
    );
}
