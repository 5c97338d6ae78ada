//! Several backends per route (issue 21 §3): weights, priority groups,
//! retries and failover before the first byte only, eviction on the
//! provider's Retry-After and on consecutive failures, `GET /backends`, the
//! metrics and access log per attempt, and policies run once per request.

use crate::common::*;
use crate::hardening::raw;
use serde_json::{json, Value};
use sluice_testkit::client::TestClient;
use sluice_testkit::metrics::metric;
use sluice_testkit::{ClosedPort, FakeUpstream, Gateway, Script};
use std::net::SocketAddr;
use std::time::Duration;

const MSG: &str =
    r#"{"model":"claude-opus-4","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#;
const JSON: [(&str, &str); 2] = [("host", "localhost"), ("content-type", "application/json")];

/// One route on port 4060 with `policies` (YAML lines under `policies:`)
/// and `backends` (YAML list items, already indented by two).
fn route(policies: &str, backends: &str) -> String {
    format!(
        "binds:\n- port: 4060\nroutes:\n- name: r\n  policies:\n    timeout: {{requestTimeout: 10s}}\n{policies}  backends:\n{backends}"
    )
}

fn anthropic(name: &str, addr: SocketAddr) -> String {
    format!("{{name: {name}, provider: {{anthropic: {{}}}}, hostOverride: 'http://{addr}'}}")
}

async fn start(dir: &tempfile::TempDir, yaml: &str) -> (Gateway, String) {
    let cfg = write(dir.path(), "sluice.yaml", yaml);
    (gateway(&[&cfg], &[4060], &[], &[]).await, cfg)
}

async fn send(gw: &Gateway) -> crate::hardening::Raw {
    raw(gw.addr(4060), "POST", "/v1/messages", &JSON, MSG).await
}

async fn backends_report(gw: &Gateway) -> Value {
    TestClient::new()
        .get(&gw.admin_url("/backends"))
        .await
        .json()
}

fn backend<'a>(report: &'a Value, name: &str) -> &'a Value {
    report[0]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("no backend {name} in {report}"))
}

async fn metrics(gw: &Gateway) -> String {
    TestClient::new()
        .get(&gw.admin_url("/metrics"))
        .await
        .text()
}

/// 9:1 over 1,000 requests: the heavy backend serves 900 ± 50 (more than
/// five standard deviations, ≈ 9.5), whatever header the client sends.
#[tokio::test]
async fn traffic_follows_the_weights() {
    let (a, b) = (FakeUpstream::plain().await, FakeUpstream::plain().await);
    let dir = tempfile::tempdir().unwrap();
    let backends = format!(
        "  - weight: 9\n    ai: {}\n  - weight: 1\n    ai: {}\n",
        anthropic("heavy", a.addr()),
        anthropic("light", b.addr())
    );
    let (gw, _) = start(&dir, &route("", &backends)).await;
    let c = TestClient::new();
    let url = gw.url(4060, "/v1/messages");
    let body: Value = serde_json::from_str(MSG).unwrap();
    // A client cannot steer its request: no header picks the backend.
    let steer = [("x-backend", "light"), ("x-sluice-backend", "light")];
    for chunk in 0..50 {
        let reqs = (0..20).map(|_| c.post_json(&url, &steer, &body));
        for r in futures_util::future::join_all(reqs).await {
            assert_eq!(r.status, 200, "chunk {chunk}: {}", r.text());
        }
    }
    let heavy = a.requests().len();
    let light = b.requests().len();
    assert_eq!(heavy + light, 1000);
    assert!((850..=950).contains(&heavy), "heavy {heavy}, light {light}");
    let m = metrics(&gw).await;
    let served = |name| {
        metric(
            &m,
            "sluice_backend_attempts_total",
            &[("backend", name), ("outcome", "200")],
        )
        .unwrap_or(0.0) as usize
    };
    assert_eq!((served("heavy"), served("light")), (heavy, light));
}

/// A 429 with `retry-after` evicts that backend for that long: the request
/// fails over to the next priority group at once, no request reaches the
/// limited backend before its time, `GET /backends` says until when, the
/// metrics count the attempt and the eviction, and the access log names
/// the backend that answered. The state survives a config reload.
#[tokio::test]
async fn a_rate_limited_backend_is_evicted_for_its_retry_after() {
    let (p, s) = (FakeUpstream::plain().await, FakeUpstream::plain().await);
    p.set_script(
        Script::default()
            .status(
                429,
                r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
            )
            .header("retry-after", "3"),
    );
    let dir = tempfile::tempdir().unwrap();
    let backends = format!(
        "  - ai:\n      groups:\n      - providers: [{}]\n      - providers: [{}]\n",
        anthropic("primary", p.addr()),
        anthropic("fallback", s.addr())
    );
    let yaml = route("    retry: {attempts: 2, codes: [429, 503]}\n", &backends);
    let (gw, cfg) = start(&dir, &yaml).await;

    let r = send(&gw).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!((p.requests().len(), s.requests().len()), (1, 1));
    // The same body went to both: it was kept to be replayed.
    assert_eq!(p.requests()[0].body, s.requests()[0].body);
    gw.wait_for_log("attempts=2", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        gw.logs()
            .lines()
            .any(|l| l.contains("sluice::access") && l.contains("backend=fallback")),
        "{}",
        gw.logs()
    );

    let report = backends_report(&gw).await;
    let primary = backend(&report, "primary");
    assert_eq!(primary["reason"], "rate_limited", "{report}");
    let until = humantime::parse_rfc3339(primary["evicted_until"].as_str().unwrap()).unwrap();
    let left = until.duration_since(std::time::SystemTime::now()).unwrap();
    assert!(
        left <= Duration::from_secs(3) && left > Duration::from_secs(1),
        "{left:?}"
    );
    assert!(backend(&report, "fallback").get("evicted_until").is_none());

    // Evicted: the next requests never reach it, even across a reload.
    std::fs::write(&cfg, format!("{yaml}# reloaded\n")).unwrap();
    let reload = TestClient::new()
        .post_json(
            &gw.admin_url("/config/reload"),
            &[("content-type", "application/json")],
            &json!({}),
        )
        .await;
    assert_eq!(reload.status, 200, "{}", reload.text());
    for _ in 0..5 {
        assert_eq!(send(&gw).await.status, 200);
    }
    assert_eq!((p.requests().len(), s.requests().len()), (1, 6));
    assert!(backends_report(&gw).await[0]["backends"][0]["evicted_until"].is_string());

    let m = metrics(&gw).await;
    let labels = |b, o| [("route", "r"), ("backend", b), ("outcome", o)];
    assert_eq!(
        metric(
            &m,
            "sluice_backend_attempts_total",
            &labels("primary", "429")
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            "sluice_backend_attempts_total",
            &labels("fallback", "200")
        ),
        Some(6.0)
    );
    assert_eq!(
        metric(
            &m,
            "sluice_backend_evictions_total",
            &[("backend", "primary"), ("reason", "rate_limited")]
        ),
        Some(1.0)
    );

    // Once its time is up, the primary group serves again.
    p.set_script(Script::default());
    tokio::time::sleep(left + Duration::from_millis(300)).await;
    assert_eq!(send(&gw).await.status, 200);
    assert_eq!((p.requests().len(), s.requests().len()), (2, 6));
}

/// An absurd Retry-After (ten years) evicts for an hour at most; with no
/// other backend, the client gets a 503 with `Retry-After` and the
/// provider gets nothing more.
#[tokio::test]
async fn an_absurd_retry_after_is_capped_and_nothing_is_sent_meanwhile() {
    let up = FakeUpstream::plain().await;
    up.set_script(
        Script::default()
            .status(429, "{}")
            .header("retry-after", "315360000"),
    );
    let dir = tempfile::tempdir().unwrap();
    let backends = format!("  - ai: {}\n", anthropic("only", up.addr()));
    let (gw, _) = start(&dir, &route("", &backends)).await;
    assert_eq!(send(&gw).await.status, 429);
    let r = send(&gw).await;
    assert_eq!(r.status, 503, "{}", r.body);
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((3590..=3600).contains(&wait), "{wait}");
    assert_eq!(r.json()["type"], "error", "Anthropic's shape: {}", r.body);
    assert_eq!(up.requests().len(), 1);
    let report = backends_report(&gw).await;
    let until =
        humantime::parse_rfc3339(report[0]["backends"][0]["evicted_until"].as_str().unwrap())
            .unwrap();
    let left = until.duration_since(std::time::SystemTime::now()).unwrap();
    assert!(left <= Duration::from_secs(3600), "{left:?}");
}

/// A backend that refuses connections, or holds the headers past the
/// attempt's timeout, fails over to the next one; `consecutiveFailures`
/// evicts it for `duration`, so later requests skip it.
#[tokio::test]
async fn connection_failures_and_timeouts_fail_over_and_evict() {
    let closed = ClosedPort::new();
    let (slow, good) = (FakeUpstream::plain().await, FakeUpstream::plain().await);
    slow.set_script(Script::default().hang());
    let dir = tempfile::tempdir().unwrap();
    let health = "policies: {health: {eviction: {duration: 60s, consecutiveFailures: 1}}}";
    let backends = format!(
        "  - ai:\n      groups:\n      - providers:\n        - name: down\n          provider: {{anthropic: {{}}}}\n          hostOverride: 'http://{}'\n          {health}\n      - providers:\n        - name: slow\n          provider: {{anthropic: {{}}}}\n          hostOverride: 'http://{}'\n      - providers: [{}]\n",
        closed.addr(),
        slow.addr(),
        anthropic("good", good.addr())
    );
    let policies = "    retry: {attempts: 3, codes: []}\n    timeout: {requestTimeout: 10s, backendRequestTimeout: 500ms}\n";
    let yaml = route("", &backends).replace("    timeout: {requestTimeout: 10s}\n", policies);
    let (gw, _) = start(&dir, &yaml).await;
    let r = send(&gw).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!((slow.requests().len(), good.requests().len()), (1, 1));
    // `down` is evicted (one failure); `slow` has no eviction policy and is tried again.
    let r = send(&gw).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!((slow.requests().len(), good.requests().len()), (2, 2));
    let m = metrics(&gw).await;
    let attempts = |b, o| {
        metric(
            &m,
            "sluice_backend_attempts_total",
            &[("backend", b), ("outcome", o)],
        )
    };
    assert_eq!(attempts("down", "connect_error"), Some(1.0));
    assert_eq!(attempts("slow", "timeout"), Some(2.0));
    let report = backends_report(&gw).await;
    assert_eq!(backend(&report, "down")["reason"], "failures", "{report}");
    assert_eq!(
        backend(&report, "slow")["consecutive_failures"],
        2,
        "{report}"
    );
}

/// Retries stop at `attempts` calls in total (the documented meaning), a
/// status outside `codes` is an answer, and once an answer's headers are
/// accepted it streams to its end: a stream that breaks is never replayed
/// on another backend.
#[tokio::test]
async fn attempts_are_total_calls_and_answers_are_never_switched() {
    let (a, b) = (FakeUpstream::plain().await, FakeUpstream::plain().await);
    a.set_script(Script::default().status(
        503,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#,
    ));
    b.set_script(Script::default().status(
        503,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#,
    ));
    let dir = tempfile::tempdir().unwrap();
    let backends = format!(
        "  - ai: {}\n  - ai: {}\n",
        anthropic("a", a.addr()),
        anthropic("b", b.addr())
    );
    let yaml = route(
        "    retry: {attempts: 3, backoff: 50ms, codes: [503]}\n",
        &backends,
    );
    let (gw, _) = start(&dir, &yaml).await;
    let r = send(&gw).await;
    assert_eq!(r.status, 503, "the last answer is passed on: {}", r.body);
    assert!(r.body.contains("busy"), "{}", r.body);
    assert_eq!(a.requests().len() + b.requests().len(), 3);
    assert!(!a.requests().is_empty() && !b.requests().is_empty());

    // 400 is not in `codes`: an answer, not retried.
    a.clear();
    b.clear();
    a.set_script(Script::default().status(
        400,
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"no"}}"#,
    ));
    b.set_script(Script::default().status(
        400,
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"no"}}"#,
    ));
    assert_eq!(send(&gw).await.status, 400);
    assert_eq!(a.requests().len() + b.requests().len(), 1);

    // A stream that breaks after its first event ends with an error event;
    // no other backend is asked.
    a.clear();
    b.clear();
    let broken = Script::default()
        .deltas(["one ", "two ", "three"])
        .drop_after(2);
    a.set_script(broken.clone());
    b.set_script(broken);
    let streaming = r#"{"model":"claude-opus-4","max_tokens":8,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = raw(gw.addr(4060), "POST", "/v1/messages", &JSON, streaming).await;
    assert_eq!(r.status, 200);
    assert!(!r.body.contains("message_stop"), "{}", r.body);
    assert!(r.body.contains("event: error"), "{}", r.body);
    assert_eq!(a.requests().len() + b.requests().len(), 1);
}

/// Policies run once per client request: a limit of two requests a minute
/// lets two requests through even when each takes two attempts.
#[tokio::test]
async fn policies_run_once_per_request_not_per_attempt() {
    let (a, b) = (FakeUpstream::plain().await, FakeUpstream::plain().await);
    a.set_script(Script::default().status(500, "{}"));
    let dir = tempfile::tempdir().unwrap();
    let backends = format!(
        "  - ai:\n      groups:\n      - providers: [{}]\n      - providers: [{}]\n",
        anthropic("a", a.addr()),
        anthropic("b", b.addr())
    );
    let yaml = route(
        "    retry: {attempts: 2, codes: [500]}\n    rateLimit: {requestsPerMinute: 2}\n",
        &backends,
    );
    let (gw, _) = start(&dir, &yaml).await;
    assert_eq!(send(&gw).await.status, 200);
    assert_eq!(send(&gw).await.status, 200);
    assert_eq!(send(&gw).await.status, 429);
    assert_eq!((a.requests().len(), b.requests().len()), (2, 2));
}

/// Each attempt's backend shapes its own request: its own key, and its
/// own format (an OpenAI backend is sent the Messages request translated
/// to Chat Completions).
#[tokio::test]
async fn each_attempt_uses_its_backends_credential_and_format() {
    let (a, b, o) = (
        FakeUpstream::plain().await,
        FakeUpstream::plain().await,
        FakeUpstream::plain().await,
    );
    a.set_script(Script::default().status(503, "{}"));
    o.set_script(Script::default().status(503, "{}"));
    let dir = tempfile::tempdir().unwrap();
    let backends = format!(
        "  - ai:\n      groups:\n      - providers:\n        - name: oai\n          provider: {{openAI: {{}}}}\n          hostOverride: 'http://{}'\n          policies: {{backendAuth: {{key: sk-oai}}}}\n      - providers:\n        - name: a\n          provider: {{anthropic: {{}}}}\n          hostOverride: 'http://{}'\n          policies: {{backendAuth: {{key: sk-ant-a}}}}\n      - providers:\n        - name: b\n          provider: {{anthropic: {{}}}}\n          hostOverride: 'http://{}'\n          policies: {{backendAuth: {{key: sk-ant-b}}}}\n",
        o.addr(),
        a.addr(),
        b.addr()
    );
    let yaml = route("    retry: {attempts: 3, codes: [503]}\n", &backends);
    let (gw, _) = start(&dir, &yaml).await;
    let r = send(&gw).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sent = &o.requests()[0];
    assert_eq!(sent.path, "/v1/chat/completions", "translated for OpenAI");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-oai"));
    assert!(sent.json()["max_completion_tokens"].is_number());
    assert_eq!(a.requests()[0].path, "/v1/messages");
    assert_eq!(a.requests()[0].header("x-api-key"), Some("sk-ant-a"));
    assert_eq!(b.requests()[0].header("x-api-key"), Some("sk-ant-b"));
    assert!(b.requests()[0].json()["max_tokens"].is_number());
}

/// A body beyond the body budget on a route that may replay it is refused
/// whole (503, `Retry-After`), never forwarded in part.
#[tokio::test]
async fn a_body_too_large_to_keep_is_refused_not_replayed_in_part() {
    let (a, b) = (FakeUpstream::plain().await, FakeUpstream::plain().await);
    let dir = tempfile::tempdir().unwrap();
    let backends = format!(
        "  - ai: {}\n  - ai: {}\n",
        anthropic("a", a.addr()),
        anthropic("b", b.addr())
    );
    let yaml = format!(
        "limits: {{bodyBufferBudget: 64KB}}\n{}",
        route("    retry: {attempts: 2, codes: [503]}\n", &backends)
    );
    let (gw, _) = start(&dir, &yaml).await;
    let big = format!(
        r#"{{"model":"m","max_tokens":8,"messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(256 * 1024)
    );
    let r = raw(gw.addr(4060), "POST", "/v1/messages", &JSON, &big).await;
    assert!(
        r.status == 503 || r.status == 413,
        "{} {}",
        r.status,
        r.body
    );
    assert_eq!(a.requests().len() + b.requests().len(), 0);
    assert_eq!(send(&gw).await.status, 200);
}

/// Each attempt is a client span of its own, a child of the request's
/// server span, carrying where it went and how it ended; each upstream sees
/// its own span in `traceparent`.
#[tokio::test]
async fn each_attempt_is_its_own_client_span() {
    use sluice_testkit::otlp::Collector;
    let (a, b) = (FakeUpstream::plain().await, FakeUpstream::plain().await);
    a.set_script(Script::default().status(503, "{}"));
    let col = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let backends = format!(
        "  - ai:\n      groups:\n      - providers: [{}]\n      - providers: [{}]\n",
        anthropic("a", a.addr()),
        anthropic("b", b.addr())
    );
    let cfg = write(
        dir.path(),
        "sluice.yaml",
        &route("    retry: {attempts: 2, codes: [503]}\n", &backends),
    );
    let tracing = write(
        dir.path(),
        "tracing.yaml",
        &format!(
            "config:\n  tracing:\n    otlpEndpoint: {}\n    otlpProtocol: http\n    randomSampling: true\n",
            col.url()
        ),
    );
    let gw = gateway(&[&cfg, &tracing], &[4060], &[], &[]).await;
    assert_eq!(send(&gw).await.status, 200);
    let spans = col
        .wait_for(
            "server and two client spans",
            Duration::from_secs(15),
            |s| s.iter().any(|x| x.kind == 2) && s.iter().filter(|x| x.kind == 3).count() >= 2,
        )
        .await
        .unwrap();
    let server = spans.iter().find(|s| s.kind == 2).unwrap();
    let clients: Vec<_> = spans.iter().filter(|s| s.kind == 3).collect();
    assert_eq!(clients.len(), 2, "{spans:#?}");
    for c in &clients {
        assert_eq!(c.parent_span_id, server.span_id);
    }
    let port = |addr: SocketAddr| Some(i64::from(addr.port()));
    let first = clients
        .iter()
        .find(|c| c.int("server.port") == port(a.addr()))
        .unwrap();
    let second = clients
        .iter()
        .find(|c| c.int("server.port") == port(b.addr()))
        .unwrap();
    assert_eq!(first.int("http.response.status_code"), Some(503));
    assert_eq!(first.str("error.type"), Some("503"));
    assert_eq!(second.int("http.response.status_code"), Some(200));
    let parent = |r: &sluice_testkit::RecordedRequest| {
        r.header("traceparent")
            .unwrap()
            .split('-')
            .nth(2)
            .unwrap()
            .to_string()
    };
    assert_eq!(parent(&a.requests()[0]), first.span_id);
    assert_eq!(parent(&b.requests()[0]), second.span_id);
}

/// Plain `host:` backends take weights too; `weight: 0` is a standby that
/// serves only when no weighted backend is in rotation.
#[tokio::test]
async fn host_backends_with_a_standby() {
    let (main, standby) = (FakeUpstream::plain().await, FakeUpstream::plain().await);
    let dir = tempfile::tempdir().unwrap();
    let backends = format!(
        "  - weight: 1\n    host: '{}'\n    policies: {{health: {{eviction: {{duration: 60s}}}}}}\n  - weight: 0\n    host: '{}'\n",
        main.addr(),
        standby.addr()
    );
    let (gw, _) = start(
        &dir,
        &route("    retry: {attempts: 2, codes: [502]}\n", &backends),
    )
    .await;
    for _ in 0..10 {
        assert_eq!(send(&gw).await.status, 200);
    }
    assert_eq!((main.requests().len(), standby.requests().len()), (10, 0));
    // A 502 is retried on the standby, and evicts the main backend (5xx).
    main.set_script(Script::default().status(502, "{}"));
    assert_eq!(send(&gw).await.status, 200);
    assert_eq!(send(&gw).await.status, 200);
    assert_eq!((main.requests().len(), standby.requests().len()), (11, 2));
}
